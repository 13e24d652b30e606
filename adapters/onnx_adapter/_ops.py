"""Step 2: map each ONNX node to an op of the shared vocabulary (rules per ONNX operator)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnx
from nasassist_plugins.adapters.onnx_adapter._tensors import _SHAPE_OPS, _attr, _Tensors

from nasassist_plugins.graph.ops import unknown_op_name


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
