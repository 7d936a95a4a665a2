"""The export command's console: our progress in plain lines, other libraries' chatter at debug.

torch's exporter, onnxscript's optimiser and ONNX Runtime's quantiser narrate their internals
(torch through its own stderr handlers, the others through the root logger and Python warnings):
a hundred lines that say nothing about the artifact. Here every record from outside `attnserve`
below ERROR is demoted to DEBUG, so it reaches the console only with `--log-level debug`, and
Python warnings become such records too. Errors, from anyone, always show; our own warnings too.
"""

from __future__ import annotations

import logging
import sys

OURS = "attnserve"
LEVELS = ("debug", "info", "warning", "error")


def is_ours(record: logging.LogRecord) -> bool:
    return record.name == OURS or record.name.startswith(OURS + ".")


class DemoteLibraryRecords(logging.Filter):
    """Other libraries' records below ERROR become DEBUG records (shown only at debug)."""

    def __init__(self, threshold: int) -> None:
        super().__init__()
        self.threshold = threshold

    def filter(self, record: logging.LogRecord) -> bool:
        if not is_ours(record) and record.levelno < logging.ERROR:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return record.levelno >= self.threshold


class ConsoleFormatter(logging.Formatter):
    """Our info lines bare (they are the progress); anything else says its level and source."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO and is_ours(record):
            return message
        return f"{record.levelname.lower()}: {record.name}: {message}"


def quiet_library_handlers() -> None:
    """Detach the console handlers other libraries installed themselves (torch puts one on
    `torch` and its subsystems, with propagation off) so their records go through ours."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or name == OURS or name.startswith(OURS + "."):
            continue
        consoles = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        for handler in consoles:  # files and NullHandlers stay
            logger.removeHandler(handler)
        if consoles:
            logger.propagate = True


def configure_console(level: str) -> None:
    """Route every log record and warning through one filtered stderr handler at `level`."""
    threshold = logging.getLevelNamesMapping()[level.upper()]
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(DemoteLibraryRecords(threshold))
    handler.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Libraries' own INFO and WARNING records are created only when someone could see them.
    root.setLevel(logging.DEBUG if threshold <= logging.DEBUG else logging.INFO)
    logging.captureWarnings(True)
    quiet_library_handlers()
    try:
        import onnxruntime

        # ONNX Runtime's C++ logger writes to the stderr descriptor itself: errors only,
        # unless the user asked for everything.
        onnxruntime.set_default_logger_severity(0 if threshold <= logging.DEBUG else 3)
    except ImportError:
        pass
