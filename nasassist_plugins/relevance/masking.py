"""Layers of a computational graph, their breadth-first order, and layer masking.

A *layer* is what a user recognises in their source code: every operation node traced
from one module (all nodes whose ``module`` is ``layer1.0.conv2``; a module called
several times contributes several nodes). Nodes without a module (functional calls
such as ``x + y`` or ``F.relu``) each form a layer of their own, named after the node.
``input`` and ``output`` nodes are never layers: masking them would leave no model.

Masking a layer swaps each of its nodes for a parameter-free ``identity`` node at the
same index with the same ``output_shape``. Every edge into and out of the layer then
runs through these identity placeholders (the "dummy edges" of the thesis), so the
graph keeps its topology, stays acyclic, and downstream shapes stay consistent, while
the predictor no longer sees the layer's operation, weights or FLOPs.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

from nasassist_plugins.graph import ComputationalGraph, Node

__all__ = ["Layer", "graph_layers", "mask_layer", "mask_nodes", "MASK_OP", "SKIPPED_OPS"]

#: The op type that replaces a masked node.
MASK_OP = "identity"
#: Op types that never form a layer.
SKIPPED_OPS = frozenset({"input", "output"})


@dataclass(frozen=True)
class Layer:
    """One maskable unit of a graph.

    Attributes:
        key: the module's qualified name (``layer1.0.conv2``), or the node name for a
            node traced from a functional call.
        module: the qualified module name, ``None`` for a functional node.
        nodes: indices of the layer's nodes in the graph, in breadth-first order.
        op_types: op type of each node, aligned with ``nodes``.
        num_params: parameters of the layer (sum over its nodes).
    """

    key: str
    module: str | None
    nodes: tuple[int, ...]
    op_types: tuple[str, ...]
    num_params: int

    @property
    def op_summary(self) -> str:
        """Compact op list, e.g. ``conv2d``, or ``relu×3`` for a module called three times."""
        counts: dict[str, int] = {}
        for op in self.op_types:
            counts[op] = counts.get(op, 0) + 1
        return ", ".join(op if n == 1 else f"{op}×{n}" for op, n in counts.items())


def breadth_first_order(graph: ComputationalGraph) -> list[int]:
    """Node indices in breadth-first order from the graph's sources.

    Starts from every node without predecessors (the ``input`` nodes, plus constants
    such as ``get_attr`` tensors) in index order, so every node of the DAG is reached.
    """
    children: list[list[int]] = [[] for _ in range(graph.num_nodes)]
    has_parent = [False] * graph.num_nodes
    for s, t in graph.edges:
        children[s].append(t)
        has_parent[t] = True
    sources = [i for i in range(graph.num_nodes) if not has_parent[i]]
    seen = set(sources)
    queue = deque(sources)
    order: list[int] = []
    while queue:
        i = queue.popleft()
        order.append(i)
        for c in children[i]:
            if c not in seen:
                seen.add(c)
                queue.append(c)
    return order


def graph_layers(graph: ComputationalGraph) -> list[Layer]:
    """The graph's layers, ordered by when a breadth-first traversal first meets them."""
    members: dict[str, list[int]] = {}
    modules: dict[str, str | None] = {}
    module_names = {n.module for n in graph.nodes if n.module}
    for i in breadth_first_order(graph):
        node = graph.nodes[i]
        if node.op_type in SKIPPED_OPS:
            continue
        key = _layer_key(node, i, module_names)
        members.setdefault(key, []).append(i)
        modules[key] = node.module
    return [
        Layer(
            key=key,
            module=modules[key],
            nodes=tuple(idx),
            op_types=tuple(graph.nodes[i].op_type for i in idx),
            num_params=sum(graph.nodes[i].num_params for i in idx),
        )
        for key, idx in members.items()
    ]


def mask_nodes(graph: ComputationalGraph, nodes: Iterable[int]) -> ComputationalGraph:
    """A copy of ``graph`` whose ``nodes`` are replaced by identity placeholders.

    Node indices and edges are unchanged, so the copy is as valid as the original;
    the placeholders keep the node's name, module and ``output_shape`` and carry
    ``masked=True``. The original graph is not modified.
    """
    masked = set(nodes)
    bad = [i for i in masked if not 0 <= i < graph.num_nodes]
    if bad:
        raise IndexError(f"node indices {sorted(bad)} are outside a graph of {graph.num_nodes} nodes")
    new_nodes = [
        _identity_like(node) if i in masked else Node(node.op_type, node.name, node.module, dict(node.attrs))
        for i, node in enumerate(graph.nodes)
    ]
    metadata = dict(graph.metadata)
    return ComputationalGraph.from_parts(new_nodes, graph.edges, name=graph.name, metadata=metadata)


def mask_layer(graph: ComputationalGraph, layer: Layer | str) -> ComputationalGraph:
    """A copy of ``graph`` with one layer (a :class:`Layer` or its key) masked."""
    if isinstance(layer, str):
        found = {l.key: l for l in graph_layers(graph)}.get(layer)
        if found is None:
            raise KeyError(f"graph {graph.name!r} has no layer {layer!r}")
        layer = found
    masked = mask_nodes(graph, layer.nodes)
    masked.metadata["masked_layer"] = layer.key
    return masked


def masked_variants(graph: ComputationalGraph, layers: Sequence[Layer]) -> list[ComputationalGraph]:
    """One masked copy of ``graph`` per layer, in the order of ``layers``."""
    return [mask_layer(graph, layer) for layer in layers]


def _layer_key(node: Node, index: int, module_names: set[str]) -> str:
    """A module's qualified name, or the node's own name for a functional node.

    A functional node whose name happens to equal a module name gets ``#index``
    appended, so it never merges into that module's layer.
    """
    if node.module:
        return node.module
    name = node.name or f"node_{index}"
    return f"{name}#{index}" if name in module_names else name


def _identity_like(node: Node) -> Node:
    """A parameter-free identity placeholder standing where ``node`` was."""
    attrs: dict = {"masked": True, "masked_op": node.op_type}
    if "output_shape" in node.attrs:
        attrs["output_shape"] = node.attrs["output_shape"]
    return Node(MASK_OP, node.name, node.module, attrs)
