"""GRAF-style hand-crafted graph features (op counts, path lengths, degrees, size).

GRAF (see the research overview slides) shows that simple, interpretable graph
features with a random forest are a strong predictor; this module computes such a
vector for any :class:`ComputationalGraph` so it can serve as a baseline and as optional
extra predictor features.
"""

from __future__ import annotations

import math

import numpy as np

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.coarsen import coarsen

_OP_GROUPS: dict[str, frozenset[str]] = {
    "conv": frozenset({"conv1d", "conv2d", "conv3d", "depthwise_conv2d", "conv_transpose2d"}),
    "linear": frozenset({"linear", "attention", "matmul"}),
    "pool": frozenset({"max_pool", "avg_pool", "global_avg_pool", "global_max_pool"}),
    "skip": frozenset({"identity"}),
    "zero": frozenset({"zero"}),
    "merge": frozenset({"add", "concat", "mul"}),
    "norm": frozenset({"batchnorm", "layernorm", "groupnorm", "instancenorm"}),
}


#: Op subsets whose shortest/longest path lengths are features (None: every op).
_PATH_GROUPS = (None, _OP_GROUPS["conv"], _OP_GROUPS["conv"] | _OP_GROUPS["linear"], _OP_GROUPS["pool"])


def _path_lengths(
    graph: ComputationalGraph,
    allowed: frozenset[str] | None,
    order: list[int],
    preds: dict[int, list[int]],
    outputs: list[int],
) -> tuple[float, float]:
    """Shortest and longest input->output path, counting nodes whose op is in ``allowed``.

    Paths through a ``zero`` op are cut (they carry no signal). ``order``, ``preds`` and
    ``outputs`` (topological order, predecessor lists, output nodes) are shared by the
    caller's several calls on one graph.
    """
    inf = math.inf
    shortest = [inf] * graph.num_nodes
    longest = [-inf] * graph.num_nodes
    for i in order:
        node = graph.nodes[i]
        weight = 1.0 if (allowed is None or node.op_type in allowed) else 0.0
        if node.op_type == "zero":
            continue
        ps = [p for p in preds.get(i, []) if shortest[p] < inf]
        if not preds.get(i):
            shortest[i] = longest[i] = weight
        elif ps:
            shortest[i] = min(shortest[p] for p in ps) + weight
            longest[i] = max(longest[p] for p in ps) + weight
    outs = [i for i in outputs if shortest[i] < inf]
    if not outs:
        return 0.0, 0.0
    return float(min(shortest[i] for i in outs)), float(max(longest[i] for i in outs))


def graph_features(graph: ComputationalGraph, coarse: ComputationalGraph | None = None) -> np.ndarray:
    """Feature vector: log size figures, op-group counts, path lengths per group, degree stats.

    ``coarse`` is ``coarsen(graph)`` when the caller already has it.
    """
    small = coarse if coarse is not None else coarsen(graph)
    counts = small.op_counts()
    features = [
        math.log1p(graph.num_parameters),
        math.log1p(graph.flops),
        math.log1p(graph.num_nodes),
        math.log1p(small.num_nodes),
    ]
    for group in _OP_GROUPS.values():
        features.append(sum(counts.get(op, 0) for op in group))
    order = small.topological_order()
    preds: dict[int, list[int]] = {}
    for s, t in small.edges:
        preds.setdefault(t, []).append(s)
    outputs = small.output_nodes()
    for group in _PATH_GROUPS:
        features.extend(_path_lengths(small, group, order, preds, outputs))
    indeg = np.bincount([t for _, t in small.edges], minlength=small.num_nodes)
    outdeg = np.bincount([s for s, _ in small.edges], minlength=small.num_nodes)
    features += [float(indeg.mean()), float(indeg.max()), float(outdeg.max())]
    return np.asarray(features, dtype=np.float64)


def graph_feature_matrix(graphs, coarse=None) -> np.ndarray:
    """Stacked :func:`graph_features` of several graphs, shape (n, NUM_GRAPH_FEATURES)."""
    if not graphs:
        return np.zeros((0, NUM_GRAPH_FEATURES))
    coarse = coarse if coarse is not None else [None] * len(graphs)
    return np.stack([graph_features(g, c) for g, c in zip(graphs, coarse)])


#: Length of the :func:`graph_features` vector.
NUM_GRAPH_FEATURES = 4 + len(_OP_GROUPS) + 8 + 3
