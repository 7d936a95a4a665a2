"""docs/observability.md's metrics table and the code's instruments list the same series, with
the same labels: a series added without a row (or a row left after its series went) fails here."""

from __future__ import annotations

import re

from prometheus_client import Counter, Gauge, Histogram

from attnserve.service.server.metrics import Metrics
from tests.support import ROOT

ROW_NAME = re.compile(r"`(attnserve_[a-z_]+)(?:\{([a-z0-9_,]*)\})?`")


def table_rows() -> dict[str, tuple[str, ...]]:
    """Each series docs/observability.md's table names, with its labels."""
    page = (ROOT / "docs" / "observability.md").read_text()
    section = page.split("## Observability", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `attnserve_")]
    named: dict[str, tuple[str, ...]] = {}
    for row in rows:
        first_cell = row.split("|")[1]
        for name, labels in ROW_NAME.findall(first_cell):
            named[name] = tuple(labels.split(",")) if labels else ()
    return named


def instruments() -> dict[str, tuple[str, ...]]:
    """Each series the server exports (counters with prometheus_client's `_total`)."""
    found: dict[str, tuple[str, ...]] = {}
    for value in vars(Metrics()).values():
        if isinstance(value, Counter | Gauge | Histogram):
            name = value._name + ("_total" if isinstance(value, Counter) else "")
            found[name] = tuple(value._labelnames)
    return found


def test_the_readme_metrics_table_matches_the_code() -> None:
    assert table_rows() == instruments()
