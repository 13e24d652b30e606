"""Objectives of a candidate architecture, computed before it is trained.

Every objective is a function ``(model, graph) -> float`` of the candidate's PyTorch model
(``None`` when the builder returned a graph) and its :class:`ComputationalGraph`:

==================  ======================================================================
name                value
==================  ======================================================================
``"params"``        trainable parameters (the model's unique ``requires_grad`` tensors; the
                    graph's count when there is no model)
``"flops"``         floating-point operations of one forward pass for one sample, from the
                    graph's shapes (a multiply-add counts two)
``"latency"``       milliseconds of one forward pass at the example input's shape on this
                    machine (median of timed passes after warm-up, on the model's device)
``"latency:DEV"``   milliseconds predicted for device ``DEV`` by
                    :class:`~nasassist_plugins.hardware.LatencyPredictor` (see
                    :func:`~nasassist_plugins.hardware.latency_devices`)
a callable          anything ``(model, graph) -> float`` you pass
==================  ======================================================================

:func:`resolve_objective` turns such a specification into an :class:`Objective`;
:meth:`Objective.evaluate` computes it and raises
:class:`~nasassist_plugins.errors.ObjectiveError` (one line, naming the objective and the
reason) when it cannot be computed: no model to time, a failing forward pass, a
non-finite value, an unknown device.

Example::

    import torch
    from nasassist_plugins.adapters import from_torch
    from nasassist_plugins.hardware import resolve_objective

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU())
    x = torch.randn(1, 3, 32, 32)
    graph = from_torch(model, x)
    latency = resolve_objective("latency", example_input=x)
    print(resolve_objective("params").evaluate(model, graph), latency.evaluate(model, graph))
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from nasassist_plugins.errors import ConfigurationError, ObjectiveError

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn

    from nasassist_plugins.graph import ComputationalGraph

__all__ = [
    "OBJECTIVE_NAMES",
    "LatencyMeter",
    "Objective",
    "count_flops",
    "count_params",
    "measure_latency",
    "resolve_objective",
]

ObjectiveFn = Callable[[Any, Any], float]

#: Built-in objective names (``"latency:DEV"`` names a predicted device; ``"score"`` is the
#: samplers' prediction of the trained metric and is resolved by them, not here).
OBJECTIVE_NAMES: tuple[str, ...] = ("params", "flops", "latency")


# ----------------------------------------------------------------------------- graph-derived
def count_params(model: "nn.Module | None", graph: "ComputationalGraph | None") -> float:
    """Trainable parameters: the model's unique ``requires_grad`` tensors, else the graph's count.

    Raises:
        ObjectiveError: neither a model nor a graph was given.
    """
    if model is not None and hasattr(model, "parameters"):
        seen: set[int] = set()
        total = 0
        for p in model.parameters():
            if p.requires_grad and id(p) not in seen:  # tied weights count once
                seen.add(id(p))
                total += p.numel()
        return float(total)
    if graph is None:
        raise ObjectiveError("params: the candidate has neither a model nor a graph")
    return float(graph.num_parameters)


def count_flops(model: "nn.Module | None", graph: "ComputationalGraph | None") -> float:
    """FLOPs of one forward pass for one sample, from the graph (multiply-add = 2 FLOPs).

    Raises:
        ObjectiveError: no graph, or a graph whose shapes give no FLOPs at all (e.g. a model
            traced without shapes).
    """
    if graph is None:
        raise ObjectiveError("flops: the candidate has no computational graph to count FLOPs on")
    flops = float(graph.flops)
    if flops <= 0 and graph.num_parameters > 0:
        raise ObjectiveError(
            f"flops: graph {graph.name!r} has {graph.num_parameters} parameters but no shape information "
            "to count FLOPs (trace it with an example input)"
        )
    return flops


# ----------------------------------------------------------------------------- measured latency
def _model_device(model: "nn.Module") -> Any:
    import torch

    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _example_batch(example_input: Any, device: Any) -> tuple[Any, ...]:
    """The example input as a tuple of tensors on ``device`` (a shape tuple gives ``randn``)."""
    import torch

    if example_input is None:
        raise ObjectiveError("latency: no example_input to time the forward pass with")
    if isinstance(example_input, torch.Size) or (
        isinstance(example_input, (tuple, list)) and example_input and all(isinstance(d, int) for d in example_input)
    ):
        return (torch.randn(*example_input, device=device),)
    items = example_input if isinstance(example_input, (tuple, list)) else (example_input,)
    out = []
    for item in items:
        if not isinstance(item, torch.Tensor):
            raise ObjectiveError(
                f"latency: example_input must be a tensor, a tuple of tensors or a shape tuple, got {type(item).__name__}"
            )
        out.append(item.to(device))
    return tuple(out)


def measure_latency(
    model: "nn.Module",
    example_input: Any,
    *,
    n_warmup: int = 2,
    n_repeats: int = 7,
    max_seconds: float = 2.0,
) -> float:
    """Median milliseconds of one forward pass of ``model`` on ``example_input``.

    The model runs in eval mode under ``torch.inference_mode()`` on its own device (CPU or
    GPU; the input is moved there), with the caller's thread settings. ``n_warmup`` untimed
    passes come first; timing stops after ``n_repeats`` passes or once ``max_seconds`` have
    been spent timing (at least one timed pass always runs). Every module's train/eval
    flag is restored afterwards.

    Args:
        model: the candidate ``nn.Module``.
        example_input: a tensor, a tuple of tensors, or a shape tuple (filled with ``randn``).
        n_warmup: untimed passes first (default 2).
        n_repeats: timed passes at most (default 7).
        max_seconds: time budget of the warm-up and of the timed passes, each (default 2.0).

    Raises:
        ObjectiveError: not a module, no usable input, or the forward pass failed.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        raise ObjectiveError(
            f"latency: measuring latency needs a PyTorch nn.Module, got {type(model).__name__} "
            "(a builder that returns a ComputationalGraph can use 'params', 'flops' or a 'latency:DEVICE' predictor)"
        )
    device = _model_device(model)
    batch = _example_batch(example_input, device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            started = time.perf_counter()
            for _ in range(n_warmup):
                model(*batch)
                if time.perf_counter() - started > max_seconds:
                    break
            sync()
            budget_start = time.perf_counter()
            while len(times) < max(1, n_repeats):
                t0 = time.perf_counter()
                model(*batch)
                sync()
                times.append(time.perf_counter() - t0)
                if time.perf_counter() - budget_start > max_seconds:
                    break
    except ObjectiveError:
        raise
    except Exception as exc:
        shapes = ", ".join(str(tuple(t.shape)) for t in batch)
        raise ObjectiveError(f"latency: the forward pass failed on an input of shape {shapes}: {type(exc).__name__}: {exc}") from None
    finally:
        for module, training in modes:
            module.training = training
    return 1000.0 * statistics.median(times)


class LatencyMeter:
    """The ``"latency"`` objective: measured forward-pass milliseconds on this machine.

    A callable ``(model, graph) -> float`` around :func:`measure_latency`.

    Args:
        example_input: a tensor, a tuple of tensors, or a shape tuple (required).
        n_warmup: untimed passes before timing (default 2).
        n_repeats: timed passes at most; the median is reported (default 7).
        max_seconds: time budget per candidate for the warm-up and for the timed passes (default 2.0).

    Example::

        meter = LatencyMeter(example_input=torch.randn(1, 3, 32, 32), n_repeats=5)
        ms = meter(model, graph)
    """

    def __init__(self, *, example_input: Any, n_warmup: int = 2, n_repeats: int = 7, max_seconds: float = 2.0) -> None:
        if example_input is None:
            raise ConfigurationError("the 'latency' objective needs example_input (a tensor or a shape tuple)")
        for name, value, minimum in (("n_warmup", n_warmup, 0), ("n_repeats", n_repeats, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
            raise ConfigurationError(f"max_seconds must be a positive number, got {max_seconds!r}")
        self.example_input = example_input
        self.n_warmup = n_warmup
        self.n_repeats = n_repeats
        self.max_seconds = float(max_seconds)

    def __call__(self, model: "nn.Module | None", graph: "ComputationalGraph | None" = None) -> float:
        if model is None:
            raise ObjectiveError(
                "latency: the builder returned a graph, not a model, so there is nothing to time "
                "(use 'flops', 'params' or a 'latency:DEVICE' predictor)"
            )
        return measure_latency(
            model, self.example_input, n_warmup=self.n_warmup, n_repeats=self.n_repeats, max_seconds=self.max_seconds
        )

    def __repr__(self) -> str:
        return f"LatencyMeter(n_warmup={self.n_warmup}, n_repeats={self.n_repeats}, max_seconds={self.max_seconds})"


# ----------------------------------------------------------------------------- resolution
@dataclass(frozen=True)
class Objective:
    """One resolved objective.

    Attributes:
        name: ``"params"``, ``"flops"``, ``"latency"``, ``"latency:DEV"`` or the callable's name.
        kind: ``"graph"`` (exact from the graph/model), ``"measured"`` (timed here),
            ``"predicted"`` (a device latency predictor) or ``"callable"`` (yours).
        fn: the function ``(model, graph) -> float``.
        unit: ``"count"``, ``"FLOPs"``, ``"ms"`` or ``""`` (unknown).
    """

    name: str
    kind: str
    fn: ObjectiveFn
    unit: str = ""

    @property
    def needs_model(self) -> bool:
        """Whether the value needs the PyTorch model (not only its graph)."""
        return self.kind == "measured"

    def evaluate(self, model: Any, graph: Any) -> float:
        """The objective's value for one candidate (a finite float).

        Raises:
            ObjectiveError: it cannot be computed (the message names the objective and why).
        """
        try:
            value = self.fn(model, graph)
        except ObjectiveError:
            raise
        except Exception as exc:
            raise ObjectiveError(f"objective {self.name!r} failed: {type(exc).__name__}: {exc}") from None
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ObjectiveError(f"objective {self.name!r} returned {type(value).__name__}, not a number") from None
        if not math.isfinite(value):
            raise ObjectiveError(f"objective {self.name!r} returned {value}, not a finite number")
        return value


def resolve_objective(
    spec: Any,
    *,
    example_input: Any = None,
    latency_options: dict[str, Any] | None = None,
) -> Objective:
    """Turn an objective specification into an :class:`Objective`.

    Args:
        spec: ``"params"``, ``"flops"``, ``"latency"``, ``"latency:DEVICE"``, a
            :class:`~nasassist_plugins.hardware.LatencyPredictor` fitted for one device,
            an :class:`Objective`, or any callable ``(model, graph) -> float``.
        example_input: the input the ``"latency"`` objective times the model on.
        latency_options: extra :class:`LatencyMeter` arguments (``n_warmup``, ``n_repeats``,
            ``max_seconds``).

    Raises:
        ConfigurationError: unknown name, unknown device, ``"latency"`` without an
            example input, or a specification that is neither a name nor a callable.
    """
    if isinstance(spec, Objective):
        return spec
    if isinstance(spec, str):
        name = spec.strip()
        if name == "params":
            return Objective("params", "graph", count_params, "count")
        if name == "flops":
            return Objective("flops", "graph", count_flops, "FLOPs")
        if name == "latency":
            if example_input is None:
                raise ConfigurationError(
                    "the 'latency' objective times the model on example_input: pass example_input= (a tensor or shape)"
                )
            return Objective("latency", "measured", LatencyMeter(example_input=example_input, **(latency_options or {})), "ms")
        if name.startswith("latency:"):
            from nasassist_plugins.hardware.latency import LatencyPredictor

            device = name.split(":", 1)[1].strip()
            predictor = LatencyPredictor.pretrained(device)  # raises ConfigurationError for unknown devices
            return Objective(name, "predicted", predictor, "ms")
        raise ConfigurationError(
            f"unknown objective {spec!r}: use one of {', '.join(repr(n) for n in OBJECTIVE_NAMES)}, "
            "'latency:DEVICE' (see nasassist_plugins.hardware.latency_devices()) or a callable (model, graph) -> float"
        )
    from nasassist_plugins.hardware.latency import LatencyPredictor

    if isinstance(spec, LatencyPredictor):
        return Objective(f"latency:{spec.device}", "predicted", spec, "ms")
    if callable(spec):
        name = getattr(spec, "__name__", None) or type(spec).__name__
        return Objective(str(name), "callable", spec, "")
    raise ConfigurationError(
        f"an objective must be a name or a callable (model, graph) -> float, got {type(spec).__name__}"
    )
