"""Framework-agnostic computational graphs and the shared operation vocabulary."""

from nasassist_plugins.graph.computational_graph import (
    GRAPH_FORMAT,
    GRAPH_FORMAT_VERSION,
    NODE_FEATURES,
    ComputationalGraph,
    GraphSummary,
    Node,
)
from nasassist_plugins.graph.ops import (
    OP_DESCRIPTIONS,
    OP_VOCABULARY,
    REGULAR_OPS,
    WEIGHTED_OPS,
    is_known_op,
    is_weighted_op,
)

__all__ = [
    "ComputationalGraph",
    "GraphSummary",
    "Node",
    "NODE_FEATURES",
    "GRAPH_FORMAT",
    "GRAPH_FORMAT_VERSION",
    "OP_VOCABULARY",
    "OP_DESCRIPTIONS",
    "WEIGHTED_OPS",
    "REGULAR_OPS",
    "is_known_op",
    "is_weighted_op",
]
