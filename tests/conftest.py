"""Shared fixtures: where the real benchmark data lives, and small test models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_path() -> Path:
    """../shared/data beside the repository, or $NASASSIST_DATA."""
    return Path(os.environ.get("NASASSIST_DATA") or REPO_ROOT.parent / "shared" / "data")  # empty = unset


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark data directory; skips the test cleanly when it is absent."""
    path = shared_data_path()
    if not path.is_dir():
        pytest.skip(f"benchmark data not found at {path} (set NASASSIST_DATA to run this test)")
    return path


def assert_png_has_content(path: Path, *, min_width: int = 100, min_height: int = 100, min_ink: float = 0.01):
    """Decode a PNG and check it is a real picture: at least ``min_width`` × ``min_height``
    pixels and at least ``min_ink`` of them differing from the background (the most common
    colour). Returns the decoded image (height × width × channels, floats in [0, 1])."""
    import matplotlib.image
    import numpy as np

    path = Path(path)
    assert path.is_file(), f"{path} was not written"
    image = matplotlib.image.imread(path)  # raises on a file that is not a decodable PNG
    assert image.ndim == 3 and image.shape[2] in (3, 4), f"{path}: unexpected image shape {image.shape}"
    height, width = image.shape[:2]
    assert width >= min_width and height >= min_height, f"{path}: {width}x{height} px is too small"
    rgb = np.round(image[..., :3] * 255).astype(np.int32)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    values, counts = np.unique(packed, return_counts=True)
    background = values[counts.argmax()]
    ink = float((packed != background).mean())
    assert ink >= min_ink, f"{path}: only {ink:.2%} of the pixels differ from the background: a blank picture"
    return image


@pytest.fixture()
def png_content():
    """The checker :func:`assert_png_has_content` (decode a PNG, check its size and that it is not blank)."""
    return assert_png_has_content


# Predictors, one name per meaning (test modules that still define their own ``predictor``
# fixture shadow nothing here: these names are distinct on purpose).
@pytest.fixture(scope="session")
def default_predictor():
    """The shipped default predictor: the library's shared instance
    (:func:`nasassist_plugins.predictor.default_predictor`), loaded once per process.
    Shared: tests must not fit or fine-tune it (copy it first)."""
    from nasassist_plugins.predictor import default_predictor

    return default_predictor()


@pytest.fixture()
def untrained_predictor():
    """A fresh, small, untrained predictor (hidden 32, 2 experts' ensemble, seed 0): fast, and
    free to be fitted by the test that gets it."""
    from nasassist_plugins.predictor import Predictor

    return Predictor(hidden_dim=32, ensemble_size=2, seed=0)


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server on 127.0.0.1 for the session (its URL). Without PostgreSQL the test
    skips, unless ``NASASSIST_REQUIRE_POSTGRES=1`` (set by CI) makes that a failure."""
    from postgres_server import PostgresServer, PostgresUnavailable

    try:
        server = PostgresServer()
    except PostgresUnavailable as exc:
        if os.environ.get("NASASSIST_REQUIRE_POSTGRES") == "1":
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with server as url:
        yield url
