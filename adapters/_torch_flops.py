"""FLOPs of the layers whose cost the output shape does not tell: recurrent and attention.

A convolution's or a linear layer's FLOPs follow from its attributes and output shape
(:func:`nasassist_plugins.graph.node_stats.node_flops`); an LSTM's depend on the sequence
length, its layers and directions, and an attention's on the query and key lengths. Both
tracers call :func:`call_flops` with the call's arguments and record the count as the
node's ``flops`` attribute, or ``flops_unknown=True`` when the inputs do not say enough
(a ``PackedSequence``, a missing shape): never 0 and never an element-wise guess.

Counts are per sample and, like ``torch.utils.flop_counter.FlopCounterMode``, cover the
matrix products only (2 FLOPs per multiply-add; gate non-linearities, biases and softmax
are not counted).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch.nn as nn
import torch.nn.functional as F

__all__ = ["call_flops"]

Shape = tuple[int, ...]
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
_CELL_GATES = ((nn.LSTMCell, 4), (nn.GRUCell, 3), (nn.RNNCell, 1))


def _argument(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return args[index] if len(args) > index else kwargs.get(name)


def call_flops(target: Any, args: Sequence[Any], kwargs: dict[str, Any],
               shape_of: Callable[[Any], Shape | None]) -> dict[str, Any]:
    """``{"flops": n}`` (per sample), ``{"flops_unknown": True}``, or ``{}`` for other calls.

    ``target`` is a module or a function; ``shape_of`` gives an argument's tensor shape
    (``None`` when the argument is not a plain tensor, e.g. a ``PackedSequence``).
    """
    try:
        if isinstance(target, nn.RNNBase):
            flops = _recurrent(target, shape_of(_argument(args, kwargs, 0, "input")))
        elif isinstance(target, nn.RNNCellBase):
            flops = _cell(target, shape_of(_argument(args, kwargs, 0, "input")))
        elif isinstance(target, nn.MultiheadAttention):
            shapes = [shape_of(_argument(args, kwargs, i, n)) for i, n in enumerate(("query", "key", "value"))]
            flops = _multi_head(target.embed_dim, target.batch_first, *shapes)
        elif target is F.scaled_dot_product_attention:
            shapes = [shape_of(_argument(args, kwargs, i, n)) for i, n in enumerate(("query", "key", "value"))]
            flops = _scaled_dot_product(*shapes)
        elif target is F.multi_head_attention_forward:
            shapes = [shape_of(_argument(args, kwargs, i, n)) for i, n in enumerate(("query", "key", "value"))]
            embed = _argument(args, kwargs, 3, "embed_dim_to_check")
            flops = _multi_head(int(embed), False, *shapes) if isinstance(embed, int) else None
        else:
            return {}
    except (TypeError, ValueError, IndexError):
        flops = None
    return {"flops": int(flops)} if flops is not None else {"flops_unknown": True}


def _recurrent(module: nn.RNNBase, shape: Shape | None) -> int | None:
    """Per-sample FLOPs of ``nn.LSTM``/``nn.GRU``/``nn.RNN`` on an input of ``shape``."""
    if shape is None or len(shape) not in (2, 3):
        return None
    steps = shape[0] if len(shape) == 2 else (shape[1] if module.batch_first else shape[0])
    gates = _GATES.get(module.mode)
    if gates is None:
        return None
    hidden = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    recurrent = proj or hidden  # the size fed back through the hidden-to-hidden weights
    directions = 2 if module.bidirectional else 1
    per_step = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else recurrent * directions
        per_direction = 2 * gates * hidden * (inputs + recurrent) + (2 * hidden * proj if proj else 0)
        per_step += directions * per_direction
    return steps * per_step


def _cell(module: nn.RNNCellBase, shape: Shape | None) -> int | None:
    if shape is None or len(shape) not in (1, 2):
        return None
    for cls, gates in _CELL_GATES:
        if isinstance(module, cls):
            return 2 * gates * module.hidden_size * (module.input_size + module.hidden_size)
    return None


def _multi_head(embed: int, batch_first: bool, query: Shape | None, key: Shape | None,
                value: Shape | None) -> int | None:
    """In-projections, scores, weighted sum and out-projection of multi-head attention."""
    if query is None or key is None or value is None or len(query) not in (2, 3):
        return None
    seq = 0 if len(query) == 2 or not batch_first else 1
    q_len, k_len = query[seq], key[seq]
    k_dim, v_dim = key[-1], value[-1]
    projections = 2 * embed * (q_len * query[-1] + k_len * k_dim + k_len * v_dim + q_len * embed)
    return projections + 2 * 2 * q_len * k_len * embed


def _scaled_dot_product(query: Shape | None, key: Shape | None, value: Shape | None) -> int | None:
    """``softmax(Q Kᵀ) V`` for every head: 2·L·S·E for the scores plus 2·L·S·Ev for the sum."""
    if query is None or key is None or value is None or len(query) < 2:
        return None
    heads = math.prod(query[1:-2]) if len(query) > 2 else 1
    q_len, k_len, e, ev = query[-2], key[-2], query[-1], value[-1]
    return heads * 2 * q_len * k_len * (e + ev)
