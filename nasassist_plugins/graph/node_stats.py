"""Per-node statistics of a computational graph: FLOPs and numeric features."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from nasassist_plugins.graph.computational_graph import Node

__all__ = ["MATMUL_OPS", "flops_unknown", "node_flops", "node_numeric_features"]


def _prod(values: Iterable[int]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _per_sample_size(shape: Any) -> int:
    """Elements of one sample of an output shape (batch dimension dropped)."""
    if not shape:
        return 0
    out = 1
    for v in shape[1:] if len(shape) > 1 else shape:
        out *= int(v)
    return out


_CONV_OPS = frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "conv_transpose2d"})
#: Ops whose FLOPs the ``flops`` proxy (torch's ``FlopCounterMode``) counts: matrix products only.
#: Recurrent layers: their FLOPs depend on the sequence length, so only the tracer (which
#: sees the input) can count them; without a recorded ``flops`` attribute they are unknown.
RECURRENT_OPS = frozenset({"lstm", "gru", "rnn", "lstmcell", "grucell", "rnncell"})
MATMUL_OPS = _CONV_OPS | RECURRENT_OPS | {"linear", "attention"}
_NORM_OPS = frozenset({"batchnorm", "layernorm", "groupnorm", "instancenorm"})
_FREE_OPS = frozenset(
    {"reshape", "flatten", "transpose", "identity", "dropout", "input", "output", "slice", "split", "concat", "zero"}
)


def flops_unknown(node: Node) -> bool:
    """True when the node's FLOPs cannot be known from the graph (a recurrent layer, or an
    attention call, that the tracer could not count); :func:`node_flops` gives 0 for it."""
    a = node.attrs
    if a.get("flops") is not None:
        return False
    return bool(a.get("flops_unknown")) or node.op_type in RECURRENT_OPS


def node_flops(node: Node) -> int:
    """Floating-point operations of one node for one sample (a measured ``flops`` attr wins).

    A node whose count is unknown (:func:`flops_unknown`) contributes 0 and is listed by
    :meth:`ComputationalGraph.summary` as such, never guessed from its output size.
    """
    a = node.attrs
    measured = a.get("flops")
    if measured is not None:
        return int(measured)
    if flops_unknown(node):
        return 0
    op = node.op_type
    if op in _FREE_OPS:
        return 0
    out_shape = a.get("output_shape")
    out_size = _per_sample_size(out_shape)
    if op in _CONV_OPS:
        cin = a.get("in_channels")
        if cin and out_size:
            kernel = a.get("kernel_size") or (1,)
            groups = a.get("groups", 1) or 1
            return 2 * (int(cin) // int(groups)) * _prod(kernel) * out_size
        return 0
    if op == "linear":
        cin = a.get("in_channels")
        return 2 * int(cin) * out_size if cin and out_size else 0
    if op == "attention":
        embed = a.get("out_channels") or a.get("in_channels")
        if not embed or not out_shape or len(out_shape) < 2:
            return 0
        tokens = max(out_size // int(embed), 1)
        projections = 2 * tokens * int(embed) * 4 * int(embed)
        scores = 2 * 2 * tokens * tokens * int(embed)
        return projections + scores
    if op in _NORM_OPS:
        return 2 * out_size
    if op in {"max_pool", "avg_pool"}:
        kernel = a.get("kernel_size") or (1,)
        return _prod(kernel) * out_size
    return out_size


def _log(value: Any) -> float:
    try:
        return math.log1p(max(float(value), 0.0))
    except (TypeError, ValueError):
        return 0.0


def _first(value: Any) -> float:
    if isinstance(value, (tuple, list)):
        return float(value[0]) if value else 0.0
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def node_numeric_features(node: Node) -> list[float]:
    """Nine numeric features of a node (weighted flag, log channels, kernel, stride, ...)."""
    a = node.attrs
    return [
        1.0 if node.weighted else 0.0,
        _log(a.get("in_channels")),
        _log(a.get("out_channels")),
        _first(a.get("kernel_size")),
        _first(a.get("stride")),
        _log(a.get("groups")),
        1.0 if a.get("bias") else 0.0,
        _log(node.num_params),
        _log(_per_sample_size(a.get("output_shape"))),
    ]
