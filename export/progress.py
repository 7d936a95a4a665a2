"""Stage reporting for an export: one log line per finished stage, with its time and outcome.

An export is a minute or so of distinct work (load, torch -> ONNX, fuse, verify, quantise behind
the quality gate, fp16, manifest). Each step reports through the logger `attnserve.export.progress`
when it ends, so `attnserve export` shows progress on the console and a library caller (the tests,
the benchmarks) gets the same as ordinary log records. A stage that raises says so at error level
before the exception goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger(__name__)
NAME_WIDTH = 9
SUBJECT_WIDTH = 34


@dataclass
class Stage:
    """A stage in progress; the code inside it may fill in what came out."""

    name: str
    subject: str
    outcome: str = ""


@contextmanager
def stage(name: str, subject: str) -> Iterator[Stage]:
    current = Stage(name, subject)
    started = time.perf_counter()
    log.debug("%s %s: started", name, subject)
    try:
        yield current
    except BaseException:
        log.error("%s failed after %.1f s", stage_label(current), time.perf_counter() - started)
        raise
    elapsed = time.perf_counter() - started
    log.info("%s %5.1f s  %s", stage_label(current), elapsed, current.outcome)


def stage_label(current: Stage) -> str:
    return f"{current.name:<{NAME_WIDTH}}{current.subject:<{SUBJECT_WIDTH}}"
