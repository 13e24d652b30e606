"""Step 3 driver: apply the merges and patterns in order."""

from __future__ import annotations

from typing import Callable

from nasassist_plugins.adapters.onnx_adapter._merging import (
    _merge_aten_calls,
    _merge_attention,
)
from nasassist_plugins.adapters.onnx_adapter._ops import _Op
from nasassist_plugins.adapters.onnx_adapter._patterns import (
    _merge_erf_gelu,
    _merge_gated_activation,
    _merge_groupnorm,
    _merge_layernorm,
    _merge_linear_bias,
    _PatternResult,
)
from nasassist_plugins.adapters.onnx_adapter._tensors import _Tensors


# ============================================================================ re-assembly driver
def _reassemble(ops: list[_Op], tensors: _Tensors) -> list[_Op]:
    """Merge the ONNX ops that one PyTorch-level op was split into."""
    outputs = set(tensors.graph_outputs)
    ops = _merge_attention(ops, outputs, tensors)
    ops = _merge_aten_calls(ops, outputs, tensors)
    for pattern in (_merge_linear_bias, _merge_gated_activation, _merge_erf_gelu, _merge_layernorm, _merge_groupnorm):
        ops = _apply(pattern, ops, outputs, tensors)
    return ops


def _apply(pattern: Callable[..., "_PatternResult"], ops: list[_Op], outputs: set[str], tensors: _Tensors) -> list[_Op]:
    """Run a pattern until it finds nothing more (each call merges at most one match)."""
    start = 0
    while start < len(ops):
        result = pattern(ops, outputs, tensors, start)
        if result is None:
            break
        ops, start = result
    return ops
