"""Zero-cost proxies: finite values, isolation of the caller's model, failures, saliency."""

from __future__ import annotations

import copy
import logging
import math
import threading

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.errors import NASAssistError
from nasassist_plugins.proxies import (
    ProxyInputError,
    ProxyTypeError,
    available_proxies,
    compute_proxies,
    flops,
    get_proxy,
    module_saliency,
    params,
    run_proxies,
    synflow,
)
from nasassist_plugins.proxies import _base

ALL = [
    "params", "flops", "synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "zen", "zico",
    "expressivity", "progressivity", "trainability", "meco", "meco_opt", "swap",
]


class SmallCNN(nn.Module):
    """Conv-BN-ReLU x2 with a residual add, dropout, global pool, linear head."""

    def __init__(self, channels: int = 4, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(x + self.bn2(self.conv2(x)))
        return self.fc(self.drop(torch.flatten(self.pool(x), 1)))


class DeadBranchNet(nn.Module):
    """Two conv branches; the second is multiplied by 0 before the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.live = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.dead = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.live(x) + 0.0 * self.dead(x)
        return self.head(y.mean(dim=(2, 3)))


class Unpicklable(SmallCNN):
    """A model that ``copy.deepcopy`` refuses (it holds a lock): proxies must restore it in place."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()


class RaisesInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("broken forward")


SHAPE = (8, 3, 8, 8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: these tiny models gain nothing from more, and on a busy
    shared CPU OpenMP threads oversubscribe the cores and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(SHAPE, generator=g), torch.randint(0, 5, (SHAPE[0],), generator=g)


def _state(model: nn.Module) -> dict:
    """Everything a proxy must not change, copied for comparison."""
    return {
        "tensors": {k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()},
        "dtypes": {k: v.dtype for k, v in model.state_dict().items()},
        "requires_grad": {k: p.requires_grad for k, p in model.named_parameters()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in model.named_parameters()},
        "training": {k: m.training for k, m in model.named_modules()},
        "forward_patched": [k for k, m in model.named_modules() if "forward" in m.__dict__],
        "hooks": sum(len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules()),
    }


def _assert_same_state(before: dict, after: dict) -> None:
    assert before["dtypes"] == after["dtypes"]
    for key, value in before["tensors"].items():
        assert torch.equal(value, after["tensors"][key]), key
    assert before["requires_grad"] == after["requires_grad"]
    for key, grad in before["grads"].items():
        other = after["grads"][key]
        assert (grad is None) == (other is None), key
        if grad is not None:
            assert torch.equal(grad, other), key
    assert before["training"] == after["training"]
    assert before["forward_patched"] == after["forward_patched"] == []
    assert before["hooks"] == after["hooks"]


def _dirty(model: nn.Module) -> nn.Module:
    """Mixed modes, a frozen layer and existing gradients: the state a user's model may be in."""
    model.train()
    model.bn2.eval()
    model.conv1.weight.requires_grad_(False)
    x, y = _batch(1)
    F.cross_entropy(model(x), y).backward()
    return model


# ----------------------------------------------------------------------------- values
def test_registry_lists_every_proxy_in_order():
    assert available_proxies() == ALL
    assert get_proxy("synflow").uses_data is False and get_proxy("snip").uses_labels is True
    with pytest.raises(ValueError, match="unknown proxy 'nope'.*synflow"):
        compute_proxies(SmallCNN(), input_shape=SHAPE, names=["nope"], progress=False)


def test_every_proxy_is_finite_on_a_small_cnn():
    torch.manual_seed(0)
    x, y = _batch()
    runs = run_proxies(SmallCNN(), x, y, progress=False)
    assert [r.name for r in runs] == ALL
    for run in runs:
        assert run.error is None, (run.name, run.error)
        assert math.isfinite(run.value), run.name
        assert run.seconds >= 0


def test_synthetic_batch_and_seed_make_results_reproducible():
    torch.manual_seed(0)
    model = SmallCNN()
    names = ["synflow", "snip", "zen", "zico"]
    a = compute_proxies(model, input_shape=SHAPE, names=names, progress=False, seed=3)
    b = compute_proxies(model, input_shape=SHAPE, names=list(reversed(names)), progress=False, seed=3)
    assert a == {k: b[k] for k in names}
    assert list(a) == names


def test_params_and_flops_have_their_textbook_values():
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 4))
    model[2].bias.requires_grad_(False)  # frozen parameters are not trainable parameters
    x = torch.randn(5, 20)
    assert params(model, x) == 20 * 30 + 30 + 30 * 4
    assert flops(model, x) == 2 * (20 * 30 + 30 * 4)  # one sample, 2 FLOPs per multiply-add


def test_synflow_is_the_log_of_the_path_norm_of_a_linear_chain():
    # For y = W2 |W1| 1 with all-positive weights, R = sum(y) and sum|theta dR/dtheta| = 2 R.
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 0.5, -1.0]]))
        model[1].weight.copy_(torch.tensor([[2.0, -1.0]]))
    r = 2.0 * (1 + 2 + 3) + 1.0 * (0.5 + 0.5 + 1)
    assert synflow(model, torch.randn(4, 3)) == pytest.approx(math.log(2 * r))


def test_proxies_work_inside_no_grad_and_accept_regression_outputs():
    class Dense(nn.Module):  # output (N, 2, H, W): synthetic float targets and MSE
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3, padding=1)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.act(x))

    with torch.no_grad():
        scores = compute_proxies(Dense(), input_shape=SHAPE, names=["snip", "grad_norm", "nwot"], progress=False)
    assert all(math.isfinite(v) for v in scores.values()), scores


# ----------------------------------------------------------------------------- isolation
@pytest.mark.parametrize("factory", [SmallCNN, Unpicklable], ids=["deepcopy", "snapshot-restore"])
def test_proxies_leave_the_model_and_rng_unchanged(factory):
    torch.manual_seed(0)
    model = _dirty(factory())
    if factory is Unpicklable:
        with pytest.raises(TypeError):
            copy.deepcopy(model)
    x, y = _batch()
    before = _state(model)
    rng = torch.get_rng_state()
    scores = compute_proxies(model, x, y, progress=False)
    assert all(math.isfinite(v) for v in scores.values()), scores
    _assert_same_state(before, _state(model))
    assert torch.equal(rng, torch.get_rng_state())
    # each proxy called on its own is isolated too
    for name in ALL:
        get_proxy(name).fn(model, x, y)
    _assert_same_state(before, _state(model))


def test_model_is_restored_when_a_proxy_fails_midway():
    model = _dirty(Unpicklable())
    before = _state(model)

    def half_done(work: nn.Module, inputs, targets, loss_fn) -> float:
        work.double()
        work.eval()
        with torch.no_grad():
            work.conv1.weight.abs_()
        raise RuntimeError("gave up")

    spec = _base.ProxySpec("half_done", _wrap(half_done), True, True, False, "")
    with pytest.raises(RuntimeError, match="gave up"):
        spec.fn(model, _batch()[0])
    _assert_same_state(before, _state(model))


def _wrap(fn):
    """Register-free wrapper (the registry is global; tests must not add to it)."""
    registry = dict(_base._REGISTRY)
    try:
        return _base.register_proxy("__test__")(fn)
    finally:
        _base._REGISTRY.clear()
        _base._REGISTRY.update(registry)


# ----------------------------------------------------------------------------- failures
def test_a_failing_proxy_gives_nan_and_logs_why(caplog, monkeypatch):
    class FunctionalRelu(nn.Module):  # no nn.ReLU modules: NASWOT cannot see activations
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4, 5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(F.relu(self.conv(x)).mean(dim=(2, 3)))

    def boom(model, inputs, targets, loss_fn) -> float:
        raise RuntimeError("kaboom")

    monkeypatch.setitem(_base._REGISTRY, "boom", _base.ProxySpec("boom", _wrap(boom), True, True, False, ""))
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.proxies"):
        scores = compute_proxies(FunctionalRelu(), input_shape=SHAPE, names=["nwot", "boom", "snip"], progress=False)
    assert math.isnan(scores["nwot"]) and math.isnan(scores["boom"])
    assert math.isfinite(scores["snip"])
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("nasassist_plugins.proxies")]
    assert any("'nwot'" in m and "no ReLU modules" in m for m in messages), messages
    assert any("'boom'" in m and "RuntimeError: kaboom" in m for m in messages), messages


def test_a_wrong_batch_shape_is_a_clear_error():
    with pytest.raises(ProxyInputError, match=r"SmallCNN fails on the input batch of shape \(8, 5, 8, 8\)") as info:
        compute_proxies(SmallCNN(), torch.randn(8, 5, 8, 8), progress=False)
    assert isinstance(info.value, NASAssistError) and isinstance(info.value, ValueError)
    assert "input_shape" in str(info.value)
    # params needs no forward pass, so it alone does not trip over the shape
    assert compute_proxies(SmallCNN(), torch.randn(8, 5, 8, 8), names=["params"], progress=False)["params"] > 0


def test_a_model_that_raises_and_other_bad_arguments_are_clear_errors():
    with pytest.raises(ProxyInputError, match="RaisesInForward fails.*RuntimeError: broken forward"):
        compute_proxies(RaisesInForward(), input_shape=(2, 4), progress=False)
    with pytest.raises(ProxyInputError, match="input_shape"):
        compute_proxies(SmallCNN(), progress=False)
    with pytest.raises(ProxyInputError, match=r"targets of shape \(3,\) do not match the batch of 8 samples"):
        compute_proxies(SmallCNN(), torch.randn(SHAPE), torch.zeros(3, dtype=torch.long), progress=False)
    labels = torch.zeros(8, dtype=torch.long)
    labels[-1] = 9  # the model has 5 logits
    with pytest.raises(ProxyInputError, match="class indices from 0 to 9, but the model has 5 logits"):
        compute_proxies(SmallCNN(), torch.randn(SHAPE), labels, names=["snip"], progress=False)
    with pytest.raises(ProxyInputError, match="the loss fails"):
        compute_proxies(
            SmallCNN(), torch.randn(SHAPE), labels, names=["snip"], loss_fn=lambda out, y: out @ y, progress=False
        )
    with pytest.raises(ProxyInputError, match="num_classes=7"):
        compute_proxies(SmallCNN(), input_shape=SHAPE, num_classes=7, names=["snip"], progress=False)
    with pytest.raises(ProxyTypeError, match="instead of an instance"):
        compute_proxies(SmallCNN, input_shape=SHAPE, progress=False)
    with pytest.raises(ProxyTypeError, match="inputs must be a torch.Tensor"):
        compute_proxies(SmallCNN(), [[1.0]], progress=False)


# ----------------------------------------------------------------------------- saliency
@pytest.mark.parametrize("method", ["synflow", "snip"])
def test_module_saliency_is_zero_for_a_dead_branch(method):
    torch.manual_seed(0)
    model = DeadBranchNet()
    before = _state(model)
    scores = module_saliency(model, (4, 3, 8, 8), method=method)
    _assert_same_state(before, _state(model))
    assert set(scores) == {"live.0", "live.1", "dead.0", "dead.1", "head"}
    assert scores["dead.0"] == 0.0 and scores["dead.1"] == 0.0
    assert scores["live.0"] > 0 and scores["head"] > 0
    if method == "snip":
        assert scores["live.1"] > 0  # BatchNorm is bypassed by synflow, scored by snip


def test_module_saliency_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        module_saliency(SmallCNN(), (2, 3, 8, 8), method="grasp")


# ----------------------------------------------------------------------------- real cells
@pytest.mark.shared_data
def test_synflow_and_params_match_naslib_on_nb201(shared_data):
    import csv

    from nasassist_plugins.adapters.cells import nb201_network

    with open(shared_data / "nb201" / "nb201_cifar10_zc_proxies_valacc.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    torch.manual_seed(0)
    model = nb201_network(row["arch_str"])
    scores = compute_proxies(model, input_shape=(2, 3, 32, 32), names=["params", "synflow"], progress=False)
    assert scores["params"] / 1e6 == pytest.approx(float(row["params"]), abs=1e-6)
    # the log-synflow of a random init differs from NASLib's by the init's randomness only
    assert scores["synflow"] == pytest.approx(float(row["synflow"]), abs=1.0)
