"""Taps of the training-free suite's single forward pass (see :mod:`.suite`).

* :class:`ForwardTap` watches every torch function call: the on/off patterns of the
  activation functions (SWAP, NASWOT) and the FLOPs of convolutions, linear layers and
  matrix products;
* :class:`MecoTap` hooks every module output for MeCo and MeCo_opt.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["ForwardTap", "MecoTap"]

#: Channels per module sampled by MeCo_opt.
_MECO_OPT_CHANNELS = 8
#: Activation patterns are buffered up to this many bytes before they are folded in.
_PENDING_BYTES = 256 * 2**20

#: Functions whose input sign pattern is an "activation pattern" (SWAP, NASWOT).
_ACTIVATIONS: frozenset[Callable[..., Any]] = frozenset(
    f for f in (
        F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6, F.hardtanh,
        F.hardtanh_, F.leaky_relu, F.leaky_relu_, F.prelu, F.elu, F.elu_, F.selu, F.celu, F.gelu, F.silu, F.mish,
        F.hardswish, F.softplus, torch.tanh, torch.Tensor.tanh, F.tanh, torch._C._nn.gelu, torch._C._nn.silu,
        torch._C._nn.hardswish, torch._C._nn.leaky_relu, torch._C._nn.elu, torch._C._nn.softplus,
        torch._C._nn.mish, torch._C._nn.hardtanh,
    )
)


# ----------------------------------------------------------------------------- taps
class ForwardTap(TorchFunctionMode):
    """Watches every torch function call of the forward pass.

    * the on/off pattern (input > 0) of every activation function, module or functional,
      packed 62 samples to an int64 word per unit (SWAP) and accumulated into the NASWOT
      kernel ``K[i, j] = units on which samples i and j agree``;
    * the FLOPs of convolutions, linear layers and matrix products (2 per multiply-add,
      as ``torch.utils.flop_counter`` counts them).
    """

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.words = max(1, math.ceil(batch / 62))
        self.packed: list[torch.Tensor] = []
        self.ones = torch.zeros(batch, dtype=torch.float64)
        self.agree = torch.zeros((batch, batch), dtype=torch.float64)
        self.units = 0
        self.flops = 0.0
        self._pending: list[torch.Tensor] = []
        self._pending_units = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        if func in _ACTIVATIONS and args and isinstance(args[0], torch.Tensor):
            x = args[0]
            if x.dim() >= 1 and x.shape[0] == self.batch and x.is_floating_point():
                self._record(x.detach())
        out = func(*args, **kwargs)
        if func in _FLOP_FUNCTIONS and isinstance(out, torch.Tensor):
            self.flops += _FLOP_FUNCTIONS[func](args, kwargs, out)
        return out

    def _record(self, x: torch.Tensor) -> None:
        codes = x.reshape(self.batch, -1) > 0
        if codes.shape[1] == 0:
            return
        self._pending.append(codes)
        self._pending_units += codes.shape[1]
        if self._pending_units * self.batch > _PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        """Fold the patterns recorded so far into the kernel and the packed words (one pass)."""
        if not self._pending:
            return
        codes = torch.cat(self._pending, dim=1)
        self._pending, self._pending_units = [], 0
        n = codes.shape[1]
        self.units += n
        c = codes.to(torch.float32)
        self.agree += (c @ c.t()).double().cpu()
        self.ones += c.sum(dim=1).double().cpu()
        words = []
        for w in range(self.words):
            word = torch.zeros(n, dtype=torch.int64, device=codes.device)
            for b in range(62 * w, min(62 * (w + 1), self.batch)):
                word |= codes[b].to(torch.int64) << (b - 62 * w)
            words.append(word)
        self.packed.append(torch.stack(words, dim=1).cpu())

    def kernel(self) -> torch.Tensor:
        """``K = C C^T + (1 - C)(1 - C)^T`` = units - ones_i - ones_j + 2 C C^T."""
        return self.units - self.ones[:, None] - self.ones[None, :] + 2 * self.agree


def _conv_flops(args: tuple, kwargs: dict, out: torch.Tensor) -> float:
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    if not isinstance(weight, torch.Tensor):
        return 0.0
    return 2.0 * out.numel() * weight[0].numel()


def _linear_flops(args: tuple, kwargs: dict, out: torch.Tensor) -> float:
    weight = args[1] if len(args) > 1 else kwargs.get("weight")
    if not isinstance(weight, torch.Tensor):
        return 0.0
    return 2.0 * out.numel() * weight.shape[-1]


def _matmul_flops(args: tuple, kwargs: dict, out: torch.Tensor) -> float:
    a = args[0] if args else kwargs.get("input")
    if not isinstance(a, torch.Tensor) or a.dim() == 0:
        return 0.0
    return 2.0 * out.numel() * a.shape[-1]


def _sdpa_flops(args: tuple, kwargs: dict, out: torch.Tensor) -> float:
    q, k = (args + (None, None))[:2]
    if not isinstance(q, torch.Tensor) or not isinstance(k, torch.Tensor):
        return 0.0
    return 4.0 * q.numel() * k.shape[-2]  # Q K^T and attention x V


_FLOP_FUNCTIONS: dict[Callable[..., Any], Callable[[tuple, dict, torch.Tensor], float]] = {
    **{f: _conv_flops for f in (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d,
                                 F.conv_transpose3d, torch.conv1d, torch.conv2d, torch.conv3d)},
    F.linear: _linear_flops,
    **{f: _matmul_flops for f in (torch.matmul, torch.Tensor.matmul, torch.mm, torch.Tensor.mm, torch.bmm,
                                   torch.Tensor.bmm, torch.Tensor.__matmul__)},
    F.scaled_dot_product_attention: _sdpa_flops,
}


class MecoTap:
    """MeCo on every module output (its first sample).

    Like MeCo's reference code every module is hooked (containers too); an output seen
    before (a container returning its last child's tensor) counts again with the same
    value. The hooks only keep the first sample's feature map; the correlation matrices
    are built and decomposed afterwards, batched by shape.
    """

    def __init__(self, model: nn.Module, generator: torch.Generator) -> None:
        self.generator = generator
        self.features: list[torch.Tensor] = []
        self.order: list[int] = []  # one entry per hook call: index into features
        self._seen: dict[tuple, int] = {}
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()]

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    @torch.no_grad()
    def _hook(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not isinstance(output, torch.Tensor) or output.dim() < 3 or not output.is_floating_point():
            return
        key = (output.untyped_storage().data_ptr(), output.storage_offset(), tuple(output.shape), output._version)
        if key not in self._seen:
            self._seen[key] = len(self.features)
            self.features.append(output[0].detach().reshape(output.shape[1], -1).clone())
        self.order.append(self._seen[key])

    def scores(self) -> tuple[float, float]:
        """(MeCo, MeCo_opt): sums over the hook calls."""
        full = np.zeros(len(self.features))
        opt = np.zeros(len(self.features))
        picks = [torch.randperm(f.shape[0], generator=self.generator)[:_MECO_OPT_CHANNELS]
                 if f.shape[0] > _MECO_OPT_CHANNELS else None for f in self.features]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, f in enumerate(self.features):
            groups.setdefault(tuple(f.shape), []).append(i)
        for (c, n), members in groups.items():
            stack = torch.stack([self.features[i] for i in members])
            full[members] = _min_corr_eigs(stack)
            with_pick = [k for k, i in enumerate(members) if picks[i] is not None]
            if with_pick:
                sub = torch.stack([stack[k][picks[members[k]].to(stack.device)] for k in with_pick])
                opt[[members[k] for k in with_pick]] = _min_corr_eigs(sub) * c / _MECO_OPT_CHANNELS
            for k, i in enumerate(members):
                if picks[i] is None:
                    opt[i] = full[i]
        return float(full[self.order].sum()), float(opt[self.order].sum())


def _min_corr_eigs(rows: torch.Tensor) -> np.ndarray:
    """Smallest eigenvalue of the Pearson correlation between the rows of each (c, n) matrix.

    Constant rows (undefined correlation) get zero correlation, as in MeCo's code; with
    fewer observations than rows (n < c) the matrix is singular and the value is 0.
    """
    k, c, n = rows.shape
    if c < 2 or n < c:
        return np.zeros(k)
    x = rows.double()
    x = x - x.mean(dim=2, keepdim=True)
    norm = x.norm(dim=2, keepdim=True)
    x = torch.where(norm > 0, x / norm.clamp_min(1e-300), torch.zeros_like(x))
    corr = x @ x.transpose(1, 2)
    dead = (norm.squeeze(2) == 0)
    corr = torch.where(dead[:, :, None] | dead[:, None, :], torch.zeros_like(corr), corr)
    return torch.linalg.eigvalsh(corr)[:, 0].cpu().numpy()
