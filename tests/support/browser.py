"""Headless Chromium for the view tests (the `browser` fixture is in tests/client/conftest.py),
and the checks their pictures share."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support import ROOT

DOCS_IMAGES = ROOT / "docs" / "images"


BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {reason}")
    pytest.skip(reason)


def chromium() -> str:
    named = os.environ.get("ATTNSERVE_CHROMIUM")
    found = named or next(filter(None, map(shutil.which, BROWSERS)), None)
    if not found:
        unavailable("no Chromium found (apt-get install chromium, or set ATTNSERVE_CHROMIUM)")
    assert found is not None
    return found


def not_blank(png: Path) -> None:
    from matplotlib.image import imread

    image = imread(str(png))[..., :3]
    colours = np.unique((image * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 100  # a picture, not a blank or a flat page
    assert image.std() > 0.05


def keep(shot: Path) -> None:
    if os.environ.get("ATTNSERVE_UPDATE_DOCS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMAGES / shot.name)
