"""Hardware objectives: parameters, FLOPs, measured latency, the device latency predictor."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from nasassist_plugins.adapters import from_torch
from nasassist_plugins.errors import ConfigurationError, ObjectiveError, PredictorError
from nasassist_plugins.hardware import (
    FEATURE_NAMES,
    LatencyMeter,
    LatencyPredictor,
    count_flops,
    count_params,
    hardware_features,
    latency_devices,
    measure_latency,
    resolve_objective,
)


def _cnn(width: int = 8, depth: int = 1, kernel: int = 3) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, width, kernel, padding=kernel // 2), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, kernel, padding=kernel // 2), nn.BatchNorm2d(width), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    return nn.Sequential(*layers)


X = torch.randn(1, 3, 16, 16)


# ----------------------------------------------------------------------------- params / FLOPs
def test_params_count_unique_trainable_tensors():
    model = _cnn(8, 2)
    graph = from_torch(model, X)
    expected = sum(p.numel() for p in model.parameters())
    assert count_params(model, graph) == expected == graph.num_parameters
    assert count_params(None, graph) == graph.num_parameters
    tied = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    tied[1].weight = tied[0].weight
    assert count_params(tied, None) == 16
    model[0].weight.requires_grad_(False)
    assert count_params(model, graph) == expected - model[0].weight.numel()
    with pytest.raises(ObjectiveError, match="neither a model nor a graph"):
        count_params(None, None)


def test_flops_agree_with_torch_flop_counter_on_convolutions_and_linears():
    from torch.utils.flop_counter import FlopCounterMode

    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Conv2d(8, 4, 1, bias=False), nn.Flatten(),
                          nn.Linear(4 * 16 * 16, 10, bias=False))  # fmt: skip
    graph = from_torch(model, X)
    with FlopCounterMode(display=False) as counter:
        model(X)
    assert count_flops(model, graph) == pytest.approx(counter.get_total_flops())
    with pytest.raises(ObjectiveError, match="no computational graph"):
        count_flops(model, None)


# ----------------------------------------------------------------------------- measured latency
def test_measured_latency_on_a_tiny_model_restores_train_mode():
    model = _cnn(8, 2).train()
    graph = from_torch(model, X)
    objective = resolve_objective("latency", example_input=X, latency_options={"n_repeats": 5})
    assert objective.kind == "measured" and objective.needs_model and objective.unit == "ms"
    ms = objective.evaluate(model, graph)
    assert 0 < ms < 1000
    assert all(m.training for m in model.modules())
    assert measure_latency(model, (1, 3, 16, 16), n_repeats=3) > 0  # a shape tuple works too


def test_measured_latency_is_the_median_and_bounded_in_time():
    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.03)
            return x

    started = time.perf_counter()
    ms = measure_latency(Slow(), X, n_warmup=1, n_repeats=1000, max_seconds=0.2)
    elapsed = time.perf_counter() - started
    assert 25 < ms < 200
    assert elapsed < 1.5  # warm-up plus about max_seconds of timed passes, not 1000 passes


def test_latency_errors_are_one_line_and_name_the_problem():
    graph = from_torch(_cnn(), X)
    meter = LatencyMeter(example_input=X)
    with pytest.raises(ObjectiveError, match="returned a graph, not a model"):
        meter(None, graph)
    with pytest.raises(ObjectiveError, match=r"forward pass failed on an input of shape \(1, 5, 16, 16\)") as info:
        measure_latency(_cnn(), torch.randn(1, 5, 16, 16))
    assert "\n" not in str(info.value)
    with pytest.raises(ObjectiveError, match="needs a PyTorch nn.Module"):
        measure_latency(graph, X)
    with pytest.raises(ConfigurationError, match="example_input"):
        resolve_objective("latency")
    with pytest.raises(ConfigurationError, match="n_repeats"):
        LatencyMeter(example_input=X, n_repeats=0)


# ----------------------------------------------------------------------------- resolution
def test_callable_objectives_and_bad_values():
    def depth(model, graph):
        return float(graph.num_nodes)

    graph = from_torch(_cnn(), X)
    objective = resolve_objective(depth)
    assert objective.name == "depth" and objective.kind == "callable"
    assert objective.evaluate(None, graph) == graph.num_nodes
    def nan_fn(model, graph):
        return float("nan")

    with pytest.raises(ObjectiveError, match="'nan_fn' returned nan, not a finite number"):
        resolve_objective(nan_fn).evaluate(None, graph)

    def broken(model, graph):
        raise KeyError("width")

    with pytest.raises(ObjectiveError, match="objective 'broken' failed: KeyError"):
        resolve_objective(broken).evaluate(None, graph)
    with pytest.raises(ObjectiveError, match="returned str, not a number"):
        resolve_objective(lambda m, g: "fast").evaluate(None, graph)
    with pytest.raises(ConfigurationError, match="unknown objective 'accuracy'"):
        resolve_objective("accuracy")
    with pytest.raises(ConfigurationError, match="name or a callable"):
        resolve_objective(42)


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(ConfigurationError, match="unknown latency device 'toaster'.*edgegpu"):
        resolve_objective("latency:toaster")


# ----------------------------------------------------------------------------- features / predictor
def test_hardware_features_see_dead_branches():
    class TwoBranch(nn.Module):
        def __init__(self, dead: bool):
            super().__init__()
            self.a = nn.Conv2d(3, 8, 3, padding=1)
            self.b = nn.Conv2d(3, 8, 3, padding=1)
            self.dead = dead

        def forward(self, x):
            y = self.b(x)
            return self.a(x) + (y * 0 if self.dead else y)

    live = hardware_features(from_torch(TwoBranch(False), X))
    assert live.shape == (len(FEATURE_NAMES),)
    i_all, i_live = FEATURE_NAMES.index("all_conv_count"), FEATURE_NAMES.index("live_conv_count")
    assert live[i_all] == live[i_live] == pytest.approx(np.log1p(2))


def _synthetic_devices(n: int = 40, seed: int = 0):
    """Small CNNs and latencies of three made-up devices (different mixes of FLOPs, writes, depth)."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(n):
        model = _cnn(int(rng.choice([4, 8, 16, 32])), int(rng.integers(1, 5)), int(rng.choice([1, 3, 5])))
        graphs.append(from_torch(model, X))
    x = np.stack([hardware_features(g) for g in graphs])
    flops, writes, depth = (x[:, FEATURE_NAMES.index(k)] for k in ("all_flops", "all_writes", "all_compute_depth"))
    devices = {
        "compute": np.exp(0.9 * flops + 0.1 * depth),
        "memory": np.exp(0.8 * writes + 0.3 * flops),
        "launch": np.exp(1.5 * depth + 0.2 * flops),
    }
    return graphs, x, devices


def test_predictor_adapts_to_a_new_device_from_ten_measurements(tmp_path):
    graphs, x, devices = _synthetic_devices()
    predictor = LatencyPredictor().fit(graphs, {d: devices[d] for d in ("compute", "memory")})
    assert predictor.devices == ("compute", "memory")
    assert spearmanr(predictor.predict(x, "compute"), devices["compute"])[0] > 0.95
    new = np.exp(0.5 * np.log(devices["compute"]) + 0.5 * np.log(devices["memory"]))  # a device in their span
    phone = predictor.adapt(x[:10], new[:10], device="phone")
    assert phone.device == "phone" and "phone" not in predictor.devices
    assert spearmanr(phone.predict(x[10:]), new[10:])[0] > 0.9
    mean, std = phone.predict(x[10:], return_std=True)
    assert np.all(std > 0) and np.all(mean > 0)
    assert phone(None, graphs[0]) == pytest.approx(float(phone.predict([graphs[0]])[0]))
    # JSON round trip, no pickle
    path = tmp_path / "latency.json"
    phone.save(path)
    again = LatencyPredictor.load(path, device="phone")
    np.testing.assert_allclose(again.predict(x), phone.predict(x))
    data = json.loads(path.read_text())
    data["features"] = data["features"][:-1]
    path.write_text(json.dumps(data))
    with pytest.raises(PredictorError, match="other hardware features"):
        LatencyPredictor.load(path)
    with pytest.raises(PredictorError, match="not fitted"):
        LatencyPredictor().predict(x, "compute")
    with pytest.raises(ConfigurationError, match="at least 2"):
        predictor.adapt(x[:1], new[:1])
    with pytest.raises(ConfigurationError, match="positive"):
        predictor.adapt(x[:3], [1.0, -2.0, 3.0])


def test_shipped_predictor_ranks_nb201_cells_on_the_edge_gpu(shared_data):
    import pandas as pd

    from nasassist_plugins.adapters.cells import nb201_network

    assert {"edgegpu", "edgetpu", "raspi4", "pixel3", "titan_rtx_256"} <= set(latency_devices())
    table = pd.read_csv(shared_data / "hw" / "hwnasbench_nb201_cifar10.csv")
    rows = table.sample(8, random_state=0)
    objective = resolve_objective("latency:edgegpu")
    assert objective.kind == "predicted" and objective.unit == "ms"
    predicted = [objective.evaluate(None, from_torch(nb201_network(a), torch.randn(1, 3, 32, 32))) for a in rows.arch_str]
    measured = rows.edgegpu_latency.to_numpy()
    assert spearmanr(predicted, measured)[0] > 0.8
    assert 0.2 * measured.min() < min(predicted) and max(predicted) < 5 * measured.max()
