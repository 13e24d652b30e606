"""Checks applied to graphs read from files: every value finite, counts and shapes integers."""

from __future__ import annotations

import math
from typing import Any, Mapping

from nasassist_plugins.errors import GraphError

__all__ = ["check_finite", "checked_attr"]

# Integer attributes a graph file may carry, and their bounds (far above any real network;
# a value outside them is a corrupt or hostile file, never a model).
_COUNT_ATTRS = frozenset({"in_channels", "out_channels", "groups", "num_params", "flops", "num_heads", "embed_dim",
                          "in_features", "out_features", "hidden_size", "num_layers"})
_MAX_COUNT = 2**48
_MAX_DIMS = 16


def check_finite(value: Any, where: str, depth: int = 0) -> None:
    """Refuse NaN/inf (and absurd nesting) anywhere inside a JSON value."""
    if depth > 32:
        raise GraphError(f"{where} is nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise GraphError(f"{where} is {value}, not a finite number")
    if isinstance(value, Mapping):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}", depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            check_finite(v, where, depth + 1)


def checked_attr(node: str, key: str, value: Any, tuple_attrs: frozenset[str]) -> Any:
    """One node attribute from a graph file, validated (see :meth:`Node.from_dict`).

    ``key in tuple_attrs`` marks shape-like attributes stored as JSON lists.
    """
    where = f"node {node!r} attribute {key!r}"
    check_finite(value, where)
    if key in tuple_attrs and isinstance(value, list):
        if len(value) > _MAX_DIMS:
            raise GraphError(f"{where} has {len(value)} entries (at most {_MAX_DIMS})")
        value = tuple(value)
    if key in tuple_attrs and key != "padding":
        entries = value if isinstance(value, tuple) else (value,)
        unknown_ok = key in ("output_shape", "weight_shape")  # None marks a size shape inference missed
        if value is not None and not all((v is None and unknown_ok) or _is_count(v) for v in entries):
            raise GraphError(f"{where} must be non-negative integers below 2**48, got {value!r:.80}")
    elif key in _COUNT_ATTRS and value is not None and not _is_count(value):
        raise GraphError(f"{where} must be a non-negative integer below 2**48, got {value!r:.80}")
    elif key == "bias" and value is not None and not isinstance(value, bool):
        raise GraphError(f"{where} must be true or false, got {value!r:.80}")
    return value


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_COUNT
