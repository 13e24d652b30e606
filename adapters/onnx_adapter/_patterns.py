"""Step 3 (no exporter metadata): structural patterns for decomposed linear, norms and activations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from nasassist_plugins.adapters.onnx_adapter._merging import (
    _all_learned_weights,
    _drop_inner_instancenorm_weights,
    _Flow,
    _merge,
)
from nasassist_plugins.adapters.onnx_adapter._ops import _known, _Op
from nasassist_plugins.adapters.onnx_adapter._tensors import _Dims, _Tensors

# ---------------------------------------------------------------------------- patterns
# Each pattern scans from ``start``; on a match it returns the merged op list and where
# to resume, else None. They mostly serve TorchScript-exported and third-party files,
# which carry no aten-call metadata.
_PatternResult = tuple[list[_Op], int] | None


@dataclass
class _Match:
    """Ops a pattern recognised as one PyTorch-level op, and how to describe it."""

    members: list[_Op]
    op_type: str
    primary: _Op | None = None
    attrs: dict[str, Any] = field(default_factory=dict)


def _scan(
    ops: list[_Op], start: int, outputs: set[str], match: Callable[[_Op, _Flow], _Match | None]
) -> _PatternResult:
    """Try ``match`` on each plain (unmerged) op from ``start``; merge its first hit."""
    flow = _Flow(ops, outputs)
    for index in range(start, len(ops)):
        op = ops[index]
        if op.size != 1 or op.call is not None:  # merged already, or dynamo metadata said better
            continue
        found = match(op, flow)
        if found is None:
            continue
        resume = min(flow.index(m) for m in found.members)
        merged = _merge(ops, found.members, outputs, found.op_type, primary=found.primary, attrs=found.attrs)
        if merged is not None:
            return merged, resume
    return None


def _merge_linear_bias(ops: list[_Op], outputs: set[str], tensors: _Tensors, start: int) -> _PatternResult:
    """``MatMul(x, W)`` followed by ``Add(·, b)`` of a learned bias is one ``linear``."""

    def match(op: _Op, flow: _Flow):
        if op.op_type != "linear" or op.attrs.get("bias"):
            return None
        add = flow.only_consumer(op)
        if add is None or add.onnx_type != "Add" or add.size != 1 or len(add.inputs) != 1:
            return None
        bias_name = next((t for t in add.consts.values() if tensors.learned(t)), None)
        bias_shape = tensors.shape(bias_name or "") or ()
        if bias_name is None or not _is_vector(bias_shape, op.attrs.get("out_channels")):
            return None
        bias = tensors.learned(bias_name)
        add.weights = {"bias": bias}
        return _Match([op, add], "linear", op, {"bias": True})

    return _scan(ops, start, outputs, match)


def _is_vector(shape: _Dims, length: int | None) -> bool:
    """Whether ``shape`` holds ``length`` elements along its last axis and nothing else."""
    return bool(shape) and length is not None and shape[-1] == length and all(d == 1 for d in shape[:-1])


def _merge_gated_activation(ops: list[_Op], outputs: set[str], tensors: _Tensors, start: int) -> _PatternResult:
    """``x * sigmoid(x)`` is ``silu``; ``x * hardsigmoid(x)`` is ``hardswish``."""
    gates = {"Sigmoid": "silu", "HardSigmoid": "hardswish"}

    def match(op: _Op, flow: _Flow):
        if op.onnx_type not in gates or len(op.inputs) != 1:
            return None
        mul = flow.only_consumer(op)
        if mul is None or mul.onnx_type != "Mul" or mul.size != 1 or set(mul.inputs) != {op.inputs[0], op.outputs[0]}:
            return None
        return _Match([op, mul], gates[op.onnx_type])

    return _scan(ops, start, outputs, match)


def _merge_erf_gelu(ops: list[_Op], outputs: set[str], tensors: _Tensors, start: int) -> _PatternResult:
    """``0.5 * x * (1 + erf(x / sqrt(2)))`` (opset < 20 exports) is ``gelu``."""

    def match(op: _Op, flow: _Flow):
        if op.onnx_type != "Erf" or len(op.inputs) != 1:
            return None
        scale = flow.source(op.inputs[0])
        if scale is None or scale.onnx_type not in ("Div", "Mul") or len(scale.inputs) != 1:
            return None
        x = scale.inputs[0]
        members, current = [scale, op], op
        while len(members) < 6:
            nxt = flow.only_consumer(current)
            if nxt is None or nxt.onnx_type not in ("Add", "Mul") or nxt.size != 1:
                break
            members.append(nxt)
            current = nxt
            if x in nxt.inputs:
                half = flow.only_consumer(nxt)
                if half is not None and half.onnx_type == "Mul" and len(half.inputs) == 1:
                    members.append(half)
                return _Match(members, "gelu")
        return None

    return _scan(ops, start, outputs, match)


def _merge_layernorm(ops: list[_Op], outputs: set[str], tensors: _Tensors, start: int) -> _PatternResult:
    """Decomposed LayerNorm: ``(x - mean(x)) / sqrt(mean((x - mean)^2) + eps) * w + b``."""

    def match(op: _Op, flow: _Flow):
        if op.onnx_type != "Sub" or len(op.inputs) != 2:
            return None
        mean = next((flow.source(t) for t in op.inputs if _is(flow.source(t), "ReduceMean")), None)
        if mean is None or mean.inputs[0] not in op.inputs:
            return None
        centred = op.outputs[0]
        readers = [flow.ops[c] for c in flow.consumers.get(centred, [])]
        div = next((r for r in readers if r.onnx_type == "Div" and r.inputs[0] == centred), None)
        power = next((r for r in readers if r.onnx_type == "Pow"), None)
        if div is None or power is None or len(readers) != 2 or len(div.inputs) != 2:
            return None
        chain = _chain_back(flow, div.inputs[1], ("Sqrt", "Add", "ReduceMean"), stop=power)
        if chain is None:
            return None
        members = [mean, op, power, *chain, div]
        members += _affine_tail(flow, div, tensors)
        learned = [s for m in members for srcs in _learned_consts(m, tensors) for s in srcs]
        weight = next((tensors.shape(s) for s in learned), None)
        attrs = {"weight_shape": tuple(weight) if weight else None, "bias": len(learned) >= 2}
        for m in members:
            m.weights = _all_learned_weights(m, tensors)
        return _Match(members, "layernorm", attrs=attrs)

    return _scan(ops, start, outputs, match)


def _is(op: _Op | None, onnx_type: str) -> bool:
    return op is not None and op.onnx_type == onnx_type and op.size == 1


def _chain_back(flow: _Flow, tensor: str, kinds: Sequence[str], stop: _Op) -> list[_Op] | None:
    """Follow single-input producers of the given kinds back from ``tensor`` to ``stop``."""
    chain: list[_Op] = []
    current = flow.source(tensor)
    for kind in kinds:
        if current is None or current.onnx_type != kind or current.size != 1:
            if kind == "Add" and current is not None and current.onnx_type == kinds[-1]:
                continue  # no epsilon Add
            return None
        chain.append(current)
        current = flow.source(current.inputs[0]) if current.inputs else None
    return list(reversed(chain)) if current is stop else None


def _affine_tail(flow: _Flow, op: _Op, tensors: _Tensors) -> list[_Op]:
    """The ``* weight`` and ``+ bias`` ops with learned constants that follow a normalisation."""
    tail: list[_Op] = []
    current = op
    for kind in ("Mul", "Add"):
        nxt = flow.only_consumer(current)
        if nxt is None or nxt.onnx_type != kind or nxt.size != 1 or len(nxt.inputs) != 1:
            break
        if not _learned_consts(nxt, tensors):
            break
        tail.append(nxt)
        current = nxt
    return tail


def _learned_consts(op: _Op, tensors: _Tensors) -> list[frozenset[str]]:
    return [tensors.learned(t) for t in op.consts.values() if tensors.learned(t)]


def _merge_groupnorm(ops: list[_Op], outputs: set[str], tensors: _Tensors, start: int) -> _PatternResult:
    """``Reshape -> InstanceNormalization(1, 0) -> Reshape -> * w + b`` is ``groupnorm``."""

    def match(op: _Op, flow: _Flow):
        if op.onnx_type != "InstanceNormalization" or len(op.inputs) != 1:
            return None
        before = flow.source(op.inputs[0])
        after = flow.only_consumer(op)
        if not _is(before, "Reshape") or not _is(after, "Reshape") or flow.only_consumer(before) is not op:
            return None
        tail = _affine_tail(flow, after, tensors)
        if not tail:
            return None
        for m in tail:
            m.weights = _all_learned_weights(m, tensors)
        _drop_inner_instancenorm_weights([op])
        channels = _known(tensors.shape(before.inputs[0]) or (), 1)
        attrs = {
            "in_channels": channels,
            "out_channels": channels,
            "groups": _known(tensors.shape(op.inputs[0]) or (), 1),
            "bias": len(tail) == 2,
        }
        return _Match([before, op, after, *tail], "groupnorm", attrs=attrs)

    return _scan(ops, start, outputs, match)
