"""The operation vocabulary shared by every adapter.

Every adapter (PyTorch, ONNX, benchmark cells) maps its native operator names onto
the names below, so that a user's model and a benchmark cell land in one graph space
and the predictor can transfer between them. An operator that no rule recognises is
kept under its own (lower-cased) name rather than dropped: :func:`is_known_op` tells
the two apart, and the predictor embeds unknown names by their text.
"""

from __future__ import annotations

#: Ops that carry a weight tensor ("weighted nodes" in the thesis, section 2.1.1).
WEIGHTED_OPS: frozenset[str] = frozenset(
    {
        "conv1d",
        "conv2d",
        "conv3d",
        "depthwise_conv2d",
        "conv_transpose2d",
        "linear",
        "batchnorm",
        "layernorm",
        "groupnorm",
        "instancenorm",
        "embedding",
        "attention",
    }
)

#: Ops without weights ("regular nodes").
REGULAR_OPS: frozenset[str] = frozenset(
    {
        "input",
        "output",
        # activations
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "gelu",
        "silu",
        "mish",
        "sigmoid",
        "hardsigmoid",
        "hardswish",
        "tanh",
        "softmax",
        "log_softmax",
        "softplus",
        "prelu",
        # element-wise arithmetic
        "add",
        "sub",
        "mul",
        "div",
        "matmul",
        "neg",
        "pow",
        "sqrt",
        "exp",
        # shape / routing
        "concat",
        "split",
        "flatten",
        "reshape",
        "transpose",
        "slice",
        "pad",
        "upsample",
        "identity",
        "zero",
        "dropout",
        # pooling / reductions
        "max_pool",
        "avg_pool",
        "global_avg_pool",
        "global_max_pool",
        "mean",
        "sum",
    }
)

#: The whole vocabulary, in a fixed order (the predictor's op-id table is built from it).
OP_VOCABULARY: tuple[str, ...] = tuple(sorted(WEIGHTED_OPS | REGULAR_OPS))

# Short human descriptions; the predictor embeds them with a sentence encoder so that
# an operator it has never seen lands near similar known ones (TG-NAS).
OP_DESCRIPTIONS: dict[str, str] = {
    "conv1d": "1D convolution over a sequence with learned kernels",
    "conv2d": "2D convolution with learned kernels over an image feature map",
    "conv3d": "3D convolution with learned kernels over a volume",
    "depthwise_conv2d": "depthwise 2D convolution, one kernel per channel",
    "conv_transpose2d": "transposed 2D convolution that upsamples a feature map",
    "linear": "fully connected linear layer, matrix multiply with learned weights",
    "batchnorm": "batch normalization with learned scale and shift",
    "layernorm": "layer normalization with learned scale and shift",
    "groupnorm": "group normalization with learned scale and shift",
    "instancenorm": "instance normalization",
    "embedding": "embedding lookup table of learned vectors",
    "attention": "multi-head self attention with learned query key value projections",
    "input": "network input tensor",
    "output": "network output tensor",
    "relu": "rectified linear unit activation",
    "relu6": "rectified linear unit clipped at six",
    "leaky_relu": "leaky rectified linear unit activation",
    "elu": "exponential linear unit activation",
    "selu": "scaled exponential linear unit activation",
    "gelu": "gaussian error linear unit activation",
    "silu": "sigmoid linear unit swish activation",
    "mish": "mish smooth activation",
    "sigmoid": "sigmoid activation",
    "hardsigmoid": "hard sigmoid activation",
    "hardswish": "hard swish activation",
    "tanh": "hyperbolic tangent activation",
    "softmax": "softmax normalization over a dimension",
    "log_softmax": "log softmax over a dimension",
    "softplus": "softplus smooth activation",
    "prelu": "parametric rectified linear unit activation",
    "add": "element-wise addition, residual connection",
    "sub": "element-wise subtraction",
    "mul": "element-wise multiplication, gating",
    "div": "element-wise division",
    "matmul": "matrix multiplication of two activations",
    "neg": "element-wise negation",
    "pow": "element-wise power",
    "sqrt": "element-wise square root",
    "exp": "element-wise exponential",
    "concat": "concatenation of tensors along channels",
    "split": "split or chunk a tensor into parts",
    "flatten": "flatten a tensor to a vector",
    "reshape": "reshape or view a tensor",
    "transpose": "transpose or permute tensor dimensions",
    "slice": "slice or index a tensor",
    "pad": "pad a tensor with constants",
    "upsample": "upsample or interpolate a feature map",
    "identity": "identity skip connection, passes the input through",
    "zero": "zero operation, outputs zeros and cuts the connection",
    "dropout": "dropout regularization",
    "max_pool": "max pooling over a spatial window",
    "avg_pool": "average pooling over a spatial window",
    "global_avg_pool": "global average pooling to one value per channel",
    "global_max_pool": "global max pooling to one value per channel",
    "mean": "mean reduction over dimensions",
    "sum": "sum reduction over dimensions",
}


def is_known_op(op_type: str) -> bool:
    """Whether ``op_type`` belongs to the shared vocabulary."""
    return op_type in WEIGHTED_OPS or op_type in REGULAR_OPS


def is_weighted_op(op_type: str) -> bool:
    """Whether nodes of ``op_type`` carry a weight tensor."""
    return op_type in WEIGHTED_OPS


def unknown_op_name(raw: str) -> str:
    """The name under which an unrecognised operator is kept (lower-case, no spaces)."""
    return raw.strip().lower().replace(" ", "_") or "unknown"
