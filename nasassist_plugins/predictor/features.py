"""Graph -> tensors for the encoder: per-attribute categorical ids plus the op id.

The thesis embeds every node attribute (op type, kernel, weight shape, bias, ...) with
its own embedding table. Attributes span orders of magnitude (3 to 2048 channels,
4x4 to 224x224 maps), so they are bucketed on a log2 scale before embedding: the
predictor then generalises across widths and resolutions it has not seen exactly.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch_geometric.data import Batch, Data

from nasassist_plugins.errors import GraphError
from nasassist_plugins.graph import OP_VOCABULARY, ComputationalGraph, Node

#: Categorical node attributes and their number of ids (0 is always "unknown/absent").
ATTRIBUTE_SIZES: dict[str, int] = {
    "kernel": 9,  # 0 none, 1..7 kernel size, 8 larger
    "stride": 4,  # 0 none, 1, 2, >2
    "groups": 4,  # 0 none, 1 dense, 2 depthwise, 3 grouped
    "bias": 3,  # 0 unknown, 1 no, 2 yes
    "in_channels": 14,  # log2 buckets
    "out_channels": 14,
    "resolution": 10,  # log2 of the output's spatial size (or sequence length)
    "params": 16,  # log4 buckets of the node's parameter count
    "rank": 6,  # dimensions of the output tensor
    "repeat": 6,  # folded repeats of the node's block: 0/1 once, 2, 3-4, 5-8, >8
    "norm": 4,  # fused normalisation: none, batch, layer, other
    "activation": 6,  # fused activation: none, relu, relu6, smooth (gelu/silu/...), squashing, other
    "act_position": 3,  # none, before the op, after it
}
UNKNOWN_OP_ID = len(OP_VOCABULARY)
NUM_OP_IDS = len(OP_VOCABULARY) + 1
OP_INDEX = {op: i for i, op in enumerate(OP_VOCABULARY)}


def _log_bucket(value: Any, base: int, top: int) -> int:
    """1 + floor(log_base(value)), clipped to [1, top - 1]; 0 for absent or non-positive values."""
    if type(value) is int and base & (base - 1) == 0:
        # ints (what adapters record) with a power-of-two base: exact, and cheaper than math.log
        if value <= 0:
            return 0
        return min((value.bit_length() - 1) // (base.bit_length() - 1) + 1, top - 1)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0
    if v <= 0 or math.isnan(v):
        return 0
    return int(min(max(math.floor(math.log(v, base)) + 1, 1), top - 1))


def _first_int(value: Any) -> int | None:
    if isinstance(value, (tuple, list)):
        return int(value[0]) if value else None
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_NORM_IDS = {"batchnorm": 1, "layernorm": 2}
_ACTIVATION_IDS = {"relu": 1, "relu6": 2, "gelu": 3, "silu": 3, "mish": 3, "elu": 3, "selu": 3, "softplus": 3,
                   "sigmoid": 4, "tanh": 4, "hardsigmoid": 4, "hardswish": 3, "leaky_relu": 1, "prelu": 1}


def _repeat_bucket(value: Any) -> int:
    r = int(value or 1)
    return 1 if r <= 1 else 2 if r == 2 else 3 if r <= 4 else 4 if r <= 8 else 5


def node_attribute_ids(node: Node) -> list[int]:
    """Bucketed ids of one node's attributes, in :data:`ATTRIBUTE_SIZES` order."""
    a = node.attrs
    kernel = _first_int(a.get("kernel_size"))
    stride = _first_int(a.get("stride"))
    groups = a.get("groups")
    in_ch = a.get("in_channels")
    shape = a.get("output_shape") or ()
    if groups is None:
        groups_id = 0
    elif int(groups) == 1:
        groups_id = 1
    elif in_ch is not None and int(groups) == int(in_ch):
        groups_id = 2
    else:
        groups_id = 3
    bias = a.get("bias")
    activation = a.get("post_act") or a.get("pre_act")
    if activation == "dropout":
        activation = None
    # spatial size of (N, C, H, W) maps, sequence length of (N, L, E) token tensors
    resolution = shape[2] if len(shape) >= 4 else (shape[1] if len(shape) == 3 else 0)
    return [
        0 if kernel is None else min(kernel, 8),
        0 if stride is None else min(stride, 3),
        groups_id,
        0 if bias is None else (2 if bias else 1),
        _log_bucket(in_ch, 2, ATTRIBUTE_SIZES["in_channels"]),
        _log_bucket(a.get("out_channels") or (shape[1] if len(shape) >= 2 else None), 2, ATTRIBUTE_SIZES["out_channels"]),
        _log_bucket(resolution, 2, ATTRIBUTE_SIZES["resolution"]),
        _log_bucket(node.num_params, 4, ATTRIBUTE_SIZES["params"]),
        min(len(shape), ATTRIBUTE_SIZES["rank"] - 1),
        _repeat_bucket(a.get("repeat")),
        0 if not a.get("post_norm") else _NORM_IDS.get(a["post_norm"], 3),
        0 if not activation else _ACTIVATION_IDS.get(activation, 5),
        0 if not activation else (1 if a.get("pre_act") else 2),
    ]


def graph_to_data(graph: ComputationalGraph, unknown_op_ids: dict[str, int] | None = None) -> Data:
    """Convert a graph into a PyG ``Data`` with ``op`` ids, ``attr`` ids, ``depth`` and edges.

    Edges keep their data-flow direction (the encoder aggregates both ways with
    separate weights). ``unknown_op_ids`` maps op names outside the vocabulary to the ids of
    their text-embedding rows (see :mod:`.op_text`); missing ones get the generic id.
    """
    if graph.num_nodes == 0:
        raise GraphError(f"cannot score graph {graph.name!r}: it has no nodes")
    unknown_op_ids = unknown_op_ids or {}
    ops = [OP_INDEX.get(n.op_type, unknown_op_ids.get(n.op_type, UNKNOWN_OP_ID)) for n in graph.nodes]
    attrs = [node_attribute_ids(n) for n in graph.nodes]
    order = graph.topological_order()
    depth = [0.0] * graph.num_nodes
    for rank, i in enumerate(order):
        depth[i] = rank / max(graph.num_nodes - 1, 1)
    edges = graph.edges
    if edges:
        edge_index = torch.tensor(edges, dtype=torch.long).t().contiguous()
    else:
        edge_index = torch.empty((2, 0), dtype=torch.long)
    return Data(
        op=torch.tensor(ops, dtype=torch.long),
        attr=torch.tensor(attrs, dtype=torch.long),
        depth=torch.tensor(depth, dtype=torch.float32).unsqueeze(1),
        edge_index=edge_index,
        num_nodes=graph.num_nodes,
    )


def collate(datas: Sequence[Data]) -> Batch:
    """Batch several graphs for one encoder pass."""
    return Batch.from_data_list(list(datas))
