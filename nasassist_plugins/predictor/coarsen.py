"""Coarsen a computational graph for the predictor (the graph itself stays faithful).

Two lossless-for-ranking reductions make the encoder 3-5x cheaper on stacked networks:

* **repeat folding** — consecutive sibling blocks with identical structure
  (``cells.0`` .. ``cells.4`` of one NB201 stage, ``layer1.0``/``layer1.1`` of a ResNet)
  are folded into the first one, whose nodes get a ``repeat`` count;
* **op fusion** — a normalisation or activation that is the only consumer of a node
  (``conv -> bn -> relu``) or the only producer for a weighted node (``relu -> conv``)
  is merged into it, recorded as ``post_norm``/``post_act``/``pre_act`` attributes, as
  compilers fuse them.

:func:`keep_block_apart` exempts one block from folding; layer relevance uses it so that
a layer masked inside a repeated block is compared with a reference that differs from
the masked graph by that layer only, not also by how the repeats were folded.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from nasassist_plugins.graph import ComputationalGraph, Node

_NORMS = frozenset({"batchnorm", "layernorm", "groupnorm", "instancenorm"})
_ACTIVATIONS = frozenset(
    {"relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "sigmoid", "hardsigmoid",
     "hardswish", "tanh", "softplus", "prelu", "dropout"}
)


#: Node attribute that keeps the node's block out of repeat folding (see :func:`keep_block_apart`).
KEEP_APART = "keep_apart"


def coarsen(graph: ComputationalGraph, *, fold_repeats: bool = True, fuse: bool = True) -> ComputationalGraph:
    """Return a coarsened copy of ``graph`` (see module docstring)."""
    nodes = list(graph.nodes)
    edges = list(graph.edges)
    repeats: dict[int, int] = {}
    if fold_repeats:
        nodes, edges, repeats = _fold_repeats(nodes, edges)
    # copy only the nodes that survive folding: the caller's graph is never modified
    nodes = [Node(n.op_type, n.name, n.module, dict(n.attrs)) for n in nodes]
    for i, count in repeats.items():
        nodes[i].attrs["repeat"] = count
    if fuse:
        nodes, edges = _fuse(nodes, edges)
    return ComputationalGraph.from_parts(nodes, edges, name=graph.name, metadata=graph.metadata)


@lru_cache(maxsize=65536)
def block_key(module: str | None) -> tuple[str, int] | None:
    """(container path, index) of the outermost numbered block of a module name, if any.

    ``cells.3.edges.1`` -> ``("cells", 3)``; ``stem.conv`` -> ``None``. Repeat folding
    compares sibling blocks with the same container path. Cached: stacked networks
    repeat their module names from graph to graph.
    """
    if not module:
        return None
    parts = module.split(".")
    for k, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[:k]), int(part)
    return None


def folded_blocks(graph: ComputationalGraph) -> set[tuple[str, int]]:
    """Blocks of ``graph`` that repeat folding merges with an identical sibling."""
    nodes, edges = graph.nodes, graph.edges
    blocks, replace, repeat = _plan_folding(nodes, edges)
    return {key for key, members in blocks.items() if members[0] in replace or members[0] in repeat}


def keep_block_apart(graph: ComputationalGraph, block: tuple[str, int]) -> ComputationalGraph:
    """A copy of ``graph`` whose ``block`` is never folded into, or with, its siblings.

    The block's nodes carry ``KEEP_APART``, which enters the folding signature; nothing
    else about the graph changes, so its coarsened form is the one a graph gets when that
    block differs from its siblings (for instance because one of its layers is masked).
    """
    nodes = [
        Node(n.op_type, n.name, n.module, {**n.attrs, KEEP_APART: True} if block_key(n.module) == block else dict(n.attrs))
        for n in graph.nodes
    ]
    return ComputationalGraph.from_parts(nodes, graph.edges, name=graph.name, metadata=graph.metadata)


def _node_signature(node: Node) -> tuple:
    """What must match for two nodes at the same position of sibling blocks to be repeats."""
    a = node.attrs
    return (node.op_type, a.get("kernel_size"), a.get("stride"), a.get("out_channels"), a.get("output_shape"),
            a.get(KEEP_APART))


def _plan_folding(
    nodes: list[Node], edges: list[tuple[int, int]]
) -> tuple[dict[tuple[str, int], list[int]], dict[int, int], dict[int, int]]:
    """Which sibling blocks repeat each other.

    Two consecutive blocks of one container are repeats when their nodes match one to one
    (op and shape attributes, see :func:`_node_signature`) and so do their inner edges.
    Returns the blocks (``{block key: member nodes}``), ``{dropped node: node of the kept
    block at the same position}`` and ``{kept node: number of copies it stands for}``.
    """
    blocks: dict[tuple[str, int], list[int]] = {}
    block_of: list[tuple[str, int] | None] = [None] * len(nodes)
    position = [0] * len(nodes)  # a node's index inside its block
    for i, node in enumerate(nodes):
        key = block_key(node.module)
        if key is not None:
            members = blocks.setdefault(key, [])
            block_of[i] = key
            position[i] = len(members)
            members.append(i)
    replace: dict[int, int] = {}
    repeat: dict[int, int] = {}
    if not blocks:
        return blocks, replace, repeat
    inner: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for s, t in edges:
        key = block_of[s]
        if key is not None and key == block_of[t]:
            inner[key].append((position[s], position[t]))
    by_container: dict[str, list[int]] = defaultdict(list)
    for container, index in blocks:
        by_container[container].append(index)
    for container, indices in by_container.items():
        if len(indices) < 2:
            continue  # a block without siblings has nothing to fold into
        indices.sort()
        kept_key = None
        kept_sig = None
        count = 0
        for index in indices:
            key = (container, index)
            members = blocks[key]
            sig = (tuple(_node_signature(nodes[i]) for i in members), sorted(inner.get(key, ())))
            if kept_sig is not None and sig == kept_sig and index == kept_key[1] + count:
                for dropped, kept in zip(members, blocks[kept_key]):
                    replace[dropped] = kept
                count += 1
                for kept in blocks[kept_key]:
                    repeat[kept] = count
            else:
                kept_key, kept_sig, count = key, sig, 1
    return blocks, replace, repeat


def _fold_repeats(
    nodes: list[Node], edges: list[tuple[int, int]]
) -> tuple[list[Node], list[tuple[int, int]], dict[int, int]]:
    """Drop repeated sibling blocks (see :func:`_plan_folding`).

    Returns kept nodes, edges and {kept node: repeat count}; reads ``nodes`` without
    modifying them.
    """
    _, replace, repeat = _plan_folding(nodes, edges)
    if not replace:
        return nodes, edges, {}
    keep = [i for i in range(len(nodes)) if i not in replace]
    new_index = {old: new for new, old in enumerate(keep)}
    new_edges = set()
    for s, t in edges:
        if t in replace:
            continue  # edges into folded copies are represented by the kept block's own inputs
        s = replace.get(s, s)
        if s != t:
            new_edges.add((new_index[s], new_index[t]))
    return [nodes[i] for i in keep], sorted(new_edges), {new_index[i]: c for i, c in repeat.items()}


def _fuse(nodes: list[Node], edges: list[tuple[int, int]]) -> tuple[list[Node], list[tuple[int, int]]]:
    succ: dict[int, list[int]] = defaultdict(list)
    pred: dict[int, list[int]] = defaultdict(list)
    for s, t in edges:
        succ[s].append(t)
        pred[t].append(s)
    merged_into: dict[int, int] = {}

    def root(i: int) -> int:
        while i in merged_into:
            i = merged_into[i]
        return i

    for i, node in enumerate(nodes):
        op = node.op_type
        if op not in _NORMS and op not in _ACTIVATIONS:
            continue
        if len(pred[i]) == 1:
            p = root(pred[i][0])
            parent = nodes[p]
            # p == i when the producer was itself fused forward into this node (relu -> bn)
            if p != i and len(succ[pred[i][0]]) == 1 and parent.op_type not in {"input", "output"}:
                key = "post_norm" if op in _NORMS else "post_act"
                parent.attrs.setdefault(key, op)
                parent.attrs["num_params"] = parent.num_params + node.num_params
                merged_into[i] = p
                continue
        if op in _ACTIVATIONS and len(succ[i]) == 1:
            c = succ[i][0]
            if len(pred[c]) == 1 and nodes[c].weighted:
                nodes[c].attrs.setdefault("pre_act", op)
                merged_into[i] = c
    if not merged_into:
        return nodes, edges
    keep = [i for i in range(len(nodes)) if i not in merged_into]
    new_index = {old: new for new, old in enumerate(keep)}
    new_edges = set()
    for s, t in edges:
        s, t = root(s), root(t)
        if s != t:
            new_edges.add((new_index[s], new_index[t]))
    return [nodes[i] for i in keep], sorted(new_edges)
