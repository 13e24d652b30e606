"""Step 4: assemble the ComputationalGraph (nodes, edges, parameter counts)."""

from __future__ import annotations

import re
from typing import Any

import onnx
from nasassist_plugins.adapters.onnx_adapter._ops import _Op
from nasassist_plugins.adapters.onnx_adapter._tensors import (
    _is_parameter_name,
    _Tensors,
)

from nasassist_plugins.graph import ComputationalGraph


# ============================================================================ assembly
def _assemble(
    graph_proto: onnx.GraphProto,
    ops: list[_Op],
    tensors: _Tensors,
    name: str,
    metadata: dict[str, Any],
) -> ComputationalGraph:
    """Build the ComputationalGraph: input nodes, op nodes, output nodes, data-flow edges."""
    graph = ComputationalGraph(name=name, metadata=metadata)
    names = _UniqueNames()
    producer: dict[str, int] = {}
    for value in tensors.inputs:
        producer[value.name] = graph.add_node(
            "input", name=names(value.name), **_present(output_shape=_output_shape(tensors, value.name))
        )
    counted: set[tuple[Any, ...]] = set()
    placed: list[tuple[int, _Op]] = []
    for op in ops:
        attrs = {k: v for k, v in op.attrs.items() if v is not None}
        attrs["num_params"] = _count_params(op, tensors, counted)
        attrs.update(_present(output_shape=_output_shape(tensors, op.shape_of)))
        index = graph.add_node(op.op_type, name=names(op.name), module=_canonical_module(op), **attrs)
        producer.update({t: index for t in op.outputs})
        placed.append((index, op))
    for index, op in placed:
        for tensor in op.inputs:
            if tensor in producer and producer[tensor] != index:
                graph.add_edge(producer[tensor], index)
    for value in graph_proto.output:
        index = graph.add_node(
            "output", name=names(value.name), **_present(output_shape=_output_shape(tensors, value.name))
        )
        if value.name in producer:
            graph.add_edge(producer[value.name], index)
    return graph


def _count_params(op: _Op, tensors: _Tensors, counted: set[tuple[Any, ...]]) -> int:
    """Elements of the op's learned initializers, each counted once per owning module.

    A module called twice reads the same initializers twice; the PyTorch adapter counts
    its weights once, at the first call, and so does this. The owner is the module
    recorded by the dynamo exporter (it may merge equal-valued initializers of different
    modules, so the initializer name alone does not identify a parameter); otherwise the
    initializer's own state-dict name, which the TorchScript exporter keeps unique.
    """
    total = 0
    for sources in op.weights.values():
        for source in sources:
            key = (_owner(op, source), source)
            if key not in counted:
                counted.add(key)
                total += tensors.numel(source)
    return total


def _owner(op: _Op, source: str) -> Any:
    """Who a learned initializer belongs to, for counting it once (see :func:`_count_params`)."""
    if op.call is not None:
        return op.module
    if _is_parameter_name(source):
        return "state_dict"
    return op.module or id(op)


def _canonical_module(op: _Op) -> str | None:
    """Undo the TorchScript exporter's call suffix: the second call of ``c`` is scoped ``c_1``.

    Only applied when the op's weights name the module: ``c_1`` reading ``c.weight``.
    """
    module = op.module
    if module is None or op.call is not None:
        return module
    owners = {s.rsplit(".", 1)[0] for sources in op.weights.values() for s in sources if "." in s}
    suffixed = re.fullmatch(r"(.+)_\d+", module)
    if owners and suffixed:
        base = suffixed.group(1)
        if all(o == base or o.startswith(base + ".") for o in owners):
            return base
    return module


def _output_shape(tensors: _Tensors, tensor: str | None) -> tuple[int, ...] | None:
    """Shape with the batch dimension; a symbolic batch becomes -1, other unknowns give None."""
    shape = tensors.shape(tensor or "")
    if shape is None or len(shape) == 0:
        return None
    if any(d is None for d in shape[1:]):
        return None
    return tuple(-1 if d is None else int(d) for d in shape)


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class _UniqueNames:
    """Hands out node names, suffixing repeats (ONNX node and tensor names may clash)."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def __call__(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self._used:
            n += 1
            candidate = f"{name}_{n}"
        self._used.add(candidate)
        return candidate
