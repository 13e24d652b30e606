"""Step 3: merge the ONNX nodes of one PyTorch-level op (attention, aten calls) into one op."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from nasassist_plugins.adapters.onnx_adapter._ops import _known, _Op
from nasassist_plugins.adapters.onnx_adapter._tensors import _Dims, _Tensors

from nasassist_plugins.graph.ops import is_weighted_op, unknown_op_name


# ============================================================================ re-assembly
class _Flow:
    """Producer/consumer index over a list of ops (rebuilt after every merge)."""

    def __init__(self, ops: list[_Op], graph_outputs: set[str]) -> None:
        self.ops = ops
        self.graph_outputs = graph_outputs
        self.producer: dict[str, int] = {t: i for i, op in enumerate(ops) for t in op.outputs}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, op in enumerate(ops):
            for t in op.inputs:
                self.consumers[t].append(i)

    def source(self, tensor: str) -> _Op | None:
        index = self.producer.get(tensor)
        return self.ops[index] if index is not None else None

    def index(self, op: _Op) -> int:
        return next(i for i, o in enumerate(self.ops) if o is op)

    def only_consumer(self, op: _Op) -> _Op | None:
        """The single op reading ``op``'s outputs, if exactly one does and none is a graph output."""
        readers = {c for t in op.outputs for c in self.consumers.get(t, [])}
        if len(readers) != 1 or any(t in self.graph_outputs for t in op.outputs):
            return None
        return self.ops[readers.pop()]

    def successors(self, index: int) -> set[int]:
        return {c for t in self.ops[index].outputs for c in self.consumers.get(t, [])}

    def is_convex(self, members: set[int]) -> bool:
        """Whether no path leaves the group and re-enters it (merging would make a cycle)."""
        frontier = [s for m in members for s in self.successors(m) if s not in members]
        seen = set(frontier)
        while frontier:
            current = frontier.pop()
            for nxt in self.successors(current):
                if nxt in members:
                    return False
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        return True


def _merge(
    ops: list[_Op],
    members: Sequence[_Op],
    graph_outputs: set[str],
    op_type: str,
    *,
    primary: _Op | None = None,
    name: str | None = None,
    scopes: tuple[str, ...] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> list[_Op] | None:
    """Replace ``members`` by one op; ``None`` when merging would create a cycle.

    The merged op reads the members' external inputs, produces all their outputs, keeps
    ``primary``'s attributes (updated by ``attrs``) and the union of their weights
    (other members' roles prefixed by their position, so that roles stay distinct).
    Merging a group that a path leaves and re-enters would create a cycle, so such
    groups are left alone.
    """
    flow = _Flow(ops, graph_outputs)
    indices = {flow.index(m) for m in members}
    if len(indices) < 2 or not flow.is_convex(indices):
        return None
    ordered = [ops[i] for i in sorted(indices)]
    produced = {t for m in ordered for t in m.outputs}
    external = set(range(len(ops))) - indices
    weights: dict[str, frozenset[str]] = {}
    for position, member in enumerate(ordered):
        for role, sources in member.weights.items():
            weights[role if member is primary else f"{position}.{role}"] = sources
    merged = _Op(
        op_type=op_type,
        name=name or ordered[-1].name,
        onnx_type="+".join(dict.fromkeys(m.onnx_type for m in ordered)),
        inputs=list(dict.fromkeys(t for m in ordered for t in m.inputs if t not in produced)),
        outputs=[t for m in ordered for t in m.outputs],
        attrs={**(primary.attrs if primary else {}), **(attrs or {})},
        weights=weights,
        scopes=ordered[0].scopes if scopes is None else scopes,
        classes=ordered[0].classes if scopes is None else (),
        call=ordered[0].call,
        aten=ordered[0].aten,
        shape_of=_group_output(ordered, flow, external, graph_outputs),
        size=sum(m.size for m in ordered),
    )
    first = min(indices)
    return [merged if i == first else op for i, op in enumerate(ops) if i == first or i not in indices]


def _group_output(ordered: list[_Op], flow: _Flow, external: set[int], graph_outputs: set[str]) -> str | None:
    """The last member output read outside the group (its shape is the group's)."""
    for member in reversed(ordered):
        for t in member.outputs:
            if t in graph_outputs or any(c in external for c in flow.consumers.get(t, [])):
                return t
    return ordered[-1].shape_of






# ---------------------------------------------------------------------------- attention
def _merge_attention(ops: list[_Op], outputs: set[str], tensors: _Tensors) -> list[_Op]:
    """One ``attention`` node per ``nn.MultiheadAttention`` call.

    With dynamo metadata, the ops whose class hierarchy contains a MultiheadAttention
    belong to it. Without metadata (TorchScript exporter), a module scope that directly
    contains a Softmax and at least two learned linear projections is taken for one.
    Each module's ops are split into connected pieces, so a module called twice gives
    two nodes (its parameters are counted once).
    """
    has_classes = any(op.classes for op in ops)
    groups: dict[str, list[_Op]] = defaultdict(list)
    for op in ops:
        key = _attention_scope(op) if has_classes else op.module
        if key is not None:
            groups[key].append(op)
    for module, members in groups.items():
        if not has_classes and not _looks_like_attention(members):
            continue
        for piece in (call for piece in _connected_pieces(members) for call in _split_calls(piece, tensors)):
            merged = _merge(
                ops,
                piece,
                outputs,
                "attention",
                name=module,
                scopes=_scopes_up_to(piece[0].scopes, module),
                attrs=_attention_attrs(piece, tensors),
            )
            ops = merged if merged is not None else ops
    return ops


def _attention_scope(op: _Op) -> str | None:
    for scope, cls in zip(op.scopes, op.classes):
        if cls.endswith("MultiheadAttention"):
            return scope
    return None


def _looks_like_attention(members: list[_Op]) -> bool:
    softmax = any(m.onnx_type == "Softmax" for m in members)
    projections = sum(1 for m in members if m.op_type == "linear")
    return softmax and projections >= 2


def _scopes_up_to(scopes: tuple[str, ...], module: str) -> tuple[str, ...]:
    return scopes[: scopes.index(module) + 1] if module in scopes else scopes


def _connected_pieces(members: list[_Op]) -> list[list[_Op]]:
    """Split ops into groups connected by tensors flowing between them."""
    parent = list(range(len(members)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    producer = {t: i for i, m in enumerate(members) for t in m.outputs}
    for i, m in enumerate(members):
        for t in m.inputs:
            if t in producer:
                parent[find(i)] = find(producer[t])
    pieces: dict[int, list[_Op]] = defaultdict(list)
    for i, m in enumerate(members):
        pieces[find(i)].append(m)
    return list(pieces.values())


def _split_calls(piece: list[_Op], tensors: _Tensors) -> list[list[_Op]]:
    """Split the ops of a module called several times in a row into one list per call.

    Every call reads each of the module's weights equally often, so ``k``, the greatest
    common divisor of the read counts, is the number of calls. Calls run one after the
    other, so each boundary lies between the last weight read of one call and the first
    of the next; within that stretch (reshapes and transposes) the cut is placed before
    the first op whose input has the module's output shape, else right after the reads.
    """
    reads: dict[str, list[int]] = defaultdict(list)
    for position, op in enumerate(piece):
        for sources in op.weights.values():
            for source in sources:
                reads[source].append(position)
    calls = math.gcd(*(len(p) for p in reads.values())) if reads else 1
    if calls <= 1:
        return [piece]
    output_shape = tensors.shape(piece[-1].outputs[0]) if piece[-1].outputs else None
    cuts = [0]
    for j in range(1, calls):
        last = max(p[j * len(p) // calls - 1] for p in reads.values())
        first = min(p[j * len(p) // calls] for p in reads.values())
        if last >= first:
            return [piece]  # interleaved reads: not consecutive calls
        cut = next(
            (q for q in range(last + 1, first + 1) if output_shape and _input_shape(piece[q], tensors) == output_shape),
            last + 1,
        )
        cuts.append(cut)
    cuts.append(len(piece))
    return [piece[a:b] for a, b in zip(cuts, cuts[1:]) if b > a]


def _input_shape(op: _Op, tensors: _Tensors) -> _Dims | None:
    return tensors.shape(op.inputs[0]) if op.inputs else None


def _attention_attrs(piece: list[_Op], tensors: _Tensors) -> dict[str, Any]:
    produced = {t for m in piece for t in m.outputs}
    external_inputs = [t for m in piece for t in m.inputs if t not in produced]
    in_shape = tensors.shape(external_inputs[0]) if external_inputs else None
    linears = [m for m in piece if m.op_type == "linear"]
    out_channels = linears[-1].attrs.get("out_channels") if linears else None
    in_channels = linears[0].attrs.get("in_channels") if linears else None
    attrs: dict[str, Any] = {
        "in_channels": in_channels or (in_shape[-1] if in_shape else None),
        "out_channels": out_channels,
        "bias": any(m.attrs.get("bias") for m in linears)
        or any("bias" in s for m in piece for srcs in m.weights.values() for s in srcs),
    }
    attrs["num_heads"] = _num_heads(piece, tensors, out_channels)
    return attrs


def _num_heads(piece: list[_Op], tensors: _Tensors, embed_dim: int | None) -> int | None:
    """Heads = embedding size / head size; the head size is the last dimension of the
    queries entering the first activation-by-activation MatMul (``q @ k^T``)."""
    scores = next((m for m in piece if m.onnx_type == "MatMul" and len(m.inputs) == 2), None)
    queries = tensors.shape(scores.inputs[0]) if scores is not None else None
    head_dim = queries[-1] if queries else None
    if embed_dim and head_dim and embed_dim % head_dim == 0:
        return embed_dim // head_dim
    return None


# ---------------------------------------------------------------------------- aten calls
_ATEN_OPS: dict[str, str] = {
    "aten.linear": "linear",
    "aten.addmm": "linear",
    "aten.gelu": "gelu",
    "aten.silu": "silu",
    "aten.mish": "mish",
    "aten.hardswish": "hardswish",
    "aten.hardsigmoid": "hardsigmoid",
    "aten.softplus": "softplus",
    "aten.elu": "elu",
    "aten.selu": "selu",
    "aten.leaky_relu": "leaky_relu",
    "aten.relu6": "relu6",
    "aten.prelu": "prelu",
    "aten.softmax": "softmax",
    "aten._softmax": "softmax",
    "aten.log_softmax": "log_softmax",
    "aten._log_softmax": "log_softmax",
    "aten.layer_norm": "layernorm",
    "aten.native_layer_norm": "layernorm",
    "aten.group_norm": "groupnorm",
    "aten.native_group_norm": "groupnorm",
    "aten.instance_norm": "instancenorm",
    "aten.batch_norm": "batchnorm",
    "aten._native_batch_norm_legit_no_training": "batchnorm",
    "aten._native_batch_norm_legit": "batchnorm",
    "aten.embedding": "embedding",
    "aten.scaled_dot_product_attention": "attention",
    "aten.stack": "concat",
    "aten.cat": "concat",
    "aten.flatten": "flatten",
}


def _merge_aten_calls(ops: list[_Op], outputs: set[str], tensors: _Tensors) -> list[_Op]:
    """Merge the ONNX ops one aten call became (dynamo metadata), e.g. GroupNorm's ten ops."""
    calls: dict[tuple[str, ...], list[_Op]] = defaultdict(list)
    for op in ops:
        if op.call is not None and op.size == 1:
            calls[op.call].append(op)
    for members in calls.values():
        if len(members) < 2:
            continue
        aten = members[0].aten or ""
        op_type = _ATEN_OPS.get(aten) or unknown_op_name(aten.split(".")[-1])
        primary = next((m for m in members if m.op_type == op_type), None)
        if is_weighted_op(op_type):
            for member in members:
                if member is not primary:
                    member.weights = _all_learned_weights(member, tensors)
        if op_type == "groupnorm":
            _drop_inner_instancenorm_weights(members)
        attrs = _call_attrs(op_type, members, primary, tensors)
        merged = _merge(ops, members, outputs, op_type, primary=primary, attrs=attrs)
        ops = merged if merged is not None else ops
    return ops


def _drop_inner_instancenorm_weights(members: Iterable[_Op]) -> None:
    """GroupNorm exports normalise with a constant-scale InstanceNormalization, then apply
    the learned affine; an optimiser may turn those constants into initializers."""
    for member in members:
        if member.onnx_type == "InstanceNormalization":
            member.weights = {}


def _all_learned_weights(op: _Op, tensors: _Tensors) -> dict[str, frozenset[str]]:
    """Every learned constant an op reads, whatever its name (running statistics excepted).

    Used for ops known to be part of a weighted layer, where the exporter's names for
    the weights (``val_3`` after constant folding) need not look like parameters.
    """
    weights = {}
    for position, name in op.consts.items():
        sources = frozenset(s for s in tensors.learned(name) if tensors.is_learnable(s))
        if sources:
            weights[f"in{position}"] = sources
    return weights


def _call_attrs(op_type: str, members: list[_Op], primary: _Op | None, tensors: _Tensors) -> dict[str, Any]:
    """Attributes of a merged call that the primary member alone does not give."""
    extra_weights = any(m.weights for m in members if m is not primary)
    if op_type == "linear" and primary is not None:
        return {"bias": bool(primary.attrs.get("bias")) or extra_weights}
    if op_type in ("groupnorm", "layernorm", "instancenorm", "batchnorm") and primary is None:
        return _norm_attrs(op_type, members, tensors)
    return {}


def _norm_attrs(op_type: str, members: list[_Op], tensors: _Tensors) -> dict[str, Any]:
    produced = {t for m in members for t in m.outputs}
    first_input = next((t for m in members for t in m.inputs if t not in produced), None)
    channels = _known(tensors.shape(first_input or "") or (), 1)
    learned = [s for m in members for srcs in m.weights.values() for s in srcs]
    attrs: dict[str, Any] = {"bias": any("bias" in s for s in learned) or len(learned) >= 2}
    if op_type == "layernorm":
        scale = next((tensors.shape(s) for s in learned), None)
        attrs["weight_shape"] = tuple(scale) if scale else None
        return attrs
    attrs.update(in_channels=channels, out_channels=channels)
    if op_type == "groupnorm":
        inner = next((m for m in members if m.onnx_type == "InstanceNormalization"), None)
        inner_shape = tensors.shape(inner.inputs[0]) if inner and inner.inputs else None
        attrs["groups"] = _known(inner_shape or (), 1)
    return attrs
