"""The tests that compare against the PyTorch model or export with it: skipped as a whole where
torch is not installed (the serving install), where every other folder still runs."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
