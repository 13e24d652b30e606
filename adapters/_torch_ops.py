"""How PyTorch modules, functions and tensor methods map onto the shared op vocabulary.

Both PyTorch tracing paths (torch.fx and the torchview fallback) use these tables, so a
model gives the same graph whichever path traced it.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.graph.ops import unknown_op_name

# Marker for calls that only forward their input (no op of their own): the node is
# removed and its producers are wired straight to its consumers.
PASSTHROUGH = "__passthrough__"

_ACTIVATIONS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.ReLU, "relu"),
    (nn.ReLU6, "relu6"),
    (nn.LeakyReLU, "leaky_relu"),
    (nn.ELU, "elu"),
    (nn.SELU, "selu"),
    (nn.GELU, "gelu"),
    (nn.SiLU, "silu"),
    (nn.Mish, "mish"),
    (nn.Sigmoid, "sigmoid"),
    (nn.Hardsigmoid, "hardsigmoid"),
    (nn.Hardswish, "hardswish"),
    (nn.Tanh, "tanh"),
    (nn.Softmax, "softmax"),
    (nn.LogSoftmax, "log_softmax"),
    (nn.Softplus, "softplus"),
    (nn.PReLU, "prelu"),
)

_NORMS: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.modules.batchnorm._BatchNorm, "batchnorm"),
    (nn.LayerNorm, "layernorm"),
    (nn.GroupNorm, "groupnorm"),
    (nn.modules.instancenorm._InstanceNorm, "instancenorm"),
)


def trainable_parameter_count(module: nn.Module, recurse: bool = True) -> int:
    """Trainable parameters of ``module`` (running statistics and frozen weights excluded)."""
    if not recurse or not module._modules:  # a leaf: its own parameters (no generator chain)
        return sum(p.numel() for p in module._parameters.values() if p is not None and p.requires_grad)
    return sum(p.numel() for p in module.parameters(recurse=recurse) if p.requires_grad)


# Module classes whose op does not depend on instance attributes, memoised by type:
# isinstance chains are a measurable part of tracing a network with hundreds of leaves.
_STATIC_MODULE_OPS: dict[type, str] = {}
_INSTANCE_DEPENDENT = (
    nn.modules.conv._ConvNd,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
)


def module_op(module: nn.Module) -> str:
    """Vocabulary name of a (leaf) module; unknown classes keep their class name."""
    cls = type(module)
    op = _STATIC_MODULE_OPS.get(cls)
    if op is None:
        op = _module_op(module)
        if not isinstance(module, _INSTANCE_DEPENDENT):
            _STATIC_MODULE_OPS[cls] = op
    return op


def _module_op(module: nn.Module) -> str:
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        dims = len(module.kernel_size)
        if dims == 2 and module.groups > 1 and module.groups == module.in_channels:
            return "depthwise_conv2d"
        return f"conv{dims}d"
    if isinstance(module, nn.ConvTranspose2d):
        return "conv_transpose2d"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Embedding):
        return "embedding"
    for cls, op in _NORMS:
        if isinstance(module, cls):
            return op
    for cls, op in _ACTIVATIONS:
        if isinstance(module, cls):
            return op
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return "max_pool"
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)):
        return "avg_pool"
    if isinstance(module, (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)):
        return "global_avg_pool" if _is_global(module.output_size) else "avg_pool"
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)):
        return "global_max_pool" if _is_global(module.output_size) else "max_pool"
    if isinstance(module, nn.Flatten):
        return "flatten"
    if isinstance(module, nn.Identity):
        return "identity"
    if isinstance(module, (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)):
        return "dropout"
    if isinstance(module, (nn.Upsample,)):
        return "upsample"
    if isinstance(module, (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)):
        return "pad"
    return unknown_op_name(type(module).__name__)


def module_attrs(module: nn.Module) -> dict[str, Any]:
    """Shape attributes of a module: channels, kernel, stride, groups, bias, weights, params."""
    attrs: dict[str, Any] = {"num_params": trainable_parameter_count(module)}
    if isinstance(module, nn.modules.conv._ConvNd):
        attrs.update(
            in_channels=module.in_channels,
            out_channels=module.out_channels,
            kernel_size=tuple(module.kernel_size),
            stride=tuple(module.stride),
            padding=tuple(module.padding) if isinstance(module.padding, tuple) else module.padding,
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=module.bias is not None,
            weight_shape=tuple(module.weight.shape),
        )
    elif isinstance(module, nn.Linear):
        attrs.update(
            in_channels=module.in_features,
            out_channels=module.out_features,
            bias=module.bias is not None,
            weight_shape=tuple(module.weight.shape),
        )
    elif isinstance(module, nn.MultiheadAttention):
        attrs.update(
            in_channels=module.embed_dim,
            out_channels=module.embed_dim,
            num_heads=module.num_heads,
            bias=module.in_proj_bias is not None,
        )
    elif isinstance(module, nn.Embedding):
        attrs.update(in_channels=module.num_embeddings, out_channels=module.embedding_dim,
                     weight_shape=tuple(module.weight.shape))
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        attrs.update(in_channels=module.num_features, out_channels=module.num_features,
                     bias=module.affine)
    elif isinstance(module, nn.LayerNorm):
        attrs.update(weight_shape=tuple(module.normalized_shape), bias=module.bias is not None)
    elif isinstance(module, nn.GroupNorm):
        attrs.update(in_channels=module.num_channels, out_channels=module.num_channels, groups=module.num_groups)
    elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d)):
        attrs.update(kernel_size=_as_tuple(module.kernel_size), stride=_as_tuple(module.stride))
    return attrs


def _as_tuple(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _is_global(output_size: Any) -> bool:
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,)
    return all(s == 1 for s in sizes)


# --------------------------------------------------------------------------- functions
_FUNCTION_OPS: dict[Callable[..., Any], str] = {
    operator.add: "add",
    operator.iadd: "add",
    torch.add: "add",
    operator.sub: "sub",
    torch.sub: "sub",
    operator.mul: "mul",
    operator.imul: "mul",
    torch.mul: "mul",
    operator.truediv: "div",
    torch.div: "div",
    operator.matmul: "matmul",
    torch.matmul: "matmul",
    torch.bmm: "matmul",
    torch.einsum: "matmul",
    operator.neg: "neg",
    operator.pow: "pow",
    torch.cat: "concat",
    torch.concat: "concat",
    torch.stack: "concat",
    torch.flatten: "flatten",
    torch.reshape: "reshape",
    torch.transpose: "transpose",
    torch.permute: "transpose",
    torch.chunk: "split",
    torch.split: "split",
    torch.relu: "relu",
    F.relu: "relu",
    F.relu6: "relu6",
    F.leaky_relu: "leaky_relu",
    F.elu: "elu",
    F.selu: "selu",
    F.gelu: "gelu",
    F.silu: "silu",
    F.mish: "mish",
    torch.sigmoid: "sigmoid",
    F.sigmoid: "sigmoid",
    F.hardsigmoid: "hardsigmoid",
    F.hardswish: "hardswish",
    torch.tanh: "tanh",
    F.tanh: "tanh",
    F.softmax: "softmax",
    torch.softmax: "softmax",
    F.log_softmax: "log_softmax",
    F.softplus: "softplus",
    F.max_pool1d: "max_pool",
    F.max_pool2d: "max_pool",
    F.avg_pool1d: "avg_pool",
    F.avg_pool2d: "avg_pool",
    F.dropout: "dropout",
    F.adaptive_avg_pool1d: "avg_pool",
    F.adaptive_avg_pool2d: "avg_pool",
    F.adaptive_max_pool1d: "max_pool",
    F.adaptive_max_pool2d: "max_pool",
    F.pad: "pad",
    F.interpolate: "upsample",
    torch.mean: "mean",
    torch.sum: "sum",
    torch.sqrt: "sqrt",
    torch.exp: "exp",
    F.linear: "linear",
    F.conv2d: "conv2d",
    F.conv1d: "conv1d",
    F.layer_norm: "layernorm",
    F.batch_norm: "batchnorm",
    F.scaled_dot_product_attention: "attention",
    F.multi_head_attention_forward: "attention",
    torch.zeros_like: "zero",
    torch.clone: PASSTHROUGH,
}

_METHOD_OPS: dict[str, str] = {
    "add": "add",
    "add_": "add",
    "sub": "sub",
    "mul": "mul",
    "mul_": "mul",
    "div": "div",
    "matmul": "matmul",
    "bmm": "matmul",
    "relu": "relu",
    "relu_": "relu",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "view": "reshape",
    "reshape": "reshape",
    "flatten": "flatten",
    "permute": "transpose",
    "transpose": "transpose",
    "chunk": "split",
    "split": "split",
    "unsqueeze": "reshape",
    "squeeze": "reshape",
    "expand": "reshape",
    "mean": "mean",
    "sum": "sum",
    "pow": "pow",
    "sqrt": "sqrt",
    "exp": "exp",
    "neg": "neg",
    "contiguous": PASSTHROUGH,
    "clone": PASSTHROUGH,
    "detach": PASSTHROUGH,
    "to": PASSTHROUGH,
    "float": PASSTHROUGH,
    "type_as": PASSTHROUGH,
}

_FUNCTION_OPS_BY_NAME: dict[str, str] = {
    getattr(fn, "__name__", ""): op for fn, op in _FUNCTION_OPS.items() if getattr(fn, "__name__", "")
}


def refine_op(op: str, input_shape: tuple[int, ...] | None, output_shape: tuple[int, ...] | None) -> str:
    """Refine an op from the shapes around it.

    A pooling or mean that reduces every spatial position of an ``(N, C, *spatial)``
    input to one value per channel is a global pool, whichever API expressed it
    (``nn.AdaptiveAvgPool2d(1)``, ``F.adaptive_avg_pool2d(x, 1)``, ``x.mean((2, 3))``);
    the ONNX adapter makes the same distinction.
    """
    if op not in {"avg_pool", "max_pool", "mean"} or not input_shape or not output_shape:
        return op
    if len(input_shape) < 3:
        return op
    spatial_out = output_shape[2:] if len(output_shape) == len(input_shape) else ()
    is_global = all(d == 1 for d in spatial_out) and output_shape[:2] == input_shape[:2]
    if not is_global:
        return op
    return "global_max_pool" if op == "max_pool" else "global_avg_pool"


def function_op(fn: Any) -> str:
    """Vocabulary name of a called function (``operator.add``, ``F.relu``, ``torch.cat``, ...)."""
    try:
        op = _FUNCTION_OPS.get(fn)
    except TypeError:  # unhashable callables
        op = None
    if op is not None:
        return op
    name = getattr(fn, "__name__", None) or str(fn)
    return _FUNCTION_OPS_BY_NAME.get(name, unknown_op_name(name))


def function_name_op(name: str) -> str:
    """Vocabulary name of a function known only by name (torchview records names)."""
    name = name.rstrip("_") if name.endswith("_") and not name.startswith("__") else name
    return _FUNCTION_OPS_BY_NAME.get(name) or _METHOD_OPS.get(name) or _dunder_op(name) or unknown_op_name(name)


def method_op(name: str) -> str:
    """Vocabulary name of a tensor method call (``x.view``, ``x.relu``, ...)."""
    return _METHOD_OPS.get(name, unknown_op_name(name))


def _dunder_op(name: str) -> str | None:
    table = {"__add__": "add", "__iadd__": "add", "__radd__": "add", "__mul__": "mul", "__rmul__": "mul",
             "__sub__": "sub", "__truediv__": "div", "__matmul__": "matmul", "__getitem__": "slice",
             "__neg__": "neg", "__pow__": "pow", "getitem": "slice", "contiguous": PASSTHROUGH}
    return table.get(name)
