"""Encoding of many :class:`ComputationalGraph` objects as a few numpy arrays.

Across the networks of one search space most nodes are identical (the same module at
the same position with the same shapes), so a :class:`GraphStore` keeps one table of
**unique nodes** (op type, name, module as ids into a string table, and their
attributes as typed integer rows) and, per graph, a list of unique-node ids plus its
edges as local ``int16``/``int32`` pairs. :class:`StoreBuilder` builds one;
:class:`GraphSequence` is a lazy list view that decodes graphs on access. Files and
cache keys are :mod:`._cache`'s job.
"""


from __future__ import annotations

import copy
import json
import struct
import weakref
from typing import Any, Iterator, Mapping, Sequence, overload

import numpy as np

from nasassist_plugins.graph import ComputationalGraph, Node

__all__ = ["GraphSequence", "GraphStore", "StoreBuilder"]

# Attribute value kinds of the attribute table.
_NONE, _BOOL, _INT, _FLOAT, _STR, _TUPLE, _LIST, _JSON = range(8)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


# ----------------------------------------------------------------------------- value codec
def _float_bits(value: float) -> int:
    return struct.unpack("<q", struct.pack("<d", float(value)))[0]


def _bits_float(bits: int) -> float:
    return struct.unpack("<d", struct.pack("<q", int(bits)))[0]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _small_int(value: Any) -> bool:
    return _is_int(value) and _INT64_MIN <= int(value) <= _INT64_MAX


def _json_encode(value: Any) -> Any:
    """JSON-able form that keeps tuples apart from lists (``{"__tuple__": [...]}``)."""
    if isinstance(value, tuple):
        return {"__tuple__": [_json_encode(v) for v in value]}
    if isinstance(value, list):
        return [_json_encode(v) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[_json_encode(k), _json_encode(v)] for k, v in value.items()]}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _json_decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_decode(v) for v in value]
    if isinstance(value, dict):
        if "__tuple__" in value:
            return tuple(_json_decode(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_json_decode(k): _json_decode(v) for k, v in value["__dict__"]}
    return value


class StoreBuilder:
    """Accumulates graphs (keyed by spec key) and encodes them into a :class:`GraphStore`."""

    def __init__(self) -> None:
        self._strings: list[str] = []
        self._string_ids: dict[str, int] = {}
        self._node_ids: dict[tuple, int] = {}
        self._u_op: list[int] = []
        self._u_name: list[int] = []
        self._u_module: list[int] = []
        self._u_attr_offsets: list[int] = [0]
        self._a_key: list[int] = []
        self._a_kind: list[int] = []
        self._a_val: list[int] = []
        self._a_len: list[int] = []
        self._pool: list[int] = []
        self._keys: list[str] = []
        self._key_set: set[str] = set()
        self._g_name: list[int] = []
        self._g_meta: list[int] = []
        self._g_nodes: list[np.ndarray] = []
        self._g_edges: list[np.ndarray] = []

    # -- strings
    def _sid(self, text: str) -> int:
        sid = self._string_ids.get(text)
        if sid is None:
            sid = len(self._strings)
            self._strings.append(text)
            self._string_ids[text] = sid
        return sid

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._key_set

    # -- nodes
    def _encode_value(self, value: Any) -> tuple[int, int, tuple[int, ...] | None]:
        if value is None:
            return _NONE, 0, None
        if isinstance(value, (bool, np.bool_)):
            return _BOOL, int(bool(value)), None
        if _small_int(value):
            return _INT, int(value), None
        if isinstance(value, (float, np.floating)):
            return _FLOAT, _float_bits(float(value)), None
        if isinstance(value, str):
            return _STR, self._sid(value), None
        if isinstance(value, (tuple, list)) and all(_small_int(v) for v in value):
            return (_TUPLE if isinstance(value, tuple) else _LIST), 0, tuple(int(v) for v in value)
        return _JSON, self._sid(json.dumps(_json_encode(value), sort_keys=False)), None

    def _node_id(self, node: Node) -> int:
        attrs = tuple((self._sid(str(k)),) + self._encode_value(v) for k, v in node.attrs.items())
        module = -1 if node.module is None else self._sid(node.module)
        key = (self._sid(node.op_type), self._sid(node.name), module, attrs)
        uid = self._node_ids.get(key)
        if uid is not None:
            return uid
        uid = len(self._u_op)
        self._node_ids[key] = uid
        self._u_op.append(key[0])
        self._u_name.append(key[1])
        self._u_module.append(module)
        for key_id, kind, val, content in attrs:
            self._a_key.append(key_id)
            self._a_kind.append(kind)
            if content is not None:
                self._a_val.append(len(self._pool))
                self._a_len.append(len(content))
                self._pool.extend(content)
            else:
                self._a_val.append(val)
                self._a_len.append(0)
        self._u_attr_offsets.append(len(self._a_key))
        return uid

    # -- graphs
    def add(self, key: str, graph: ComputationalGraph) -> None:
        """Add the graph of spec ``key`` (a key already present is ignored)."""
        if key in self._key_set:
            return
        ids = np.fromiter((self._node_id(n) for n in graph.nodes), dtype=np.int64, count=graph.num_nodes)
        edges = np.asarray(graph.edges, dtype=np.int64).reshape(-1, 2)
        self._sid(key)
        self._keys.append(key)
        self._key_set.add(key)
        self._g_name.append(self._sid(graph.name))
        self._g_meta.append(self._sid(json.dumps(_json_encode(graph.metadata))))
        self._g_nodes.append(ids)
        self._g_edges.append(edges)

    def merge(self, store: "GraphStore") -> int:
        """Add every graph of ``store`` whose key is new; returns how many were added.

        Works on the encoded form: each unique node of ``store`` is re-encoded once, and
        graphs are remapped with array indexing, so merging is cheap.
        """
        a = store.arrays
        remap = np.fromiter(
            (self._node_id(Node(op, name, module, attrs)) for op, name, module, attrs, _ in map(store._template, range(store.num_unique_nodes))),
            dtype=np.int64,
            count=store.num_unique_nodes,
        )
        no, eo = a["node_offsets"], a["edge_offsets"]
        added = 0
        for row, key in enumerate(store.keys):
            if key in self._key_set:
                continue
            self._sid(key)
            self._keys.append(key)
            self._key_set.add(key)
            self._g_name.append(self._sid(store.strings[int(a["g_name"][row])]))
            self._g_meta.append(self._sid(store.strings[int(a["g_meta"][row])]))
            self._g_nodes.append(remap[a["graph_nodes"][no[row] : no[row + 1]]])
            self._g_edges.append(np.asarray(a["edges"][eo[row] : eo[row + 1]], dtype=np.int64))
            added += 1
        return added

    @classmethod
    def from_store(cls, store: "GraphStore") -> "StoreBuilder":
        """A builder holding every graph of ``store`` (to add more and save again)."""
        b = cls()
        a = store.arrays
        b._strings = list(store.strings)
        b._string_ids = {s: i for i, s in enumerate(b._strings)}
        b._u_op = a["u_op"].tolist()
        b._u_name = a["u_name"].tolist()
        b._u_module = a["u_module"].tolist()
        b._u_attr_offsets = a["u_attr_offsets"].tolist()
        b._a_key = a["a_key"].tolist()
        b._a_kind = a["a_kind"].tolist()
        b._a_val = a["a_val"].tolist()
        b._a_len = a["a_len"].tolist()
        b._pool = a["pool"].tolist()
        for uid in range(len(b._u_op)):
            lo, hi = b._u_attr_offsets[uid], b._u_attr_offsets[uid + 1]
            attrs = []
            for j in range(lo, hi):
                kind = b._a_kind[j]
                if kind in (_TUPLE, _LIST):
                    off = b._a_val[j]
                    attrs.append((b._a_key[j], kind, 0, tuple(b._pool[off : off + b._a_len[j]])))
                else:
                    attrs.append((b._a_key[j], kind, b._a_val[j], None))
            b._node_ids[(b._u_op[uid], b._u_name[uid], b._u_module[uid], tuple(attrs))] = uid
        b._keys = list(store.keys)
        b._key_set = set(b._keys)
        b._g_name = a["g_name"].tolist()
        b._g_meta = a["g_meta"].tolist()
        no, eo = a["node_offsets"], a["edge_offsets"]
        b._g_nodes = [a["graph_nodes"][no[i] : no[i + 1]] for i in range(len(b._keys))]
        b._g_edges = [a["edges"][eo[i] : eo[i + 1]] for i in range(len(b._keys))]
        return b

    def build(self) -> "GraphStore":
        """Encode everything added so far into a :class:`GraphStore`."""
        blob = [s.encode("utf-8") for s in self._strings]
        string_offsets = np.zeros(len(blob) + 1, dtype=np.int64)
        if blob:
            string_offsets[1:] = np.cumsum([len(x) for x in blob])
        node_counts = [len(x) for x in self._g_nodes]
        edge_counts = [len(x) for x in self._g_edges]
        max_nodes = max(node_counts, default=0)
        edge_dtype = np.int16 if max_nodes <= np.iinfo(np.int16).max else np.int32
        id_dtype = np.int32 if len(self._u_op) <= np.iinfo(np.int32).max else np.int64
        arrays = {
            "strings_blob": np.frombuffer(b"".join(blob), dtype=np.uint8).copy(),
            "strings_offsets": string_offsets,
            "g_key": np.asarray([self._string_ids[k] for k in self._keys], dtype=np.int32),
            "g_name": np.asarray(self._g_name, dtype=np.int32),
            "g_meta": np.asarray(self._g_meta, dtype=np.int32),
            "node_offsets": np.concatenate([[0], np.cumsum(node_counts, dtype=np.int64)]).astype(np.int64),
            "graph_nodes": (np.concatenate(self._g_nodes) if self._g_nodes else np.zeros(0)).astype(id_dtype),
            "edge_offsets": np.concatenate([[0], np.cumsum(edge_counts, dtype=np.int64)]).astype(np.int64),
            "edges": (np.concatenate(self._g_edges) if self._g_edges else np.zeros((0, 2))).astype(edge_dtype),
            "u_op": np.asarray(self._u_op, dtype=np.int32),
            "u_name": np.asarray(self._u_name, dtype=np.int32),
            "u_module": np.asarray(self._u_module, dtype=np.int32),
            "u_attr_offsets": np.asarray(self._u_attr_offsets, dtype=np.int64),
            "a_key": np.asarray(self._a_key, dtype=np.int32),
            "a_kind": np.asarray(self._a_kind, dtype=np.int8),
            "a_val": np.asarray(self._a_val, dtype=np.int64),
            "a_len": np.asarray(self._a_len, dtype=np.int32),
            "pool": np.asarray(self._pool, dtype=np.int64),
        }
        return GraphStore(arrays)


class GraphStore:
    """Read access to an encoded set of graphs, each addressed by its spec key.

    Attributes:
        keys: spec keys, in storage order.
        index: ``key -> row``.
    """

    _REQUIRED = (
        "strings_blob", "strings_offsets", "g_key", "g_name", "g_meta", "node_offsets", "graph_nodes",
        "edge_offsets", "edges", "u_op", "u_name", "u_module", "u_attr_offsets", "a_key", "a_kind", "a_val",
        "a_len", "pool",
    )  # fmt: skip

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        missing = [k for k in self._REQUIRED if k not in arrays]
        if missing:
            raise ValueError(f"graph store lacks arrays {missing}")
        self.arrays = dict(arrays)
        blob = self.arrays["strings_blob"].tobytes()
        offsets = self.arrays["strings_offsets"].tolist()
        self.strings: list[str] = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
        self.keys: list[str] = [self.strings[i] for i in self.arrays["g_key"].tolist()]
        self.index: dict[str, int] = {k: i for i, k in enumerate(self.keys)}
        self._node_offsets = self.arrays["node_offsets"]
        self._edge_offsets = self.arrays["edge_offsets"]
        self._templates: list[tuple[str, str, str | None, dict[str, Any], bool] | None] = [None] * len(
            self.arrays["u_op"]
        )
        self._memo: "weakref.WeakValueDictionary[int, ComputationalGraph]" = weakref.WeakValueDictionary()

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: object) -> bool:
        return key in self.index

    @property
    def num_unique_nodes(self) -> int:
        return len(self._templates)

    def _template(self, uid: int) -> tuple[str, str, str | None, dict[str, Any], bool]:
        t = self._templates[uid]
        if t is not None:
            return t
        a, s = self.arrays, self.strings
        lo, hi = int(a["u_attr_offsets"][uid]), int(a["u_attr_offsets"][uid + 1])
        attrs: dict[str, Any] = {}
        mutable = False
        pool = a["pool"]
        for j in range(lo, hi):
            kind, val = int(a["a_kind"][j]), int(a["a_val"][j])
            if kind == _NONE:
                value: Any = None
            elif kind == _BOOL:
                value = bool(val)
            elif kind == _INT:
                value = val
            elif kind == _FLOAT:
                value = _bits_float(val)
            elif kind == _STR:
                value = s[val]
            elif kind in (_TUPLE, _LIST):
                items = pool[val : val + int(a["a_len"][j])].tolist()
                value = tuple(items) if kind == _TUPLE else items
                mutable = mutable or kind == _LIST
            elif kind == _JSON:
                value = _json_decode(json.loads(s[val]))
                mutable = True
            else:
                raise ValueError(f"graph store: unknown attribute kind {kind}")
            attrs[s[int(a["a_key"][j])]] = value
        module_id = int(a["u_module"][uid])
        t = (s[int(a["u_op"][uid])], s[int(a["u_name"][uid])], None if module_id < 0 else s[module_id], attrs, mutable)
        self._templates[uid] = t
        return t

    def graph(self, row: int) -> ComputationalGraph:
        """The graph at ``row``; the same object is returned while a caller holds it."""
        g = self._memo.get(row)
        if g is None:
            g = self._decode(row)
            self._memo[row] = g
        return g

    def get(self, key: str) -> ComputationalGraph:
        return self.graph(self.index[key])

    def _decode(self, row: int) -> ComputationalGraph:
        a = self.arrays
        lo, hi = int(self._node_offsets[row]), int(self._node_offsets[row + 1])
        nodes = []
        for uid in a["graph_nodes"][lo:hi].tolist():
            op, name, module, attrs, mutable = self._template(uid)
            nodes.append(Node(op, name, module, copy.deepcopy(attrs) if mutable else dict(attrs)))
        lo, hi = int(self._edge_offsets[row]), int(self._edge_offsets[row + 1])
        edges = [(s, t) for s, t in a["edges"][lo:hi].tolist()]
        metadata = _json_decode(json.loads(self.strings[int(a["g_meta"][row])]))
        return _assemble(self.strings[int(a["g_name"][row])], metadata, nodes, edges)


def _assemble(name: str, metadata: dict[str, Any], nodes: list[Node], edges: list[tuple[int, int]]) -> ComputationalGraph:
    """Build a graph from trusted, already validated parts.

    Sets the graph's internal lists directly (edges were validated when the graph was
    first built), which is ~5x faster than ``add_edge`` per edge; falls back to the
    public path if the class layout ever changes.
    """
    graph = ComputationalGraph(name=name, metadata=metadata)
    if isinstance(getattr(graph, "_edges", None), list) and isinstance(getattr(graph, "_edge_set", None), set):
        graph._nodes.extend(nodes)
        graph._edges = edges
        graph._edge_set = set(edges)
        return graph
    return ComputationalGraph.from_parts(nodes, edges, name=name, metadata=metadata)  # pragma: no cover


# ----------------------------------------------------------------------------- sequence view
class GraphSequence(Sequence[ComputationalGraph]):
    """A read-only list of graphs decoded on demand from a :class:`GraphStore`.

    ``seq[i]`` decodes graph ``i`` (about a millisecond for a few hundred nodes); the
    same object is returned while anyone holds a reference to it, so edits to a graph
    stay visible until it is dropped. Slicing returns another lazy view;
    :meth:`materialize` decodes everything into a plain list.
    """

    def __init__(self, store: GraphStore, rows: Sequence[int]) -> None:
        self._store = store
        self._rows = np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> ComputationalGraph: ...

    @overload
    def __getitem__(self, index: slice) -> "GraphSequence": ...

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return GraphSequence(self._store, self._rows[index])
        if isinstance(index, (int, np.integer)):
            return self._store.graph(int(self._rows[int(index)]))
        return GraphSequence(self._store, self._rows[np.asarray(index)])

    def __iter__(self) -> Iterator[ComputationalGraph]:
        for row in self._rows.tolist():
            yield self._store.graph(row)

    def __repr__(self) -> str:
        return f"GraphSequence({len(self)} graphs, decoded on access)"

    def materialize(self) -> list[ComputationalGraph]:
        """All graphs as a plain list (memory: roughly 150 KB per 250-node graph)."""
        return list(self)
