"""Hardware-aware objectives: parameters, FLOPs, measured latency, predicted device latency.

Public API:
    resolve_objective      "params" / "flops" / "latency" / "latency:DEVICE" / a callable -> Objective
    Objective              a resolved objective: ``evaluate(model, graph) -> float``
    count_params, count_flops, measure_latency, LatencyMeter   the built-in objectives
    LatencyPredictor       graph -> latency (ms) on named devices; ``adapt`` to a new device
    latency_devices        the devices of the shipped predictor
    hardware_features      the device-independent cost features of a graph

Example::

    from nasassist_plugins.hardware import resolve_objective
    flops = resolve_objective("flops").evaluate(model, graph)
    edge_ms = resolve_objective("latency:edgegpu").evaluate(model, graph)
"""

from nasassist_plugins.hardware.features import FEATURE_NAMES, hardware_feature_matrix, hardware_features
from nasassist_plugins.hardware.latency import LatencyPredictor, latency_devices
from nasassist_plugins.hardware.objectives import (
    OBJECTIVE_NAMES,
    LatencyMeter,
    Objective,
    count_flops,
    count_params,
    measure_latency,
    resolve_objective,
)

__all__ = [
    "FEATURE_NAMES",
    "OBJECTIVE_NAMES",
    "LatencyMeter",
    "LatencyPredictor",
    "Objective",
    "count_flops",
    "count_params",
    "hardware_feature_matrix",
    "hardware_features",
    "latency_devices",
    "measure_latency",
    "resolve_objective",
]
