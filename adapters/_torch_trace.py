"""One-pass PyTorch tracer: the graph is recorded during one real forward pass.

A :class:`~torch.overrides.TorchFunctionMode` sees every call of the torch API made by
the model's own Python code (``x + y``, ``torch.cat``, ``F.relu``, ``x.view``, ...), and
a wrapper around each submodule's ``forward`` (for this trace only) sees every layer
(childless modules and ``nn.MultiheadAttention``) and the module scope of each call;
calls made *inside* a layer (``F.conv2d`` inside ``nn.Conv2d``) are not recorded, exactly
like the leaf calls of the ``torch.fx`` path. Tensors are followed
by identity, so edges follow the data and every node gets its real output shape in the
same pass: no symbolic trace and no second shape-recording forward.

The vocabulary, node attributes, node names and the owning-module scope are those of
the ``torch.fx`` path (:mod:`.torch_adapter`), from the same op tables
(:mod:`._torch_ops`), so either path gives the same graph for models fx can trace; the
one-pass tracer also follows data-dependent control flow (the branch actually taken).

Semantics of in-place and identity-returning calls (``nn.ReLU(inplace=True)``,
``x += y``, ``nn.Identity``) follow fx's: the caller receives a fresh alias of the
result, so later uses of the returned value depend on the call's node while other
references to the original tensor keep their producer.
"""

from __future__ import annotations

import builtins
import contextlib
import inspect
import keyword
import operator
import re
import threading
import warnings
import weakref
from typing import Any, Iterable

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

# Hooks run while the mode is active; their own tensor reads (shapes, numel) must not go
# through it (each read through a mode costs microseconds, and would be recorded).
_untraced = getattr(torch._C, "DisableTorchFunction", contextlib.nullcontext)

from nasassist_plugins.adapters._torch_ops import (
    PASSTHROUGH,
    function_op,
    method_op,
    module_attrs,
    module_op,
    refine_op,
)
from nasassist_plugins.adapters._torch_flops import call_flops
from nasassist_plugins.graph import ComputationalGraph

__all__ = ["OnePassTracer", "PartialGraphWarning", "is_leaf_module", "mark_partial"]


def mark_partial(graph: ComputationalGraph, model_name: str, where: str) -> None:
    """Mark ``graph`` as partial (``metadata["partial"]``) and warn, naming the module.

    Called when a forward pass branched on tensor values (``if x.sum() > 0``): a trace
    records only the branch this example input took, so other inputs may run layers the
    graph does not have.
    """
    reason = (f"data-dependent control flow in {where} of {model_name}: only the branch taken for the example "
              "input is recorded")
    graph.metadata["partial"] = reason
    warnings.warn(f"{model_name}: the graph may be partial: {reason}", PartialGraphWarning, stacklevel=4)


class PartialGraphWarning(UserWarning):
    """A traced graph records only the branches its example input took."""


def is_leaf_module(module: nn.Module) -> bool:
    """A graph node of its own: a childless module, or an attention block."""
    return isinstance(module, nn.MultiheadAttention) or len(module._modules) == 0


# ----------------------------------------------------------------------------- names (as torch.fx names nodes)
_SNAKE = re.compile(r"(?<=[a-z])([A-Z])")
_ILLEGAL = re.compile("[^0-9a-zA-Z_]+")
_NAME = re.compile(r"^([a-zA-Z_][0-9a-zA-Z_]*?)(?:_(\d+))?$")
_RESERVED = frozenset(keyword.kwlist) | frozenset(vars(builtins)) | {
    "inf", "nan", "NoneType", "torch", "device", "fx_pytree", "pytree"}


class _Names:
    """Unique node names built the way ``torch.fx.Graph`` builds them (``add``, ``add_1``, ``layer1_0_conv1``)."""

    _parsed: dict[str, tuple[str, str, str | None]] = {}  # candidate -> (legal candidate, base, number)

    def __init__(self) -> None:
        self._used: set[str] = set()
        self._count: dict[str, int] = {}

    @classmethod
    def _parse(cls, candidate: str) -> tuple[str, str, str | None]:
        parsed = cls._parsed.get(candidate)
        if parsed is None:
            legal = _SNAKE.sub(r"_\1", candidate).lower()
            match = _NAME.match(legal)
            if match is None:
                legal = _ILLEGAL.sub("_", legal) or "_unnamed"
                if legal[0].isdigit():
                    legal = f"_{legal}"
                match = _NAME.match(legal)
                assert match is not None
            parsed = cls._parsed[candidate] = (legal, match.group(1), match.group(2))
        return parsed

    def create(self, candidate: str) -> str:
        candidate, base, num = self._parse(candidate)
        if num is None or candidate in self._used:
            count = self._count.get(base, 0)
            if candidate in _RESERVED:
                count += 1
                candidate = f"{base}_{count}"
        else:
            count = int(num)
        while candidate in self._used:
            count += 1
            candidate = f"{base}_{count}"
        self._used.add(candidate)
        self._count[base] = count
        return candidate


# ----------------------------------------------------------------------------- call classification
_TENSOR_METHOD_PREFIXES = ("TensorBase.", "Tensor.")
_PROPERTY_GETTER = type(torch.Tensor.shape.__get__)


def _describe_call(func: Any) -> tuple[str, str]:
    """``(op, name candidate)`` of a torch call, as the fx path would describe it."""
    if isinstance(func, _PROPERTY_GETTER) and getattr(func, "__name__", "") == "__get__":
        return function_op(getattr), "getattr"  # x.T, x.data: fx records builtins.getattr
    qualname = getattr(func, "__qualname__", "") or ""
    name = getattr(func, "__name__", None) or type(func).__name__
    if qualname.startswith(_TENSOR_METHOD_PREFIXES):
        if name.startswith("__") and name.endswith("__"):  # x[i], 1 - x, ...: fx records operator.<op>
            base = name[2:-2]
            fn = getattr(operator, base, None) or getattr(operator, base[1:], None)
            if fn is operator.getitem:
                return "slice", "getitem"
            if fn is not None:
                return function_op(fn), fn.__name__
            return method_op(base), base
        return method_op(name), name
    return function_op(func), name


# ----------------------------------------------------------------------------- containers
def _tensors(value: Any, out: list[torch.Tensor]) -> list[torch.Tensor]:
    """Tensors in ``value`` (tuples, lists and dict values searched in order), appended to ``out``."""
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif isinstance(value, (tuple, list)):
        for item in value:
            if isinstance(item, torch.Tensor):
                out.append(item)
            elif isinstance(item, (tuple, list, dict)):
                _tensors(item, out)
    elif isinstance(value, dict):
        for item in value.values():
            _tensors(item, out)
    return out


def _shape_of(value: Any) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


def _first_shape(tensors: list[torch.Tensor]) -> tuple[int, ...] | None:
    return tuple(tensors[0].shape) if tensors else None


def _realias(value: Any, inputs: set[int]) -> Any:
    """``value`` with every tensor that is one of the call's inputs replaced by a fresh alias."""
    if isinstance(value, torch.Tensor):
        return value.detach() if id(value) in inputs else value
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_realias(v, inputs) for v in value)
    if isinstance(value, list):
        return [_realias(v, inputs) for v in value]
    return value


# ----------------------------------------------------------------------------- the tracer
_MARK = "_nasassist_one_pass"  # set on the forward wrappers of a trace in progress
_LOCKS: "weakref.WeakKeyDictionary[nn.Module, threading.RLock]" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def _model_lock(model: nn.Module) -> Any:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


class OnePassTracer(TorchFunctionMode):
    """Records a :class:`ComputationalGraph` while ``model`` runs once on ``inputs``.

    Use :meth:`trace`; the instance is single-use. Raises whatever the model raises.
    """

    def __init__(self, model: nn.Module, inputs: tuple[torch.Tensor, ...], name: str) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.graph = ComputationalGraph(name=name)
        self._names = _Names()
        self._producers: dict[int, list[int]] = {}  # id(tensor) -> producing graph nodes
        self._alive: list[Any] = []  # every tracked tensor stays alive, so ids are never reused
        self._leaf_depth = 0
        self._scope: list[str] = []  # qualified names of the non-leaf modules running now
        self._counted_modules: set[int] = set()
        self._counted_params: set[int] = set()
        self._params: dict[int, torch.Tensor] = {}  # trainable parameters of the model, by id
        self._thread = 0
        self._branches: list[str] = []  # module scopes that branched on a traced tensor's value

    def trace(self) -> ComputationalGraph:
        """Run the model once and return its graph (the model is left as it was)."""
        self._thread = threading.get_ident()
        with _model_lock(self.model):  # one trace of a model instance at a time (others wait)
            patched = self._patch_modules()
            try:
                self._add_inputs()
                with torch.no_grad(), self:
                    result = self.model(*self.inputs)
            finally:
                for module, previous in patched:
                    if previous is None:
                        del module.__dict__["forward"]
                    else:
                        module.__dict__["forward"] = previous
        self._add_output(result)
        if self._branches:
            where = ", ".join(dict.fromkeys(f"the forward of module {b!r}" if b else "the forward"
                                            for b in self._branches))
            mark_partial(self.graph, self.graph.name, where)
        return self.graph

    # ------------------------------------------------------------------ module calls
    def _patch_modules(self) -> list[tuple[nn.Module, Any]]:
        """Wrap the ``forward`` of every submodule (leaves' insides excluded) for this trace.

        An instance attribute shadows the class's ``forward`` (``nn.Module.__call__`` calls
        ``self.forward``; hooks still run around it) and is removed afterwards. Wrapping is
        cheaper than module hooks: hundreds of hook registrations, and the hooked call path
        of every module call, cost more than the rest of the bookkeeping.
        """
        patched: list[tuple[nn.Module, Any]] = []
        seen: set[int] = {id(self.model)}
        stack: list[tuple[str, nn.Module, bool]] = [
            (name, child, False) for name, child in reversed(list(self.model._modules.items())) if child is not None]
        for p in self.model._parameters.values():
            if p is not None and p.requires_grad:
                self._params[id(p)] = p
        while stack:  # pre-order, first name wins for a shared module, as in named_modules()
            qualname, module, inside_leaf = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            for p in module._parameters.values():
                if p is not None and p.requires_grad:
                    self._params[id(p)] = p
            leaf = inside_leaf or is_leaf_module(module)
            if not inside_leaf:
                forward = module.forward
                if getattr(forward, _MARK, False):  # a module shared with a model being traced right now
                    raise RuntimeError(f"module {qualname!r} is being traced by another call")
                wrapper = self._leaf_forward(module, qualname, forward) if leaf else self._scope_forward(qualname, forward)
                setattr(wrapper, _MARK, True)
                patched.append((module, module.__dict__.get("forward")))
                module.__dict__["forward"] = wrapper
            stack.extend((f"{qualname}.{name}", child, leaf) for name, child in reversed(list(module._modules.items()))
                         if child is not None)
        return patched

    def _scope_forward(self, qualname: str, forward: Any) -> Any:
        def scoped(*args: Any, **kwargs: Any) -> Any:
            if self._leaf_depth or threading.get_ident() != self._thread:
                return forward(*args, **kwargs)
            self._scope.append(qualname)
            try:
                return forward(*args, **kwargs)
            finally:
                self._scope.pop()

        return scoped

    def _leaf_forward(self, module: nn.Module, qualname: str, forward: Any) -> Any:
        def leaf(*args: Any, **kwargs: Any) -> Any:
            if self._leaf_depth or threading.get_ident() != self._thread:
                return forward(*args, **kwargs)
            self._leaf_depth += 1
            try:
                with _untraced():  # the layer's own torch calls run at full speed, unseen
                    output = forward(*args, **kwargs)
                    inputs = _tensors(kwargs, _tensors(args, [])) if kwargs else _tensors(args, [])
                    outputs = _tensors(output, [])
                    input_ids = {id(t) for t in inputs}
                    if any(id(t) in input_ids for t in outputs):  # in place / identity: the caller gets a fresh alias
                        output = _realias(output, input_ids)
                        outputs = _tensors(output, [])
                    self._add_module_node(module, qualname, inputs, outputs,
                                          call_flops(module, args, kwargs, _shape_of))
            finally:
                self._leaf_depth -= 1
            return output

        return leaf

    # ------------------------------------------------------------------ torch API calls
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if self._leaf_depth:  # inside a layer: not recorded
            return func(*args, **(kwargs or {}))
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        outputs = _tensors(result, [])
        if not outputs:
            if (getattr(func, "__name__", "") == "__bool__" and args and id(args[0]) in self._producers
                    and self._from_input(args[0])):
                self._branches.append(self._scope[-1] if self._scope else "")  # ``if tensor:`` in the model
            return result
        inputs = _tensors(kwargs, _tensors(args, []))
        op, candidate = _describe_call(func)
        op = refine_op(op, _first_shape(inputs), _first_shape(outputs))
        if op == PASSTHROUGH:  # .contiguous(), .to(), .float(): the result is its inputs' data
            producers = self._producers_of(inputs)
            for tensor in outputs:
                self._track(tensor, producers)
            return result
        input_ids = {id(t) for t in inputs}
        if any(id(t) in input_ids for t in outputs):  # in place / identity: the caller gets a fresh alias
            result = _realias(result, input_ids)
            outputs = _tensors(result, [])
        attrs = {"output_shape": _first_shape(outputs), "num_params": self._read_params(inputs)}
        if op == "attention":
            with _untraced():
                attrs.update(call_flops(func, args, kwargs, _shape_of))
        index = self.graph.add_node(op, name=self._names.create(candidate), module=self._scope[-1] if self._scope else None,
                                    **attrs)
        self._connect(index, inputs)
        for tensor in outputs:
            self._track(tensor, [index])
        return result

    # ------------------------------------------------------------------ graph building
    def _add_inputs(self) -> None:
        try:
            parameters = [p for p in inspect.signature(self.model.forward).parameters.values()
                          if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):  # builtins without a signature
            parameters = []
        for k, tensor in enumerate(self.inputs):
            candidate = parameters[k].name if k < len(parameters) else f"input_{k}"
            index = self.graph.add_node("input", name=self._names.create(candidate),
                                        output_shape=tuple(int(d) for d in tensor.shape))
            self._track(tensor, [index])

    def _add_module_node(self, module: nn.Module, qualname: str, inputs: list[torch.Tensor],
                         outputs: list[torch.Tensor], flops: dict[str, Any]) -> None:
        attrs = module_attrs(module)
        attrs.update(flops)
        if id(module) in self._counted_modules:  # a shared module's weights count once
            attrs["num_params"] = 0
            attrs["shared_with_earlier_call"] = True
        self._counted_modules.add(id(module))
        output_shape = _first_shape(outputs)
        op = refine_op(module_op(module), _first_shape(inputs), output_shape)
        attrs["output_shape"] = output_shape
        attrs["num_params"] = attrs.get("num_params", 0) + self._read_params(inputs)
        index = self.graph.add_node(op, name=self._names.create(qualname), module=qualname, **attrs)
        self._connect(index, inputs)
        for tensor in outputs:
            self._track(tensor, [index])

    def _add_output(self, result: Any) -> None:
        outputs = _tensors(result, [])
        index = self.graph.add_node("output", name="output", output_shape=_first_shape(outputs))
        self._connect(index, outputs)

    def _track(self, tensor: torch.Tensor, producers: list[int]) -> None:
        self._producers[id(tensor)] = producers
        self._alive.append(tensor)

    def _producers_of(self, tensors: Iterable[torch.Tensor]) -> list[int]:
        out: list[int] = []
        for tensor in tensors:
            for producer in self._producers.get(id(tensor), ()):
                if producer not in out:
                    out.append(producer)
        return out

    def _connect(self, target: int, inputs: Iterable[torch.Tensor]) -> None:
        for source in self._producers_of(inputs):
            if source != target:
                self.graph.add_edge(source, target)

    def _from_input(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` depends on a model input (not only on parameters or constants)."""
        parents: dict[int, list[int]] = {}
        for source, target in self.graph.edges:
            parents.setdefault(target, []).append(source)
        seen, stack = set(), list(self._producers.get(id(tensor), ()))
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            if self.graph.nodes[node].op_type == "input":
                return True
            stack.extend(parents.get(node, ()))
        return False

    def _read_params(self, inputs: Iterable[torch.Tensor]) -> int:
        """Trainable parameters of the model read directly by this call (each counted once)."""
        total = 0
        for tensor in inputs:
            key = id(tensor)
            if key in self._params and key not in self._counted_params:
                self._counted_params.add(key)
                total += tensor.numel()
        return total

