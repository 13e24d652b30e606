"""The training-free suite and its aggregation, on models whose values can be worked out by hand."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from nasassist_plugins.proxies import compute_proxies, flops
from nasassist_plugins.proxies.aggregate import aznas_score, log_rank_aggregate, signal_ranks, swap_regularised
from nasassist_plugins.proxies.suite import SUITE_SIGNALS, compute_suite, suite_batch


class Repeat(nn.Module):
    """One conv channel copied four times: every pair of channels is perfectly correlated."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).repeat(1, 4, 1, 1)


class Scale(nn.Module):
    """A parameter-free block: doubles its input (Jacobian 2 I)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * x


class ReluNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x)


class CNN(nn.Module):
    def __init__(self, bn: bool = True, act: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = 3
        for width in (8, 16):
            layers.append(nn.Conv2d(c, width, 3, padding=1))
            if bn:
                layers.append(nn.BatchNorm2d(width))
            if act:
                layers.append(nn.ReLU())
            c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def _min_corr_eig(rows: torch.Tensor) -> float:
    corr = torch.nan_to_num(torch.corrcoef(rows.double()), nan=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


def test_meco_of_identical_channels_is_zero() -> None:
    result = compute_suite(Repeat(), example_input=(1, 3, 8, 8))
    # hooked modules: conv (1 channel: no correlation matrix to speak of -> 0) and the root (4 copies)
    assert result["meco"] == pytest.approx(0.0, abs=1e-9)
    assert result["meco_opt"] == pytest.approx(0.0, abs=1e-9)


def test_meco_sums_the_smallest_correlation_eigenvalue_of_every_module_output() -> None:
    x = torch.randn(16, 6, 5, 5)
    model = nn.Sequential(Scale())  # the container and the block both see 2x: counted twice, as MeCo does
    result = compute_suite(model, x)
    expected = 2 * _min_corr_eig((2 * x[0]).reshape(6, -1))
    assert result["meco"] == pytest.approx(expected, rel=1e-6)


def test_swap_and_nwot_count_activation_patterns() -> None:
    x = torch.randn(16, 2, 3, 3)
    result = compute_suite(ReluNet(), x)
    codes = (x.reshape(16, -1) > 0).numpy()
    assert result["swap"] == len({tuple(col) for col in codes.T})
    c = codes.astype(float)
    kernel = c @ c.T + (1 - c) @ (1 - c).T
    assert result["nwot"] == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-9)


def test_functional_activations_count_like_modules() -> None:
    class Functional(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.gelu(x)

    x = torch.randn(16, 2, 3, 3)
    assert compute_suite(Functional(), x)["swap"] == compute_suite(ReluNet(), x)["swap"]


def test_aznas_components_of_scaling_blocks() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 4, 8, 8)
    result = compute_suite(nn.Sequential(Scale(), Scale()), x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 4).double()
    s = torch.linalg.eigvalsh(torch.cov(flat.T, correction=0))
    p = s / s.sum()
    entropy = float(-(p * torch.log(p + 1e-8)).sum())
    assert result["expressivity"] == pytest.approx(2 * entropy, rel=1e-6)  # scaling keeps the spectrum's shape
    assert result["progressivity"] == pytest.approx(0.0, abs=1e-9)
    # Jacobian 2I: the largest singular value of E[g_in g_out^T] is about 2 -> -2 - 1/2 + 2
    assert result["trainability"] == pytest.approx(-0.5, abs=0.15)
    assert result.num_blocks == 2


def test_flops_and_params_match_the_single_proxies() -> None:
    model = CNN()
    result = compute_suite(model, example_input=(1, 3, 16, 16))
    assert result["flops"] == flops(model, torch.randn(1, 3, 16, 16))
    assert result["params"] == compute_proxies(model, input_shape=(2, 3, 16, 16), names=["params"], progress=False)["params"]
    assert result.batch_size == 16 and not result.errors


def test_the_callers_model_and_rng_are_untouched() -> None:
    model = CNN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    compute_suite(model, example_input=(1, 3, 8, 8))
    assert torch.equal(torch.rand(1), expected)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_that_fails_gives_nan_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)  # wrong input width

    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.proxies"):
        result = compute_suite(Broken(), example_input=(1, 3, 8, 8))
    assert all(math.isnan(result[s]) for s in SUITE_SIGNALS if s != "params")
    assert result["params"] == 10
    assert "fails on the batch" in result.errors["swap"] and "RuntimeError" in result.errors["swap"]
    assert any("fails on the batch" in r.getMessage() for r in caplog.records)


def test_a_linear_model_has_no_activation_patterns() -> None:
    result = compute_suite(CNN(bn=False, act=False), example_input=(1, 3, 8, 8))
    assert math.isnan(result["swap"]) and math.isnan(result["nwot"])
    assert "no activation function" in result.errors["swap"]
    assert math.isfinite(result["expressivity"])


def test_random_batch_has_at_least_16_samples_and_user_batches_are_kept() -> None:
    assert suite_batch((1, 3, 8, 8)).shape == (16, 3, 8, 8)
    assert suite_batch((32, 3, 8, 8)).shape == (32, 3, 8, 8)
    tokens = suite_batch(torch.tensor([[3, 1, 2]]))
    assert tokens.dtype == torch.int64 and tokens.shape == (16, 3) and int(tokens.max()) <= 3
    assert compute_suite(CNN(), torch.randn(4, 3, 8, 8)).batch_size == 4


def test_log_rank_aggregation_prefers_architectures_good_on_every_signal() -> None:
    # a: best on one signal, worst on the other; b: second on both -> b wins (non-linear sum)
    signals = {"x": [3.0, 2.0, 1.0], "y": [1.0, 2.0, 3.0]}
    score = aznas_score(signals, ("x", "y"))
    assert score[1] > score[0] and score[1] > score[2]
    assert score[1] == pytest.approx(2 * math.log(2 / 3))
    ranks = signal_ranks(np.array([[1.0], [np.nan], [3.0]]))
    assert ranks[1, 0] < ranks[0, 0] < ranks[2, 0]  # a failed signal ranks last
    assert log_rank_aggregate(np.array([[1.0, 1.0]]))[0] == 0.0


def test_reference_ranks_are_strictly_monotone_beyond_the_reference() -> None:
    reference = np.array([[10.0], [20.0], [30.0]])
    values = np.array([[1.0], [5.0], [15.0], [25.0], [100.0], [1e4]])
    ranks = signal_ranks(values, reference)[:, 0]
    assert np.all(np.diff(ranks) > 0) and np.all((ranks > 0) & (ranks < 1))


def test_regularised_swap_penalises_models_far_from_mu() -> None:
    out = swap_regularised([100.0, 100.0], [1e6, 3e6], mu=3.0, sigma=1.0)
    assert out[1] == pytest.approx(100.0) and out[0] == pytest.approx(100.0 * math.exp(-4.0))
