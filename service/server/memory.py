"""The process's resident memory, for the start-up line of each model (what loading it cost).

Read from /proc (Linux, where the server is deployed); elsewhere the peak RSS that `resource`
reports, which still grows with each model loaded.
"""

from __future__ import annotations

import os
import resource
import sys

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def mib(size: int) -> str:
    return f"{size / (1 << 20):.0f} MiB"
