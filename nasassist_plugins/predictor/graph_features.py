"""GRAF-style hand-crafted graph features (op counts, path lengths, degrees, size).

GRAF (see the research overview slides) shows that simple, interpretable graph
features with a random forest are a strong predictor; this module computes such a
vector for any :class:`ComputationalGraph` so it can serve as a baseline and as optional
extra predictor features.
"""

from __future__ import annotations

import math
from functools import lru_cache

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


def _elementwise(pick, rows: list[tuple[float, ...]]) -> tuple[float, ...]:
    """Element-wise ``pick`` (min or max) over equal-length tuples."""
    return rows[0] if len(rows) == 1 else tuple(map(pick, *rows))


@lru_cache(maxsize=None)
def _path_weights(op: str) -> tuple[float, ...]:
    """How much a node of this op adds to a path, per :data:`_PATH_GROUPS` entry (1 or 0)."""
    return tuple(1.0 if group is None or op in group else 0.0 for group in _PATH_GROUPS)


def _path_lengths(
    graph: ComputationalGraph, order: list[int], preds: dict[int, list[int]], outputs: list[int]
) -> list[float]:
    """Shortest and longest input->output path per op group of :data:`_PATH_GROUPS`.

    A path's length counts its nodes whose op is in the group; paths through a ``zero``
    op are cut (they carry no signal). All groups are walked in one topological pass:
    which nodes are reachable does not depend on the group. Returns
    ``[shortest_0, longest_0, shortest_1, longest_1, ...]``.
    """
    nodes = graph.nodes
    shortest: list[tuple[float, ...] | None] = [None] * graph.num_nodes  # None: unreachable
    longest: list[tuple[float, ...] | None] = [None] * graph.num_nodes
    for i in order:
        op = nodes[i].op_type
        if op == "zero":
            continue
        weights = _path_weights(op)
        ps = preds.get(i)
        if not ps:
            shortest[i] = longest[i] = weights
            continue
        live = [p for p in ps if shortest[p] is not None]
        if not live:
            continue
        low = _elementwise(min, [shortest[p] for p in live])
        high = _elementwise(max, [longest[p] for p in live])
        shortest[i] = tuple(a + w for a, w in zip(low, weights))
        longest[i] = tuple(a + w for a, w in zip(high, weights))
    outs = [i for i in outputs if shortest[i] is not None]
    if not outs:
        return [0.0] * (2 * len(_PATH_GROUPS))
    low = _elementwise(min, [shortest[i] for i in outs])
    high = _elementwise(max, [longest[i] for i in outs])
    return [float(v) for pair in zip(low, high) for v in pair]


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
    edges = small.edges  # a copy per access: read it once
    preds: dict[int, list[int]] = {}
    for s, t in edges:
        preds.setdefault(t, []).append(s)
    features.extend(_path_lengths(small, small.topological_order(), preds, small.output_nodes()))
    indeg = np.bincount([t for _, t in edges], minlength=small.num_nodes)
    outdeg = np.bincount([s for s, _ in edges], minlength=small.num_nodes)
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
