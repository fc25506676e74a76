"""Shared fixtures. The benchmark images live outside the repository (never committed)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA_ENV = "HARNESS_SHARED_DATA"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared image data (set5, set14, bsd100, t91, bsd200, vid4): ``$HARNESS_SHARED_DATA``
    or ``../shared/data`` next to the repository; the test is skipped when it is absent."""
    path = Path(os.environ.get(SHARED_DATA_ENV) or REPO.parent / "shared" / "data")
    if not (path / "set5").is_dir():
        pytest.skip(
            f"shared image data not found at {path} (set {SHARED_DATA_ENV} to the folder holding "
            "set5/, set14/, t91/, ...)"
        )
    return path
