"""Small helpers shared by the strategy, tuner and assessor (no heavy imports here)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nasassist_plugins.errors import NNIConfigError


def scalar_metric(metric: Any) -> float | None:
    """A reported NNI metric as a float (``metric["default"]`` for dicts); ``None`` if absent or not finite."""
    if metric is None:
        return None
    if isinstance(metric, dict):
        metric = metric.get("default")
    try:
        value = float(metric)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def load_predictor(predictor: Any) -> Any:
    """A predictor given as an object, a weights path, or ``None`` (the shipped default, loaded lazily)."""
    if predictor is None:
        return None
    from nasassist_plugins.predictor import Predictor

    if isinstance(predictor, Predictor):
        return predictor
    if isinstance(predictor, (str, Path)):
        return Predictor.load(predictor)
    raise NNIConfigError(f"predictor must be a Predictor, a weights path or None, got {type(predictor).__name__}")


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise NNIConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_mode(value: Any) -> str:
    if value not in ("maximize", "minimize"):
        raise NNIConfigError(f"optimize_mode must be 'maximize' or 'minimize', got {value!r}")
    return value
