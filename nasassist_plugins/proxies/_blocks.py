"""The "primary blocks" of any ``nn.Module``: the feature maps AZ-NAS measures.

AZ-NAS scores a network from the outputs of its primary blocks (the cells of a
cell-based network, the residual blocks of a ResNet or MobileNet). A user's model does
not say which modules those are, so they are found from one forward pass:

1. every module call is recorded (which module called it, its tensor inputs, its output);
2. starting from the root, a module is *expanded* into the modules it calls when those
   form a chain: each one reads the container's input or the output of an earlier one
   (a view of it counts), and the container returns the last one's output. A
   ``nn.Sequential``, a network body ``stem -> cells -> pooling -> classifier`` and a DARTS
   network (cells read the two previous cells) are chains; a residual block
   (``relu(body(x) + x)``) or a cell that sums several edges is not, so it stays one
   block. Modules after the last spatial feature map (global pooling, classifier) may read
   anything;
3. normalisation, activation, dropout, identity, (non-global) pooling and flatten modules
   are merged into the block before them, so ``conv -> bn -> relu`` is one block.

The feature points are the outputs of the resulting blocks; when some have spatial or
token dimensions (more than one position) only those are kept, otherwise (an MLP) every block but the
last (the logits). A model whose top level is not a chain (a residual block at the top)
falls back to its leaf modules in call order, tails merged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
import torch.nn as nn

__all__ = ["CallRecorder", "ModuleCall", "feature_blocks"]

#: Module types merged into the block that precedes them (they do not start a new block).
TAIL_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
    nn.modules.dropout._DropoutNd,
    nn.Identity,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.Flatten,
)


@dataclass(eq=False)
class ModuleCall:
    """One call of a module during the recorded forward pass."""

    module: nn.Module
    name: str
    parent: "ModuleCall | None"
    inputs: list[torch.Tensor]
    output: torch.Tensor | None = None
    children: list["ModuleCall"] = field(default_factory=list)


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    return None


def _tensors(values: Any) -> Iterator[torch.Tensor]:
    for value in values:
        if isinstance(value, torch.Tensor):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, torch.Tensor))


class CallRecorder:
    """Records the module call tree of a forward pass (use as a context manager)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.root: ModuleCall | None = None
        self._stack: list[ModuleCall] = []
        self._handles: list[Any] = []
        self.names = {id(m): n for n, m in model.named_modules()}

    def __enter__(self) -> "CallRecorder":
        for module in self.model.modules():
            self._handles.append(module.register_forward_pre_hook(self._pre))
            self._handles.append(module.register_forward_hook(self._post))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        parent = self._stack[-1] if self._stack else None
        call = ModuleCall(module, self.names.get(id(module), ""), parent, list(_tensors(args)))
        if parent is not None:
            parent.children.append(call)
        elif self.root is None:
            self.root = call
        self._stack.append(call)

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        if not self._stack or self._stack[-1].module is not module:
            return  # a hook registered around ours raised; the record is incomplete
        call = self._stack.pop()
        call.output = _first_tensor(output)


def _same_data(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``a`` is ``b`` or a view of the same memory (reshape, flatten, squeeze)."""
    if a is b:
        return True
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and a.numel() == b.numel()
    except (RuntimeError, NotImplementedError):
        return False


def _reads(call: ModuleCall, sources: list[torch.Tensor]) -> bool:
    return any(_same_data(t, s) for t in call.inputs for s in sources)


def _is_chain(call: ModuleCall) -> bool:
    kids = [k for k in call.children if k.output is not None]
    if len(kids) < 2 or call.output is None:
        return False
    sources = list(call.inputs)
    last_spatial = max((i for i, k in enumerate(kids) if _is_spatial(k.output)), default=-1)  # type: ignore[arg-type]
    for i, kid in enumerate(kids):
        if i <= last_spatial and not _reads(kid, sources):
            return False
        sources.append(kid.output)  # type: ignore[arg-type]
    return _same_data(call.output, kids[-1].output)  # type: ignore[arg-type]


def _expand(call: ModuleCall) -> list[ModuleCall]:
    if _is_chain(call):
        out: list[ModuleCall] = []
        for kid in call.children:
            if kid.output is not None:
                out.extend(_expand(kid))
        return out
    return [call]


def feature_blocks(root: ModuleCall | None) -> list[tuple[str, torch.Tensor]]:
    """``[(block name, output feature)]`` of the primary blocks (see the module docstring).

    When the chain gives fewer than two spatial blocks (a model whose top level is itself a
    residual block, say), the blocks are the leaf modules in call order, tails merged.
    """
    if root is None or root.output is None:
        return []
    blocks = _select(_merge_tails(_expand(root)))
    if sum(_is_spatial(f) for _, f in blocks) < 2:
        leaves = _select(_merge_tails(_leaves(root)))
        if sum(_is_spatial(f) for _, f in leaves) >= 2:
            return leaves
    return blocks


def _leaves(call: ModuleCall) -> list[ModuleCall]:
    kids = [k for k in call.children if k.output is not None]
    if not kids:
        return [call]
    out: list[ModuleCall] = []
    for kid in kids:
        out.extend(_leaves(kid))
    return out


def _merge_tails(calls: list[ModuleCall]) -> list[tuple[str, torch.Tensor]]:
    blocks: list[tuple[str, torch.Tensor]] = []
    for call in calls:
        output = call.output
        if output is None or not output.is_floating_point():
            continue
        if blocks and isinstance(call.module, TAIL_TYPES):
            blocks[-1] = (blocks[-1][0], output)  # the tail extends the block before it
        else:
            blocks.append((call.name or type(call.module).__name__, output))
    return blocks


def _select(blocks: list[tuple[str, torch.Tensor]]) -> list[tuple[str, torch.Tensor]]:
    spatial = [b for b in blocks if _is_spatial(b[1])]
    if spatial:
        return spatial
    return blocks[:-1]


def _is_spatial(feature: torch.Tensor) -> bool:
    """Has spatial or token dimensions of more than one position (globally pooled maps do not)."""
    return feature.dim() >= 3 and int(torch.tensor(feature.shape[2:]).prod()) > 1
