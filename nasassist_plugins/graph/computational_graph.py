"""Framework-agnostic computational graph of a candidate architecture.

A :class:`ComputationalGraph` is a directed acyclic graph whose nodes are operations
named from the shared vocabulary in :mod:`nasassist_plugins.graph.ops` and whose edges
follow the data flow. Every adapter (PyTorch, ONNX, benchmark cells) produces one, and
everything downstream (predictor, proxies, relevance, samplers) consumes one.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from nasassist_plugins.errors import GraphError
from nasassist_plugins.graph.node_stats import MATMUL_OPS, flops_unknown, node_flops, node_numeric_features
from nasassist_plugins.graph.ops import OP_VOCABULARY, is_known_op, is_weighted_op
from nasassist_plugins.graph.validation import check_finite, checked_attr

GRAPH_FORMAT = "nasassist.graph"
GRAPH_FORMAT_VERSION = 1

# Attributes whose values are shapes/tuples: JSON stores them as lists, loading turns
# them back into tuples so a round trip is lossless.
_TUPLE_ATTRS = frozenset(
    {"kernel_size", "stride", "padding", "dilation", "weight_shape", "output_shape"}
)

#: Largest graph file :meth:`ComputationalGraph.from_json` reads, and most nodes/edges.
MAX_GRAPH_FILE_BYTES = 256 * 1024 * 1024
MAX_GRAPH_NODES = 1_000_000

# Attributes that define the architecture (not naming): used by the isomorphism hash.
_HASH_ATTRS = ("kernel_size", "stride", "dilation", "groups", "in_channels", "out_channels")

#: Numeric node features exported by :meth:`ComputationalGraph.to_pyg`, in column order.
NODE_FEATURES: tuple[str, ...] = (
    "weighted",
    "log_in_channels",
    "log_out_channels",
    "kernel",
    "stride",
    "log_groups",
    "bias",
    "log_params",
    "log_output_size",
)


@dataclass
class Node:
    """One operation of a :class:`ComputationalGraph`.

    Attributes:
        op_type: Normalised operation name from the shared vocabulary, or the raw
            (lower-cased) name of an operator no rule recognises.
        name: Unique, readable name of the node inside its graph.
        module: Qualified name of the originating module (``layer1.0.conv2``), so that
            later features can point back at source code lines; ``None`` when the op
            comes from a functional call or a file format without module scopes.
        attrs: Shape attributes (``in_channels``, ``out_channels``, ``kernel_size``,
            ``stride``, ``groups``, ``bias``, ``weight_shape``, ``output_shape``,
            ``num_params``, ...). Missing keys mean "unknown".
    """

    op_type: str
    name: str
    module: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def weighted(self) -> bool:
        """Whether the node carries a weight tensor (conv, linear, norm, ...)."""
        return is_weighted_op(self.op_type) or self.num_params > 0

    @property
    def known(self) -> bool:
        """Whether ``op_type`` is part of the shared vocabulary."""
        return is_known_op(self.op_type)

    @property
    def num_params(self) -> int:
        return int(self.attrs.get("num_params", 0) or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "op_type": self.op_type,
            "name": self.name,
            "module": self.module,
            "attrs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.attrs.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Node":
        """Rebuild a node from ``to_dict()`` output, checking every attribute.

        Raises:
            GraphError: a missing or non-string name/op type, or an attribute that is not
                finite (NaN, inf), not an integer where a count or shape belongs, negative,
                or beyond any real network.
        """
        if not isinstance(data, Mapping):
            raise GraphError(f"a node must be a JSON object, got {type(data).__name__}")
        op_type, name, module = data.get("op_type"), data.get("name"), data.get("module")
        if not isinstance(op_type, str) or not op_type or not isinstance(name, str) or not name:
            raise GraphError(f"a node needs a non-empty string 'op_type' and 'name', got {op_type!r}, {name!r}")
        if module is not None and not isinstance(module, str):
            raise GraphError(f"node {name!r}: 'module' must be a string or null, got {type(module).__name__}")
        raw = data.get("attrs", {})
        if not isinstance(raw, Mapping):
            raise GraphError(f"node {name!r}: 'attrs' must be a JSON object, got {type(raw).__name__}")
        attrs = {str(k): checked_attr(name, str(k), v, _TUPLE_ATTRS) for k, v in raw.items()}
        return cls(op_type=op_type, name=name, module=module, attrs=attrs)


@dataclass(frozen=True)
class GraphSummary:
    """Aggregate figures of a graph, as printed by ``nasassist graph``."""

    name: str
    num_nodes: int
    num_edges: int
    num_weighted_nodes: int
    num_parameters: int
    flops: int
    op_counts: dict[str, int]
    unknown_ops: tuple[str, ...]
    #: FLOPs of convolutions, linear layers and attention only, as the ``flops`` proxy
    #: (torch's ``FlopCounterMode``) counts them, leaving element-wise ops out.
    matmul_flops: int = 0
    #: Names of the nodes whose FLOPs are unknown (left out of both counts, not guessed).
    flops_unknown: tuple[str, ...] = ()
    #: Why the graph may not be the whole model (e.g. data-dependent control flow seen
    #: while tracing: only the branch taken is recorded); empty when it is whole.
    partial: str = ""


class ComputationalGraph:
    """A directed acyclic graph of operations.

    Nodes are addressed by integer index (the order they were added); edges are
    ``(source, target)`` index pairs in data-flow direction. Build one with
    :meth:`add_node`/:meth:`add_edge`, or get one from an adapter
    (``nasassist_plugins.adapters.from_torch``, ``from_onnx``, the cell builders).
    """

    def __init__(self, name: str = "graph", metadata: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._nodes: list[Node] = []
        self._edges: list[tuple[int, int]] = []
        self._edge_set: set[tuple[int, int]] = set()
        # ((num nodes, num edges) it was computed for, order): see topological_order
        self._topological_cache: tuple[tuple[int, int], list[int]] | None = None

    # ------------------------------------------------------------------ building
    def add_node(
        self,
        op_type: str,
        name: str | None = None,
        module: str | None = None,
        **attrs: Any,
    ) -> int:
        """Append a node and return its index."""
        if not isinstance(op_type, str) or not op_type:
            raise GraphError(f"op_type must be a non-empty string, got {op_type!r}")
        index = len(self._nodes)
        self._nodes.append(
            Node(op_type=op_type, name=name or f"{op_type}_{index}", module=module, attrs=dict(attrs))
        )
        return index

    def add_edge(self, source: int, target: int) -> None:
        """Add a data-flow edge ``source -> target`` (duplicates are ignored)."""
        n = len(self._nodes)
        for end in (source, target):
            if not isinstance(end, int) or not 0 <= end < n:
                raise GraphError(f"edge ({source}, {target}) names node {end!r}, but the graph has {n} nodes")
        if source == target:
            raise GraphError(f"self-loop on node {source} ({self._nodes[source].name}) is not allowed")
        edge = (source, target)
        if edge not in self._edge_set:
            self._edge_set.add(edge)
            self._edges.append(edge)

    # ------------------------------------------------------------------ access
    @property
    def nodes(self) -> list[Node]:
        return self._nodes

    @property
    def edges(self) -> list[tuple[int, int]]:
        return list(self._edges)

    @property
    def num_nodes(self) -> int:
        return len(self._nodes)

    @property
    def num_edges(self) -> int:
        return len(self._edges)

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self._nodes)

    def __repr__(self) -> str:
        return (
            f"ComputationalGraph(name={self.name!r}, nodes={self.num_nodes}, edges={self.num_edges}, "
            f"params={self.num_parameters})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ComputationalGraph):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def predecessors(self, index: int) -> list[int]:
        return [s for s, t in self._edges if t == index]

    def successors(self, index: int) -> list[int]:
        return [t for s, t in self._edges if s == index]

    def input_nodes(self) -> list[int]:
        """Nodes of op ``input``, or, failing that, nodes without predecessors."""
        marked = [i for i, n in enumerate(self._nodes) if n.op_type == "input"]
        if marked:
            return marked
        has_pred = {t for _, t in self._edges}
        return [i for i in range(self.num_nodes) if i not in has_pred]

    def output_nodes(self) -> list[int]:
        """Nodes of op ``output``, or, failing that, nodes without successors."""
        marked = [i for i, n in enumerate(self._nodes) if n.op_type == "output"]
        if marked:
            return marked
        has_succ = {s for s, _ in self._edges}
        return [i for i in range(self.num_nodes) if i not in has_succ]

    def topological_order(self) -> list[int]:
        """Node indices in an order where every edge points forward (Kahn's algorithm).

        The order is cached until a node or an edge is added (the predictor asks for it
        several times per graph).

        Raises:
            GraphError: if the graph has a cycle.
        """
        size = (len(self._nodes), len(self._edges))
        cached = self._topological_cache
        if cached is not None and cached[0] == size:
            return list(cached[1])
        indegree = [0] * self.num_nodes
        children: list[list[int]] = [[] for _ in range(self.num_nodes)]
        for s, t in self._edges:
            indegree[t] += 1
            children[s].append(t)
        order = [i for i, d in enumerate(indegree) if d == 0]  # grows while it is read: a FIFO queue
        for i in order:
            for c in children[i]:
                indegree[c] -= 1
                if indegree[c] == 0:
                    order.append(c)
        if len(order) != self.num_nodes:
            stuck = [self._nodes[i].name for i, d in enumerate(indegree) if d > 0][:5]
            raise GraphError(f"graph {self.name!r} has a cycle through nodes {stuck}")
        self._topological_cache = (size, order)
        return list(order)

    def validate(self) -> "ComputationalGraph":
        """Check the graph is non-empty and acyclic; return it for chaining."""
        if self.num_nodes == 0:
            raise GraphError(f"graph {self.name!r} is empty: it has no nodes")
        self.topological_order()
        return self

    # ------------------------------------------------------------------ figures
    @property
    def num_parameters(self) -> int:
        """Total trainable parameters over all nodes."""
        return sum(n.num_params for n in self._nodes)

    @property
    def flops(self) -> int:
        """Estimated floating-point operations of one forward pass for one sample.

        Uses a node's ``flops`` attribute when the adapter measured it, otherwise an
        estimate from its shape attributes (multiply-add counted as two).
        """
        return sum(node_flops(n) for n in self._nodes)

    @property
    def matmul_flops(self) -> int:
        """FLOPs of convolutions, linear layers and attention only (multiply-add counted as two).

        The convention of torch's ``FlopCounterMode`` and so of the ``flops`` zero-cost proxy:
        element-wise ops, normalisation and pooling are left out. :attr:`flops` counts them too.
        """
        return sum(node_flops(n) for n in self._nodes if n.op_type in MATMUL_OPS)

    def op_counts(self) -> Counter[str]:
        return Counter(n.op_type for n in self._nodes)

    def weighted_op_counts(self) -> Counter[str]:
        """Multiset of op types of the weighted nodes (used to compare adapters)."""
        return Counter(n.op_type for n in self._nodes if n.weighted)

    def summary(self) -> GraphSummary:
        counts = self.op_counts()
        return GraphSummary(
            name=self.name,
            num_nodes=self.num_nodes,
            num_edges=self.num_edges,
            num_weighted_nodes=sum(1 for n in self._nodes if n.weighted),
            num_parameters=self.num_parameters,
            flops=self.flops,
            op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            unknown_ops=tuple(sorted({n.op_type for n in self._nodes if not n.known})),
            matmul_flops=self.matmul_flops,
            flops_unknown=tuple(n.name or n.op_type for n in self._nodes if flops_unknown(n)),
            partial=str(self.metadata.get("partial") or ""),
        )

    # ------------------------------------------------------------------ conversions
    def to_dict(self) -> dict[str, Any]:
        """The graph as a JSON-able dict (format, version, name, nodes, edges, metadata)."""
        return {
            "format": GRAPH_FORMAT,
            "version": GRAPH_FORMAT_VERSION,
            "name": self.name,
            "metadata": self.metadata,
            "nodes": [n.to_dict() for n in self._nodes],
            "edges": [list(e) for e in self._edges],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ComputationalGraph":
        """Rebuild a graph from :meth:`to_dict` output, checking its format."""
        if not isinstance(data, Mapping):
            raise GraphError(f"a graph must be a JSON object, got {type(data).__name__}")
        if data.get("format") != GRAPH_FORMAT:
            raise GraphError(f"not a NAS-Assist graph: 'format' is {data.get('format')!r}, expected {GRAPH_FORMAT!r}")
        version = data.get("version")
        if version != GRAPH_FORMAT_VERSION:
            raise GraphError(
                f"graph format version {version!r} is not supported (this NAS-Assist reads version {GRAPH_FORMAT_VERSION})"
            )
        nodes, edges, metadata = data.get("nodes"), data.get("edges"), data.get("metadata") or {}
        if not isinstance(nodes, list) or not isinstance(edges, list):
            raise GraphError("a graph needs 'nodes' and 'edges' lists")
        if len(nodes) > MAX_GRAPH_NODES or len(edges) > 64 * MAX_GRAPH_NODES:
            raise GraphError(f"graph has {len(nodes)} nodes and {len(edges)} edges; at most {MAX_GRAPH_NODES} nodes are read")
        if not isinstance(metadata, Mapping):
            raise GraphError(f"'metadata' must be a JSON object, got {type(metadata).__name__}")
        check_finite(metadata, "metadata")
        graph = cls(name=str(data.get("name", "graph")), metadata=metadata)
        for node in nodes:
            graph._nodes.append(Node.from_dict(node))
        for edge in edges:
            if (not isinstance(edge, (list, tuple)) or len(edge) != 2
                    or not all(isinstance(e, int) and not isinstance(e, bool) for e in edge)):
                raise GraphError(f"an edge must be a pair of node indices, got {edge!r:.80}")
            graph.add_edge(int(edge[0]), int(edge[1]))
        return graph.validate()

    def to_json(self, path: str | Path | None = None, indent: int | None = None) -> str:
        """Serialise to JSON; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent, default=_json_default)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "ComputationalGraph":
        """Load from a JSON string or a path to a JSON file."""
        if not isinstance(source, (str, Path)):
            raise GraphError(f"from_json takes a JSON string or a file path, got {type(source).__name__}")
        text = str(source)
        if isinstance(source, Path) or (not text.lstrip().startswith("{") and Path(text).is_file()):
            path = Path(source)
            if not path.is_file():
                raise GraphError(f"graph file not found: {path}")
            if path.stat().st_size > MAX_GRAPH_FILE_BYTES:
                raise GraphError(f"{path} is larger than {MAX_GRAPH_FILE_BYTES >> 20} MiB: not a graph file")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise GraphError(f"cannot read graph file {path}: {exc}") from exc
        try:
            data = json.loads(text)  # NaN/Infinity load as floats; from_dict refuses them by name
        except (json.JSONDecodeError, RecursionError) as exc:
            raise GraphError(f"graph JSON is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_networkx(self):
        """A ``networkx.DiGraph`` with node attributes ``op_type``, ``name``, ``module`` and attrs."""
        import networkx as nx

        g = nx.DiGraph(name=self.name)
        for i, n in enumerate(self._nodes):
            g.add_node(i, op_type=n.op_type, name=n.name, module=n.module, **n.attrs)
        g.add_edges_from(self._edges)
        return g

    def wl_hash(self, iterations: int = 4) -> str:
        """Isomorphism-invariant Weisfeiler–Lehman hash of the architecture.

        Node labels combine the op type with its shape-defining attributes, so two
        graphs that differ only in node order (or module names) hash the same, while a
        changed kernel or width changes the hash. Used for caching and de-duplication.
        """
        import networkx as nx

        g = nx.DiGraph()
        for i, n in enumerate(self._nodes):
            label = "|".join([n.op_type] + [str(n.attrs.get(k)) for k in _HASH_ATTRS])
            g.add_node(i, label=label)
        g.add_edges_from(self._edges)
        with warnings.catch_warnings():  # networkx notes that directed hashes changed in 3.5
            warnings.simplefilter("ignore", UserWarning)
            return nx.weisfeiler_lehman_graph_hash(g, node_attr="label", iterations=iterations)

    def node_features(self) -> list[list[float]]:
        """Rows of :data:`NODE_FEATURES` for every node (log-scaled where sizes vary widely)."""
        return [node_numeric_features(n) for n in self._nodes]

    def to_pyg(self):
        """A ``torch_geometric.data.Data`` for graph neural networks.

        Fields: ``op_index`` (long, index into ``OP_VOCABULARY``; unknown ops get
        ``len(OP_VOCABULARY)``), ``x`` (float node features, see :data:`NODE_FEATURES`),
        ``edge_index``, and ``op_types`` (the op names, unknown ones included).
        """
        import torch
        from torch_geometric.data import Data

        unknown = len(OP_VOCABULARY)
        index = {op: i for i, op in enumerate(OP_VOCABULARY)}
        op_index = torch.tensor([index.get(n.op_type, unknown) for n in self._nodes], dtype=torch.long)
        x = torch.tensor(self.node_features(), dtype=torch.float32).reshape(self.num_nodes, len(NODE_FEATURES))
        if self._edges:
            edge_index = torch.tensor(self._edges, dtype=torch.long).t().contiguous()
        else:
            edge_index = torch.empty((2, 0), dtype=torch.long)
        return Data(
            x=x,
            op_index=op_index,
            edge_index=edge_index,
            num_nodes=self.num_nodes,
            op_types=[n.op_type for n in self._nodes],
        )

    # ------------------------------------------------------------------ editing helpers
    def copy(self) -> "ComputationalGraph":
        return ComputationalGraph.from_dict(self.to_dict())

    @classmethod
    def from_parts(
        cls,
        nodes: Iterable[Node],
        edges: Iterable[tuple[int, int]],
        name: str = "graph",
        metadata: Mapping[str, Any] | None = None,
    ) -> "ComputationalGraph":
        graph = cls(name=name, metadata=metadata)
        graph._nodes.extend(nodes)
        for s, t in edges:
            graph.add_edge(s, t)
        return graph


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)
