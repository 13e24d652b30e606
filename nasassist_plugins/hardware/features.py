"""Device-independent cost features of a computational graph, for latency prediction.

A forward pass costs arithmetic (FLOPs), memory traffic (the activations each op writes)
and per-op overhead (kernel launches, the length of the critical path). For every op
category below the features hold the number of nodes, their FLOPs and the elements
they write, all ``log1p``-scaled, in three scopes: every node (what an eager framework
such as PyTorch executes), the *live* nodes (what a graph compiler keeps after removing
branches that reach no output: ``zero`` ops do not read their input) and the *folded*
nodes (live nodes that are not constants, i.e. not fed only by ``zero`` ops). On NB201
the scopes are what separates the edge GPU, the phones and the Raspberry Pi from the
desktop GPUs. Per scope, global features add the total FLOPs, written elements, node
count and the longest path counted in compute nodes; then parameters, depth and input size.

Categories: dense ``k×k`` convolutions, ``1×1`` convolutions, grouped/depthwise
convolutions, linear/matmul/attention, normalisations, activations, pooling,
element-wise arithmetic, and data movement (concat, reshape, identity, zero, ...).

Example::

    from nasassist_plugins.hardware.features import FEATURE_NAMES, hardware_features
    x = hardware_features(graph)          # numpy vector, len(FEATURE_NAMES)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np

from nasassist_plugins.graph.node_stats import node_flops

if TYPE_CHECKING:  # pragma: no cover
    from nasassist_plugins.graph import ComputationalGraph, Node

__all__ = ["CATEGORIES", "FEATURE_NAMES", "hardware_features", "hardware_feature_matrix", "op_category"]

_CONV = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose2d"})
_DENSE = frozenset({"linear", "matmul", "attention", "embedding"})
_NORM = frozenset({"batchnorm", "layernorm", "groupnorm", "instancenorm"})
_ACT = frozenset({"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "sigmoid", "hardsigmoid",
                  "hardswish", "tanh", "softmax", "log_softmax", "softplus", "prelu"})  # fmt: skip
_POOL = frozenset({"max_pool", "avg_pool", "global_avg_pool", "global_max_pool", "mean", "sum"})
_ELEMENTWISE = frozenset({"add", "sub", "mul", "div", "neg", "pow", "sqrt", "exp"})
_FREE = frozenset({"input", "output"})

#: Op categories, in feature order.
CATEGORIES: tuple[str, ...] = ("conv", "conv1x1", "conv_grouped", "dense", "norm", "act", "pool", "eltwise", "move")

_COMPUTE = frozenset({"conv", "conv1x1", "conv_grouped", "dense", "pool"})

_SCOPES = ("all", "live", "folded")

#: Names of the entries of :func:`hardware_features`, in order.
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"{scope}_{c}_{what}" for scope in _SCOPES for c in CATEGORIES for what in ("count", "flops", "writes"))
    + tuple(f"{scope}_{what}" for scope in _SCOPES for what in ("flops", "writes", "nodes", "compute_depth"))
    + ("params", "depth", "input")
)


def op_category(node: "Node") -> str | None:
    """The cost category of a node (``None`` for graph inputs and outputs)."""
    op = node.op_type
    if op in _FREE:
        return None
    if op in _CONV or op == "depthwise_conv2d":
        groups = int(node.attrs.get("groups", 1) or 1)
        if op == "depthwise_conv2d" or groups > 1:
            return "conv_grouped"
        kernel = node.attrs.get("kernel_size") or (1,)
        return "conv1x1" if all(int(k) == 1 for k in kernel) else "conv"
    if op in _DENSE:
        return "dense"
    if op in _NORM:
        return "norm"
    if op in _ACT:
        return "act"
    if op in _POOL:
        return "pool"
    if op in _ELEMENTWISE:
        return "eltwise"
    return "move"


def _writes(node: "Node") -> int:
    shape = node.attrs.get("output_shape")
    if not shape:
        return 0
    dims = shape[1:] if len(shape) > 1 else shape
    return math.prod(int(d) for d in dims)


def _live_nodes(
    graph: "ComputationalGraph", preds: list[list[int]], order: list[int], *, fold_constants: bool
) -> list[bool]:
    """Nodes a graph compiler keeps.

    ``zero`` ops never read their input, so a branch whose only consumers are ``zero`` ops
    reaches no output and is removed (dead-code elimination). With ``fold_constants``, ops
    fed only by ``zero`` ops (constants) are folded away too.
    """
    n = graph.num_nodes
    constant = [graph.nodes[i].op_type == "zero" for i in range(n)]
    if fold_constants:
        for i in order:
            if graph.nodes[i].op_type != "input" and preds[i] and all(constant[p] for p in preds[i]):
                constant[i] = True
    succs: list[list[int]] = [[] for _ in range(n)]
    for t, sources in enumerate(preds):
        for s in sources:
            succs[s].append(t)
    live = [False] * n
    for i in reversed(order):
        if constant[i]:
            continue
        live[i] = (not succs[i]) or any(live[t] for t in succs[i])
    return live


def _depths(order: list[int], preds: list[list[int]], weights: Sequence[Sequence[float]]) -> list[float]:
    """Longest path under each weighting of the nodes (one pass; a weight of 0 drops a node)."""
    k = len(weights)
    depth = [[0.0] * k for _ in range(len(weights[0]) if k else 0)]
    best = [0.0] * k
    for i in order:
        row = depth[i]
        for p in preds[i]:
            prev = depth[p]
            for j in range(k):
                if prev[j] > row[j]:
                    row[j] = prev[j]
        for j in range(k):
            row[j] += weights[j][i]
            if row[j] > best[j]:
                best[j] = row[j]
    return best


def hardware_features(graph: "ComputationalGraph") -> np.ndarray:
    """The ``FEATURE_NAMES`` vector of one graph (float64, ``log1p``-scaled sizes)."""
    n = graph.num_nodes
    order = graph.topological_order() if n else []
    preds: list[list[int]] = [[] for _ in range(n)]
    for s, t in graph.edges:
        preds[t].append(s)
    live = _live_nodes(graph, preds, order, fold_constants=False)
    folded = _live_nodes(graph, preds, order, fold_constants=True)
    per = {(c, scope): [0.0, 0.0, 0.0] for c in CATEGORIES for scope in _SCOPES}
    totals = {scope: [0.0, 0.0] for scope in _SCOPES}
    compute = [0.0] * n
    input_size = 0
    for i, node in enumerate(graph.nodes):
        category = op_category(node)
        if category is None:
            if node.op_type == "input":
                input_size += _writes(node)
            continue
        compute[i] = 1.0 if category in _COMPUTE else 0.0
        flops, writes = float(node_flops(node)), float(_writes(node))
        for scope in ("all",) + (("live",) if live[i] else ()) + (("folded",) if folded[i] else ()):
            row = per[(category, scope)]
            row[0] += 1
            row[1] += flops
            row[2] += writes
            totals[scope][0] += flops
            totals[scope][1] += writes
    ones = [1.0] * n
    scopes = (("all", ones), ("live", live), ("folded", folded))
    depths = _depths(order, preds, [[c * k for c, k in zip(compute, keep)] for _, keep in scopes] + [ones]) \
        if n else [0.0] * 4  # fmt: skip
    values: list[float] = []
    for scope in _SCOPES:
        for c in CATEGORIES:
            values += [math.log1p(v) for v in per[(c, scope)]]
    for (scope, keep), depth in zip(scopes, depths):
        values += [math.log1p(totals[scope][0]), math.log1p(totals[scope][1]), math.log1p(sum(keep)), math.log1p(depth)]
    values += [math.log1p(graph.num_parameters), math.log1p(depths[3]), math.log1p(input_size)]
    return np.asarray(values, dtype=np.float64)


def hardware_feature_matrix(graphs: Iterable[ComputationalGraph]) -> np.ndarray:
    """:func:`hardware_features` of many graphs, one row each."""
    rows = [hardware_features(g) for g in graphs]
    return np.vstack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))
