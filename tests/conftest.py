"""Shared fixtures: where the real benchmark data lives, and small test models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    """../shared/data beside the repository, or $NASASSIST_DATA."""
    return Path(os.environ.get("NASASSIST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data directory; skips the test cleanly when it is absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set NASASSIST_DATA to run this test)")
    return path
