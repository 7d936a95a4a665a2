"""The export console's rule: other libraries' records below ERROR are debug; errors always show."""

from __future__ import annotations

import logging

import pytest

from attnserve.export.console import ConsoleFormatter, DemoteLibraryRecords


def record(name: str, level: int, message: str = "said") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("name", "level", "shown_at_info", "shown_at_debug"),
    [
        ("torch.onnx._internal.exporter._registration", logging.WARNING, False, True),
        ("root", logging.WARNING, False, True),  # ONNX Runtime's quantiser logs on the root
        ("py.warnings", logging.WARNING, False, True),
        ("onnxscript.optimizer", logging.INFO, False, True),
        ("torch", logging.ERROR, True, True),
        ("attnserve.export.progress", logging.INFO, True, True),
        ("attnserve.export.graphs", logging.WARNING, True, True),
        ("attnserve.export.cli", logging.DEBUG, False, True),
        ("attnserver", logging.INFO, False, True),  # a prefix is not the package
    ],
)
def test_library_records_below_error_are_debug(
    name: str, level: int, shown_at_info: bool, shown_at_debug: bool
) -> None:
    assert DemoteLibraryRecords(logging.INFO).filter(record(name, level)) is shown_at_info
    assert DemoteLibraryRecords(logging.DEBUG).filter(record(name, level)) is shown_at_debug


def test_a_demoted_record_says_debug_and_where_it_came_from() -> None:
    noisy = record("torch.onnx", logging.WARNING, "torchvision is not installed")
    DemoteLibraryRecords(logging.DEBUG).filter(noisy)
    assert ConsoleFormatter().format(noisy) == "debug: torch.onnx: torchvision is not installed"


def test_our_progress_is_bare_and_failures_name_their_level() -> None:
    formatter = ConsoleFormatter()
    assert formatter.format(record("attnserve.export.progress", logging.INFO, "fuse x")) == "fuse x"
    failed = record("attnserve.export.progress", logging.ERROR, "fuse failed")
    assert formatter.format(failed) == "error: attnserve.export.progress: fuse failed"
