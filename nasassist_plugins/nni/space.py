"""NNI search spaces as Optuna distributions, so both front ends explore the same way.

The NAS strategy and the HPO tuner reuse :mod:`nasassist_plugins.search` (random draws,
local mutations, parameter keys), which works on Optuna distributions. This module
converts:

* an NNI model space's ``simplify()`` result (``nni.choice`` / ``LayerChoice`` /
  ``InputChoice`` → ``Categorical``; ``nni.uniform`` / ``nni.loguniform`` → ``Numerical``)
  with :func:`nas_space`, and
* an HPO search-space dict (``{"lr": {"_type": "loguniform", "_value": [1e-4, 1e-1]}}``)
  with :func:`hpo_space`.

Mutables that have no Optuna equivalent (``CategoricalMultiple``, normal distributions,
custom ``scipy.stats`` distributions) are kept and resampled with their own
``random()`` when mutated, as NNI's RegularizedEvolution does.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nasassist_plugins.search import SearchError
from nasassist_plugins.search.space import SearchSpace

_PRIMITIVES = (type(None), bool, int, float, str)


def _is_primitive(value: Any) -> bool:
    return isinstance(value, _PRIMITIVES) and not (isinstance(value, float) and math.isnan(value))


# ---------------------------------------------------------------------------- NAS (nni.mutable)
def nas_space(simplified: Mapping[str, Any]) -> SearchSpace:
    """Convert ``model_space.simplify()`` (label → NNI mutable) into a :class:`SearchSpace`.

    ``MutableAnnotation`` entries (constraints, frozen markers) are skipped: they are not
    dimensions, and ``model_space.freeze(sample)`` still checks them.
    """
    from nni.mutable import Categorical, MutableAnnotation, Numerical

    distributions: dict[str, BaseDistribution] = {}
    other: dict[str, Any] = {}
    size: int | None = 1
    for label, mutable in simplified.items():
        if isinstance(mutable, MutableAnnotation):
            continue
        if isinstance(mutable, Categorical):
            values = list(mutable.values)
            if values and all(_is_primitive(v) for v in values) and len(set(map(repr, values))) == len(values):
                distributions[label] = CategoricalDistribution(values)
            else:
                other[label] = mutable
            size = None if size is None else size * max(1, len(values))
            continue
        size = None
        if isinstance(mutable, Numerical):
            converted = _numerical(mutable)
            if converted is not None:
                distributions[label] = converted
                continue
        other[label] = mutable
    if other and size is not None:
        size = None if any(not isinstance(m, Categorical) for m in other.values()) else size
    return SearchSpace(distributions, other, size)


def _numerical(mutable: Any) -> BaseDistribution | None:
    """FloatDistribution for a bounded uniform / log-uniform ``Numerical``; ``None`` otherwise."""
    low, high = float(mutable.low), float(mutable.high)
    if mutable.mu is not None or mutable.sigma is not None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    dist_name = getattr(getattr(mutable.distribution, "dist", None), "name", "")
    if dist_name not in ("uniform", "loguniform", "reciprocal"):
        return None
    if not low < high:
        return None
    log = bool(mutable.log_distributed)
    if log and low <= 0:
        return None
    step = mutable.quantize
    if step is not None and not log:
        n_steps = (high - low) / step
        if abs(n_steps - round(n_steps)) < 1e-9:
            return FloatDistribution(low, high, step=float(step))
        return None  # NNI clips to bounds after rounding: leave it to mutable.random()
    if step is not None:
        return None
    return FloatDistribution(low, high, log=log)


# ---------------------------------------------------------------------------- HPO (search-space JSON)
_HPO_TYPES = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform")


def hpo_space(search_space: Mapping[str, Any]) -> SearchSpace:
    """Convert an NNI HPO search space (``{"name": {"_type": ..., "_value": ...}}``).

    Supported types: ``choice`` (of plain values), ``randint``, ``uniform``, ``quniform``,
    ``loguniform``, ``qloguniform``.

    Raises:
        SearchError: naming the parameter, for nested choices, ``normal``-family types
            or malformed entries.
    """
    if not isinstance(search_space, Mapping) or not search_space:
        raise SearchError(f"the search space must be a non-empty dict of parameters, got {search_space!r}")
    distributions: dict[str, BaseDistribution] = {}
    size: int | None = 1
    for name, spec in search_space.items():
        if not isinstance(spec, Mapping) or "_type" not in spec or "_value" not in spec:
            raise SearchError(f"search space entry {name!r} must be a dict with '_type' and '_value', got {spec!r}")
        kind, value = spec["_type"], spec["_value"]
        where = f"search space parameter {name!r} ({kind})"
        try:
            if kind == "choice":
                values = list(value)
                if not values:
                    raise SearchError(f"{where} has no choices")
                if not all(_is_primitive(v) for v in values):
                    raise SearchError(
                        f"{where}: NASAssistTuner supports choices of plain values (numbers, strings, booleans, "
                        "None), not nested search spaces"
                    )
                distributions[name] = CategoricalDistribution(values)
                size = None if size is None else size * len(values)
            elif kind == "randint":
                low, high = int(value[0]), int(value[1])
                if not low < high:
                    raise SearchError(f"{where} needs lower < upper, got {value}")
                distributions[name] = IntDistribution(low, high - 1)  # NNI's upper bound is exclusive
                size = None if size is None else size * (high - low)
            elif kind in ("uniform", "loguniform"):
                low, high = float(value[0]), float(value[1])
                distributions[name] = FloatDistribution(low, high, log=kind == "loguniform")
                size = None
            elif kind == "quniform":
                low, high, q = (float(v) for v in value[:3])
                n_steps = round((high - low) / q)
                distributions[name] = FloatDistribution(low, low + n_steps * q, step=q)
                size = None if size is None else size * (n_steps + 1)
            elif kind == "qloguniform":
                low, high, q = (float(v) for v in value[:3])
                lows, highs = math.ceil(low / q - 1e-9) * q, math.floor(high / q + 1e-9) * q
                values = list(np.round(np.arange(lows, highs + q / 2, q), 12))
                if not values:
                    raise SearchError(f"{where} has no multiple of {q} in [{low}, {high}]")
                distributions[name] = CategoricalDistribution([float(v) for v in values])
                size = None if size is None else size * len(values)
            else:
                raise SearchError(
                    f"{where}: type not supported by NASAssistTuner (supported: {', '.join(_HPO_TYPES)})"
                )
        except SearchError:
            raise
        except (TypeError, ValueError, IndexError) as exc:
            raise SearchError(f"{where} has a malformed _value {value!r}: {exc}") from None
    return SearchSpace(distributions, {}, size)
