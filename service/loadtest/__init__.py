"""The load tester: closed- and open-loop load against any attnserve endpoint, and reports."""
