"""Step 1: classify tensors (activations vs constants) and read their shapes and values."""

from __future__ import annotations

import re
from typing import Any, Iterable

import numpy as np
import onnx
from onnx import numpy_helper

# ============================================================================ tensors
_Dims = tuple  # tuple[int | None, ...]: None marks a dimension shape inference could not resolve

_FLOAT_TYPES = frozenset(
    {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
)
_PARAM_NAME = re.compile(r"^[A-Za-z][\w]*(\.[\w]+)*$")
_NOT_PARAM_PREFIXES = ("val_", "onnx", "const", "Constant")
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_SHAPE_OPS = frozenset({"Shape", "Size"})
_SMALL_VALUE = 64  # constants up to this many elements are decoded (axes, clip bounds, ...)


class _Tensors:
    """What is known about every tensor name: shape, constant value, initializer sources.

    ``activations`` holds the names that carry data derived from a graph input; every
    other name is a constant whose ``sources`` are the initializers it is computed from
    (empty for shapes and literal constants).
    """

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        # Initializers plus parameter-named aliases of them: the TorchScript exporter
        # de-duplicates equal tensors and re-creates the others as Identity(initializer).
        self.stored: dict[str, onnx.TensorProto] = dict(self.initializers)
        self.shapes: dict[str, _Dims] = {}
        self.values: dict[str, np.ndarray] = {}
        self.sources: dict[str, frozenset[str]] = {}
        self.activations: set[str] = set()
        for info in list(graph.value_info) + list(graph.input) + list(graph.output):
            shape = _shape_of_type(info.type)
            if shape is not None:
                self.shapes[info.name] = shape
        for name, tensor in self.initializers.items():
            self.shapes[name] = tuple(int(d) for d in tensor.dims)
            self.sources[name] = frozenset({name})
            if _numel(tensor.dims) <= _SMALL_VALUE:
                self._store_value(name, tensor)
        self.inputs = [i for i in graph.input if i.name not in self.initializers]
        self.graph_outputs = [o.name for o in graph.output]
        self.activations.update(i.name for i in self.inputs)

    def _store_value(self, name: str, tensor: onnx.TensorProto) -> None:
        try:
            self.values[name] = np.asarray(numpy_helper.to_array(tensor))
        except Exception:  # noqa: BLE001 - external or exotic data: value stays unknown
            pass

    # ------------------------------------------------------------------ queries
    def is_activation(self, name: str) -> bool:
        return name in self.activations

    def shape(self, name: str) -> _Dims | None:
        return self.shapes.get(name) if name else None

    def value(self, name: str) -> np.ndarray | None:
        return self.values.get(name) if name else None

    def learned(self, name: str) -> frozenset[str]:
        """Initializers a constant input is computed from (its learned weights)."""
        return self.sources.get(name, frozenset()) if name and name not in self.activations else frozenset()

    def numel(self, initializer: str) -> int:
        tensor = self.stored.get(initializer)
        return _numel(tensor.dims) if tensor is not None else 0

    def is_learnable(self, initializer: str) -> bool:
        """Whether an initializer could hold trained values: floating point, not a running statistic."""
        tensor = self.stored.get(initializer)
        return (
            tensor is not None
            and tensor.data_type in _FLOAT_TYPES
            and not initializer.endswith(_BUFFER_SUFFIXES)
        )

    def looks_like_parameter(self, initializer: str) -> bool:
        """Whether an initializer is named like a PyTorch state-dict parameter.

        Used only for learned tensors outside known layers (``x * self.gamma``), where
        nothing but the name tells a parameter from an exporter-made constant.
        """
        return self.is_learnable(initializer) and _is_parameter_name(initializer)

    # ------------------------------------------------------------------ folding
    def fold_constant_node(self, node: onnx.NodeProto) -> None:
        """Record the outputs of a node that computes only constants."""
        if node.op_type in _SHAPE_OPS:
            sources: frozenset[str] = frozenset()
        elif node.op_type == "CastLike":
            sources = self.learned(node.input[0]) if node.input else frozenset()
        else:
            sources = frozenset().union(*(self.learned(i) for i in node.input if i))
        for out in node.output:
            if out:
                self.sources[out] = sources
        alias = node.output[0] if node.op_type == "Identity" and node.output else ""
        if alias and node.input and node.input[0] in self.stored and _is_parameter_name(alias):
            self.stored[alias] = self.stored[node.input[0]]
            self.sources[alias] = frozenset({alias})
        value = _evaluate(node, self)
        if value is not None and node.output and node.output[0]:
            self.values[node.output[0]] = value

    def mark_activations(self, node: onnx.NodeProto) -> None:
        self.activations.update(o for o in node.output if o)


def _is_parameter_name(name: str) -> bool:
    """Whether a tensor name looks like a PyTorch state-dict key (``layer1.0.conv1.weight``)."""
    return bool(_PARAM_NAME.match(name)) and not name.startswith(_NOT_PARAM_PREFIXES)


def _shape_of_type(type_proto: onnx.TypeProto) -> _Dims | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = []
    for dim in type_proto.tensor_type.shape.dim:
        dims.append(int(dim.dim_value) if dim.HasField("dim_value") else None)
    return tuple(dims)


def _numel(dims: Iterable[int]) -> int:
    out = 1
    for d in dims:
        out *= int(d)
    return out


def _evaluate(node: onnx.NodeProto, tensors: _Tensors) -> np.ndarray | None:
    """Value of a small constant computation (axes lists, clip bounds), else None.

    Only value-preserving plumbing is evaluated; shapes are flattened because callers
    only read these values as flat lists or scalars.
    """
    op = node.op_type
    if op == "Constant":
        return _constant_value(node)
    if op in ("Identity", "Cast", "CastLike", "Reshape", "Squeeze", "Unsqueeze", "Flatten"):
        value = tensors.value(node.input[0]) if node.input else None
        return None if value is None else np.asarray(value).ravel()
    if op == "Concat":
        parts = [tensors.value(i) for i in node.input]
        if parts and all(p is not None for p in parts):
            return np.concatenate([np.asarray(p).ravel() for p in parts])
    return None


def _constant_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        try:
            value = onnx.helper.get_attribute_value(attr)
        except Exception:  # noqa: BLE001
            return None
        if isinstance(value, onnx.TensorProto):
            if _numel(value.dims) > _SMALL_VALUE:
                return None
            try:
                return np.asarray(numpy_helper.to_array(value))
            except Exception:  # noqa: BLE001
                return None
        if isinstance(value, (int, float, list, tuple)):
            return np.asarray(value)
    return None


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default
