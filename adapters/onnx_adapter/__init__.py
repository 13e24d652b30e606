"""ONNX model -> :class:`ComputationalGraph`, in the same vocabulary as the PyTorch adapter.

An ONNX graph is much finer-grained than a PyTorch module graph: one ``nn.Linear`` can
become ``Transpose`` + ``MatMul`` + ``Add``, one ``nn.MultiheadAttention`` some fifty
nodes, and shape arithmetic (``Shape``, ``Constant``, ``Gather`` on shapes, ...) is
interleaved with the real work. :func:`from_onnx` therefore works in four steps:

1. **Classify tensors.** Graph inputs carry *activations*; everything computed only
   from initializers, ``Constant`` nodes or ``Shape`` outputs is a *constant*. Nodes
   that produce constants are folded away (their consumers simply see a constant
   input), nodes that touch activations become ops. No op that carries an activation
   is ever dropped; an operator no rule knows keeps its lower-cased ONNX name.
2. **Map each op** to the shared vocabulary (``Conv`` -> ``conv2d``/``depthwise_conv2d``,
   ``Gemm`` -> ``linear``, ``BatchNormalization`` -> ``batchnorm``, ...) with the same
   shape attributes the PyTorch adapter records.
3. **Re-assemble PyTorch-level ops** that exporters split: every node of one
   ``nn.MultiheadAttention`` call becomes one ``attention`` node; with the dynamo
   exporter's metadata, all nodes of one aten call (``aten.linear``, ``aten.gelu``,
   ``aten.group_norm``, ...) become one node; without metadata, structural patterns
   merge ``MatMul`` + bias ``Add`` into ``linear`` and recognise decomposed LayerNorm,
   GroupNorm, GELU, SiLU and HardSwish.
4. **Assemble** the graph: one ``input`` node per graph input, one ``output`` node per
   graph output, edges along the activation tensors.

Parameters are counted from the initializers feeding each op's learned inputs (for
``batchnorm`` only scale and bias, not the running statistics), once per module, so
``graph.num_parameters`` matches ``sum(p.numel() for p in model.parameters())`` for a
model exported with :func:`export_onnx`.

Limitations, by design of the ONNX format rather than of this adapter:

* Exporters run in eval mode may fold BatchNorm into the preceding Conv (the legacy
  TorchScript exporter with ``do_constant_folding=True``, ``onnxsim``, ``onnxruntime``
  optimisers): such a file shows fewer ``batchnorm`` nodes, and its parameter count
  lacks the folded scales and shifts. :func:`export_onnx` keeps BatchNorm.
* The dynamo exporter's default optimiser (``optimize=True``) drops all-zero biases and
  merges equal-valued initializers; counts from such files can be slightly low.
  :func:`export_onnx` exports with ``optimize=False``.
* Learned tensors used outside known layers (``x + self.pos_embedding``) are recognised
  by their state-dict-like initializer names; registered *buffers* used the same way
  look identical in ONNX and are counted as parameters too.
* Weights stored as ``Constant`` nodes rather than initializers are treated as
  constants, not parameters.
"""

from __future__ import annotations

import ast
import math
import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

from nasassist_plugins.errors import AdapterError, AdapterTypeError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.graph.ops import is_weighted_op, unknown_op_name

__all__ = ["from_onnx", "export_onnx"]

_Dims = tuple  # tuple[int | None, ...]: None marks a dimension shape inference could not resolve


# ============================================================================ public API
def from_onnx(path_or_model: Any, *, name: str | None = None) -> ComputationalGraph:
    """Read an ONNX model into a computational graph in the shared op vocabulary.

    Args:
        path_or_model: Path (``str``/``os.PathLike``) to a ``.onnx`` file, the file's
            raw ``bytes``, or an ``onnx.ModelProto``. External weight files are not
            needed: only the tensor shapes stored in the model are read.
        name: Graph name; defaults to the file's stem, else the ONNX graph's name.

    Returns:
        A validated :class:`ComputationalGraph` whose nodes carry ``in_channels``,
        ``out_channels``, ``kernel_size``, ``stride``, ``padding``, ``dilation``,
        ``groups``, ``bias``, ``weight_shape``, ``output_shape`` and ``num_params`` where
        they apply, and ``module`` (the PyTorch module's qualified name) when the
        exporter recorded it. Nodes of unknown operators from a custom domain also
        carry ``onnx_op`` (``"com.example::FancyMix"``).

    Raises:
        AdapterTypeError: ``path_or_model`` is none of the accepted types.
        AdapterError: the file is missing, is not a valid (or is a truncated) ONNX model,
            fails ``onnx.checker``, or has no nodes.
    """
    model, label, stem = _load_model(path_or_model)
    _check_model(model, label)
    model, shape_error = _with_inferred_shapes(model)
    graph_proto = model.graph
    tensors = _Tensors(graph_proto)
    ops = _collect_ops(graph_proto, tensors)
    ops = _reassemble(ops, tensors)
    metadata = _graph_metadata(model, label, shape_error)
    graph_name = name or stem or graph_proto.name or "onnx_model"
    graph = _assemble(graph_proto, ops, tensors, graph_name, metadata)
    return graph.validate()


def export_onnx(model: Any, example_input: Any, path: str | os.PathLike[str], *, dynamo: bool = True) -> Path:
    """Export a PyTorch model to ONNX the way :func:`from_onnx` reads best.

    Uses the dynamo exporter (``torch.onnx.export(dynamo=True)``, the default since
    PyTorch 2.9) because it records each node's module path and class hierarchy, which
    lets :func:`from_onnx` fill ``module`` and re-assemble ``nn.MultiheadAttention``.
    Its graph optimiser is switched off (``optimize=False``): it would drop all-zero
    biases and merge equal initializers, which skews parameter counts. The model is
    exported in eval mode (dropout off) without folding BatchNorm into Conv; its
    training mode is restored afterwards. Weights are stored inside the one ``.onnx``
    file unless they exceed protobuf's 2 GB limit.

    If the dynamo exporter cannot handle the model (e.g. data-dependent control flow),
    or ``dynamo=False``, the legacy TorchScript exporter is used with
    ``do_constant_folding=False`` (which also keeps BatchNorm).

    Args:
        model: An ``nn.Module``.
        example_input: A tensor, a tuple of tensors, or a shape such as ``(1, 3, 32, 32)``.
        path: Where to write the ``.onnx`` file (parent folders are created).
        dynamo: Try the dynamo exporter first (default) or go straight to the legacy one.

    Returns:
        The path of the written file.

    Raises:
        AdapterTypeError: ``model`` is not an ``nn.Module`` or the input is malformed.
        AdapterError: no exporter could export the model; the message names both causes.
    """
    import torch

    from nasassist_plugins.adapters.torch_adapter import as_example_inputs

    if not isinstance(model, torch.nn.Module):
        raise AdapterTypeError(f"export_onnx expects a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    inputs = as_example_inputs(example_input, params[0].device if params else None)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        errors: list[str] = []
        if dynamo:
            try:
                _export_dynamo(model, inputs, target)
                return target
            except Exception as exc:  # noqa: BLE001 - any exporter failure: try the legacy one
                errors.append(f"dynamo exporter: {_describe(exc)}")
        try:
            _export_legacy(model, inputs, target)
            return target
        except Exception as exc:  # noqa: BLE001
            errors.append(f"TorchScript exporter: {_describe(exc)}")
            raise AdapterError(f"cannot export {type(model).__name__} to ONNX ({'; '.join(errors)})") from exc
    finally:
        model.train(was_training)


# ============================================================================ export helpers
_EXTERNAL_DATA_BYTES = 1_500_000_000  # stay well below protobuf's 2 GB message limit


def _export_dynamo(model: Any, inputs: tuple[Any, ...], target: Path) -> None:
    import torch

    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(target),
            dynamo=True,
            optimize=False,
            verbose=False,
            external_data=size > _EXTERNAL_DATA_BYTES,
        )


def _export_legacy(model: Any, inputs: tuple[Any, ...], target: Path) -> None:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(target),
            dynamo=False,
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=False,
        )


def _describe(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")


# ============================================================================ loading
def _load_model(source: Any) -> tuple[onnx.ModelProto, str, str | None]:
    """Return the model, a label naming it in messages, and a default graph name."""
    if isinstance(source, onnx.ModelProto):
        return source, "the given ONNX model", None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return _parse(data, f"the given ONNX bytes ({len(data)} bytes)"), "the given ONNX bytes", None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = f"ONNX file {str(path)!r}"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AdapterError(f"ONNX file not found: {str(path)!r}") from None
        except IsADirectoryError:
            raise AdapterError(f"{label} is a directory, not an ONNX file") from None
        except OSError as exc:
            raise AdapterError(f"cannot read {label}: {exc.strerror or exc}") from exc
        return _parse(data, label), label, path.stem
    raise AdapterTypeError(
        "from_onnx expects a path to an .onnx file, the file's bytes or an onnx.ModelProto; "
        f"got {type(source).__name__}"
    )


def _parse(data: bytes, label: str) -> onnx.ModelProto:
    """Decode a serialised ModelProto, turning protobuf errors into AdapterError."""
    if not data:
        raise AdapterError(f"{label} is not a valid ONNX model: it is empty (0 bytes)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError or RuntimeWarning-like errors
        raise AdapterError(
            f"{label} is not a valid ONNX model: {exc} (the file is corrupt, truncated or not ONNX)"
        ) from exc
    if not model.HasField("graph") or model.ir_version == 0:
        raise AdapterError(
            f"{label} is not a valid ONNX model: it holds no ONNX graph or IR version "
            "(the file is corrupt, truncated or not ONNX)"
        )
    return model


def _check_model(model: onnx.ModelProto, label: str) -> None:
    if not model.HasField("graph"):
        raise AdapterError(f"{label} is not a valid ONNX model: it holds no graph")
    if len(model.graph.node) == 0:
        raise AdapterError(f"{label} has no nodes: its ONNX graph {model.graph.name!r} is empty")
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AdapterError(f"{label} fails onnx.checker: {first}") from exc


def _with_inferred_shapes(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Inline local functions and run shape inference; keep going without shapes if it fails."""
    if len(model.functions):
        try:
            import onnx.inliner

            model = onnx.inliner.inline_local_functions(model)
        except Exception:  # noqa: BLE001 - function nodes then stay opaque (kept by name)
            pass
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True), None
    except Exception as exc:  # noqa: BLE001 - shapes are optional attributes
        return model, _describe(exc)


def _graph_metadata(model: onnx.ModelProto, label: str, shape_error: str | None) -> dict[str, Any]:
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    meta: dict[str, Any] = {
        "source": "onnx",
        "origin": label,
        "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p) or None,
        "opset": opsets.get("ai.onnx"),
        "ir_version": int(model.ir_version),
    }
    if shape_error:
        meta["shape_inference_error"] = shape_error
    return {k: v for k, v in meta.items() if v is not None}


# ============================================================================ tensors
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


# ============================================================================ ops
@dataclass
class _Op:
    """One op of the graph being built: an ONNX node, or several merged into one.

    Attributes:
        op_type: Vocabulary name.
        name: Readable name (the ONNX node's, or the module's for merged ops).
        onnx_type: The ONNX operator (``"Conv"``), or ``"+"``-joined for merged ops.
        inputs: Activation tensors consumed, in order.
        outputs: Tensors produced.
        consts: Constant (non-activation) inputs, by input position.
        attrs: Shape attributes for the graph node.
        weights: Learned-tensor roles (``"weight"``, ``"bias"``, ``"in2"``, ...) mapped
            to the initializers holding them.
        scopes: Qualified module names enclosing the op, outermost first.
        classes: The class of each scope (dynamo exporter only), same length as scopes.
        call: Identifies the aten call the node came from (dynamo exporter only).
        aten: Short aten op name of that call (``"aten.linear"``).
        shape_of: Output tensor whose shape becomes ``output_shape``.
        size: Number of ONNX nodes merged into this op.
    """

    op_type: str
    name: str
    onnx_type: str
    inputs: list[str]
    outputs: list[str]
    consts: dict[int, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, frozenset[str]] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    call: tuple[str, ...] | None = None
    aten: str | None = None
    shape_of: str | None = None
    size: int = 1

    @property
    def module(self) -> str | None:
        return self.scopes[-1] if self.scopes else None


def _collect_ops(graph: onnx.GraphProto, tensors: _Tensors) -> list[_Op]:
    """Fold constant computations and map every activation-carrying node to an op."""
    ops: list[_Op] = []
    for index, node in enumerate(graph.node):
        inputs = list(node.input) + _outer_scope_inputs(node)
        activation_inputs = [i for i in inputs if i and tensors.is_activation(i)]
        data_inputs = activation_inputs
        if node.op_type == "CastLike":  # only input 0 carries data; input 1 lends its dtype
            data_inputs = [i for i in node.input[:1] if tensors.is_activation(i)]
        if node.op_type in _SHAPE_OPS or not data_inputs:
            tensors.fold_constant_node(node)
            continue
        tensors.mark_activations(node)
        ops.append(_make_op(node, index, activation_inputs, tensors))
    return ops


def _outer_scope_inputs(node: onnx.NodeProto) -> list[str]:
    """Names that a control-flow node's subgraphs read from the enclosing graph."""
    names: list[str] = []
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for sub in subgraphs:
            defined = {i.name for i in sub.input} | {t.name for t in sub.initializer}
            for inner in sub.node:
                names.extend(i for i in list(inner.input) + _outer_scope_inputs(inner) if i and i not in defined)
                defined.update(inner.output)
    return list(dict.fromkeys(names))


def _make_op(node: onnx.NodeProto, index: int, activation_inputs: list[str], tensors: _Tensors) -> _Op:
    scopes, classes, call, aten = _scope_info(node)
    consts = {i: name for i, name in enumerate(node.input) if name and not tensors.is_activation(name)}
    op = _Op(
        op_type="",
        name=node.name or f"{node.op_type}_{index}",
        onnx_type=node.op_type,
        inputs=list(dict.fromkeys(activation_inputs)),
        outputs=[o for o in node.output if o],
        consts=consts,
        scopes=scopes,
        classes=classes,
        call=call,
        aten=aten,
    )
    op.shape_of = op.outputs[0] if op.outputs else None
    rule = _RULES.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    if rule is not None:
        op.op_type, op.attrs, op.weights = rule(node, tensors, op)
    else:
        op.op_type, op.attrs, op.weights = _simple(node, tensors, op)
    return op


# ---------------------------------------------------------------------------- scopes
def _scope_info(node: onnx.NodeProto) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...] | None, str | None]:
    """Module scopes (and classes, aten call) of a node, from dynamo metadata or its name.

    The dynamo exporter stores ``pkg.torch.onnx.name_scopes`` (``['', 'enc',
    'enc.self_attn', 'linear_1']``: root, modules, fx node) and
    ``pkg.torch.onnx.class_hierarchy`` (root class, module classes, aten op). The
    TorchScript exporter names nodes after their scope: ``/layer1/layer1.0/conv1/Conv``.
    """
    meta = {p.key: p.value for p in getattr(node, "metadata_props", [])}
    names = _literal_list(meta.get("pkg.torch.onnx.name_scopes"))
    classes = _literal_list(meta.get("pkg.torch.onnx.class_hierarchy"))
    if names and len(names) >= 2:
        scopes = tuple(names[1:-1])
        module_classes = tuple(classes[1:-1]) if len(classes) == len(names) else ()
        aten = _short_aten(classes[-1]) if len(classes) == len(names) else None
        return scopes, module_classes, tuple(names), aten
    return _scopes_from_name(node.name), (), None, None


def _literal_list(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _short_aten(target: str) -> str:
    """``aten.linear.default`` -> ``aten.linear`` (drop the overload)."""
    parts = target.split(".")
    return ".".join(parts[:2]) if len(parts) >= 3 else target


def _scopes_from_name(name: str) -> tuple[str, ...]:
    """Qualified module names from a TorchScript-exporter node name.

    ``/layer1/layer1.0/conv1/Conv`` -> ``('layer1', 'layer1.0', 'layer1.0.conv1')``:
    path components are either already qualified (``layer1.0``) or relative to the
    component before them.
    """
    if not name.startswith("/"):
        return ()
    scopes: list[str] = []
    for part in name.split("/")[1:-1]:
        if not part:
            continue
        parent = scopes[-1] if scopes else ""
        scopes.append(part if not parent or part.startswith(parent + ".") else f"{parent}.{part}")
    return tuple(scopes)


# ---------------------------------------------------------------------------- rules
_Rule = Callable[[onnx.NodeProto, _Tensors, _Op], tuple[str, dict[str, Any], dict[str, frozenset[str]]]]

_SIMPLE_OPS: dict[str, str] = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "LeakyRelu": "leaky_relu",
    "Elu": "elu",
    "Selu": "selu",
    "Gelu": "gelu",
    "Softplus": "softplus",
    "Mish": "mish",
    "Swish": "silu",
    "Add": "add",
    "Sub": "sub",
    "Mul": "mul",
    "Div": "div",
    "Neg": "neg",
    "Pow": "pow",
    "Sqrt": "sqrt",
    "Exp": "exp",
    "Einsum": "matmul",
    "Concat": "concat",
    "Split": "split",
    "Flatten": "flatten",
    "Reshape": "reshape",
    "Squeeze": "reshape",
    "Unsqueeze": "reshape",
    "Expand": "reshape",
    "Transpose": "transpose",
    "Slice": "slice",
    "Pad": "pad",
    "Resize": "upsample",
    "Upsample": "upsample",
    "Identity": "identity",
    "Dropout": "dropout",
    "GlobalAveragePool": "global_avg_pool",
    "GlobalMaxPool": "global_max_pool",
    "ReduceSum": "sum",
}


def _simple(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    """Table-mapped ops and unknown ops (kept under their lower-cased name)."""
    if node.domain in ("", "ai.onnx") and node.op_type in _SIMPLE_OPS:
        op_type = _SIMPLE_OPS[node.op_type]
        if op_type == "identity" and op.classes and re.search(r"Dropout(\dd)?$", op.classes[-1]):
            op_type = "dropout"  # the dynamo exporter writes eval-mode dropout as Identity
        elif op_type == "reshape" and op.classes and op.classes[-1].endswith(".Flatten"):
            op_type = "flatten"  # ... and nn.Flatten as Reshape
        return op_type, {}, _generic_weights(op, tensors)
    attrs: dict[str, Any] = {}
    if node.domain not in ("", "ai.onnx"):
        attrs["onnx_op"] = f"{node.domain}::{node.op_type}"
    return unknown_op_name(node.op_type), attrs, _generic_weights(op, tensors)


def _generic_weights(op: _Op, tensors: _Tensors) -> dict[str, frozenset[str]]:
    """Parameter-named initializers read by an op outside the known layers."""
    weights = {}
    for position, name in op.consts.items():
        params = frozenset(s for s in tensors.learned(name) if tensors.looks_like_parameter(s))
        if params:
            weights[f"in{position}"] = params
    return weights


def _role_weights(tensors: _Tensors, **roles: str | None) -> dict[str, frozenset[str]]:
    """Learned inputs by role (``weight=node.input[1]``); roles without initializers are left out."""
    out = {}
    for role, name in roles.items():
        sources = tensors.learned(name) if name else frozenset()
        if sources:
            out[role] = sources
    return out


def _input(node: onnx.NodeProto, position: int) -> str | None:
    return node.input[position] if len(node.input) > position and node.input[position] else None


def _ints(value: Any, rank: int, default: int) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if value else (default,) * rank


def _conv(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    weight, bias = _input(node, 1), _input(node, 2)
    wshape = tensors.shape(weight) or ()
    kernel = tuple(int(k) for k in (_attr(node, "kernel_shape") or wshape[2:]))
    rank = len(kernel) or max(len(tensors.shape(node.input[0]) or ()) - 2, 1)
    groups = int(_attr(node, "group", 1))
    x_shape = tensors.shape(node.input[0]) or ()
    transposed = node.op_type == "ConvTranspose"
    if transposed:
        in_channels = _known(x_shape, 1) or _known(wshape, 0)
        out_channels = _known(wshape, 1) * groups if _known(wshape, 1) else None
        op_type = f"conv_transpose{rank}d"
    else:
        in_channels = _known(x_shape, 1) or (_known(wshape, 1) * groups if _known(wshape, 1) else None)
        out_channels = _known(wshape, 0)
        depthwise = rank == 2 and groups > 1 and groups == in_channels
        op_type = "depthwise_conv2d" if depthwise else f"conv{rank}d"
    weights = _role_weights(tensors, weight=weight, bias=bias)
    attrs = {
        "in_channels": in_channels,
        "out_channels": out_channels,
        "kernel_size": kernel,
        "stride": _ints(_attr(node, "strides"), rank, 1),
        "padding": _padding(node, rank),
        "dilation": _ints(_attr(node, "dilations"), rank, 1),
        "groups": groups,
        "bias": "bias" in weights,
        "weight_shape": tuple(wshape) if wshape and None not in wshape else None,
    }
    return op_type, attrs, weights


def _known(shape: Sequence[int | None], index: int) -> int | None:
    return int(shape[index]) if len(shape) > index and shape[index] is not None else None


def _padding(node: onnx.NodeProto, rank: int) -> tuple[int, ...] | str:
    auto_pad = _attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        return "same"
    pads = tuple(int(p) for p in (_attr(node, "pads") or (0,) * (2 * rank)))
    begins, ends = pads[: len(pads) // 2], pads[len(pads) // 2 :]
    return begins if begins == ends else pads


# aten calls that are a linear layer; a MatMul with a weight from any other call
# (``x @ self.w``) stays ``matmul``, as the PyTorch adapter names it.
_LINEAR_ATEN = frozenset({"aten.linear", "aten.addmm"})


def _as_called(op: _Op, result: tuple[str, dict[str, Any], dict[str, frozenset[str]]]):
    op_type, attrs, weights = result
    if op_type == "linear" and op.aten is not None and op.aten not in _LINEAR_ATEN:
        return "matmul", attrs, weights
    return result


def _gemm(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    a, b, c = _input(node, 0), _input(node, 1), _input(node, 2)
    if not tensors.is_activation(a or "") or tensors.is_activation(b or "") or not tensors.learned(b or ""):
        return "matmul", {}, _generic_weights(op, tensors)
    wshape = tensors.shape(b) or ()
    if len(wshape) != 2:
        return "matmul", {}, _generic_weights(op, tensors)
    out_features, in_features = wshape if int(_attr(node, "transB", 0)) else (wshape[1], wshape[0])
    weights = _role_weights(tensors, weight=b, bias=c)
    return _as_called(op, ("linear", _linear_attrs(in_features, out_features, "bias" in weights), weights))


def _matmul(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    a, b = _input(node, 0), _input(node, 1)
    wshape = tensors.shape(b) or ()
    if tensors.is_activation(a or "") and tensors.learned(b or "") and len(wshape) == 2:
        return _as_called(op, ("linear", _linear_attrs(wshape[0], wshape[1], False), _role_weights(tensors, weight=b)))
    return "matmul", {}, _generic_weights(op, tensors)


def _linear_attrs(in_features: int | None, out_features: int | None, bias: bool) -> dict[str, Any]:
    shape = (out_features, in_features) if in_features and out_features else None
    return {"in_channels": in_features, "out_channels": out_features, "bias": bias, "weight_shape": shape}


def _batchnorm(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    scale, bias = _input(node, 1), _input(node, 2)  # inputs 3, 4: running statistics, not trained
    channels = _known(tensors.shape(scale) or (), 0) or _known(tensors.shape(node.input[0]) or (), 1)
    weights = _role_weights(tensors, weight=scale, bias=bias)
    return "batchnorm", {"in_channels": channels, "out_channels": channels, "bias": "bias" in weights}, weights


def _layernorm(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    scale, bias = _input(node, 1), _input(node, 2)
    weights = _role_weights(tensors, weight=scale, bias=bias)
    shape = tensors.shape(scale)
    return "layernorm", {"weight_shape": tuple(shape) if shape else None, "bias": "bias" in weights}, weights


def _groupnorm(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    channels = _known(tensors.shape(node.input[0]) or (), 1)
    attrs = {"in_channels": channels, "out_channels": channels, "groups": _attr(node, "num_groups")}
    return "groupnorm", attrs, _role_weights(tensors, weight=_input(node, 1), bias=_input(node, 2))


def _instancenorm(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    channels = _known(tensors.shape(node.input[0]) or (), 1)
    attrs = {"in_channels": channels, "out_channels": channels}
    return "instancenorm", attrs, _role_weights(tensors, weight=_input(node, 1), bias=_input(node, 2))


def _gather(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    data, indices = _input(node, 0), _input(node, 1)
    table = tensors.shape(data) or ()
    if not tensors.is_activation(data or "") and tensors.is_activation(indices or "") and len(table) == 2:
        attrs = {"in_channels": table[0], "out_channels": table[1], "weight_shape": tuple(table)}
        return "embedding", attrs, _role_weights(tensors, weight=data)
    return "slice", {}, _generic_weights(op, tensors)


def _prelu(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    return "prelu", {}, _role_weights(tensors, weight=_input(node, 1))


def _clip(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    low = _scalar(tensors.value(_input(node, 1) or ""), _attr(node, "min"))
    high = _scalar(tensors.value(_input(node, 2) or ""), _attr(node, "max"))
    if low == 0 and high == 6:
        return "relu6", {}, {}
    if low == 0 and high is None:
        return "relu", {}, {}
    return "clip", {}, _generic_weights(op, tensors)


def _scalar(value: np.ndarray | None, fallback: Any) -> float | None:
    if value is not None and np.asarray(value).size == 1:
        return float(np.asarray(value).ravel()[0])
    return float(fallback) if fallback is not None else None


def _pool(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    kernel = tuple(int(k) for k in (_attr(node, "kernel_shape") or ()))
    attrs = {
        "kernel_size": kernel,
        "stride": _ints(_attr(node, "strides"), len(kernel), 1),
        "padding": _padding(node, len(kernel)),
    }
    return ("max_pool" if node.op_type == "MaxPool" else "avg_pool"), attrs, {}


def _reduce(node: onnx.NodeProto, tensors: _Tensors, op: _Op):
    """ReduceMean/ReduceMax over all spatial dimensions is global pooling."""
    axes = _attr(node, "axes")
    if axes is None and _input(node, 1):
        value = tensors.value(node.input[1])
        axes = None if value is None else [int(a) for a in np.asarray(value).ravel()]
    rank = len(tensors.shape(node.input[0]) or ())
    spatial = rank >= 3 and axes is not None and sorted(int(a) % rank for a in axes) == list(range(2, rank))
    if node.op_type == "ReduceMean":
        return ("global_avg_pool" if spatial else "mean"), {}, {}
    return ("global_max_pool" if spatial else "reducemax"), {}, {}


_RULES: dict[str, _Rule] = {
    "Conv": _conv,
    "ConvTranspose": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "BatchNormalization": _batchnorm,
    "LayerNormalization": _layernorm,
    "GroupNormalization": _groupnorm,
    "InstanceNormalization": _instancenorm,
    "Gather": _gather,
    "PRelu": _prelu,
    "Clip": _clip,
    "MaxPool": _pool,
    "AveragePool": _pool,
    "ReduceMean": _reduce,
    "ReduceMax": _reduce,
}


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


def _reassemble(ops: list[_Op], tensors: _Tensors) -> list[_Op]:
    """Merge the ONNX ops that one PyTorch-level op was split into."""
    outputs = set(tensors.graph_outputs)
    ops = _merge_attention(ops, outputs, tensors)
    ops = _merge_aten_calls(ops, outputs, tensors)
    for pattern in (_merge_linear_bias, _merge_gated_activation, _merge_erf_gelu, _merge_layernorm, _merge_groupnorm):
        ops = _apply(pattern, ops, outputs, tensors)
    return ops


def _apply(pattern: Callable[..., "_PatternResult"], ops: list[_Op], outputs: set[str], tensors: _Tensors) -> list[_Op]:
    """Run a pattern until it finds nothing more (each call merges at most one match)."""
    start = 0
    while start < len(ops):
        result = pattern(ops, outputs, tensors, start)
        if result is None:
            break
        ops, start = result
    return ops


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
