"""The fused zero-shot score: training on small fixtures, shrinkage to the anchor, range,
calibration, batch independence, the graph-only fallback and persistence."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
import torch.nn as nn

from nasassist_plugins.adapters import from_torch, nb201_network
from nasassist_plugins.adapters.cells import random_nb201_arch
from nasassist_plugins.errors import PredictorError
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.predictor import zero_shot as zero_shot_module
from nasassist_plugins.predictor.training.fused import (
    FoldResult,
    FusedConfig,
    TaskData,
    calibrate,
    choose_anchor_signals,
    train_fused,
)
from nasassist_plugins.proxies.suite import SUITE_SIGNALS, compute_suite

SHAPE = (1, 3, 8, 8)


def _net(arch: str) -> nn.Module:
    torch.manual_seed(0)
    return nb201_network(arch, channels=8, cells_per_stage=1)


class MLP(nn.Module):
    """Nothing like an NB201 cell network: a graph far from the training embeddings."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                 nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@pytest.fixture(scope="module")
def fused_predictor():
    """A fused predictor trained on two toy 'families' of small NB201 networks."""
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(random_nb201_arch(rng) for _ in range(40)))[:32]
    graphs = [from_torch(_net(a), SHAPE) for a in archs]
    suite = np.array([[compute_suite(_net(a), example_input=SHAPE).values[s] for s in SUITE_SIGNALS] for a in archs])
    conv = np.array([a.count("conv_3x3") + 0.5 * a.count("conv_1x1") - a.count("none") for a in archs])
    tasks = [
        TaskData("toy-a", "a", archs[:16], suite[:16], conv[:16] + rng.normal(0, 0.1, 16), np.arange(16)),
        TaskData("toy-b", "b", archs[16:], suite[16:], conv[16:] + rng.normal(0, 0.1, 16), np.arange(16, 32)),
    ]
    config = FusedConfig(pretrain_epochs=1, pretrain_max_minutes=0.2, zoo=0, correction_members=2,
                         correction_hidden=16, correction_steps=40, correction_batch=16, regressor_epochs=2,
                         reference_per_family=16, novelty_quantiles=64, gmm_candidates=(1, 2))
    predictor, report = train_fused(tasks, graphs, config)
    return predictor, report, archs


def test_training_reports_leave_family_out_rows_and_stores_the_settings(fused_predictor) -> None:
    predictor, report, _ = fused_predictor
    methods = {row["method"] for row in report["table"]}
    assert "fused (leave-family-out)" in methods and "AZ-NAS (4 components)" in methods and "params" in methods
    assert {row["family"] for row in report["table"]} == {"toy-a", "toy-b"}
    assert set(predictor.fusion_settings.anchor_signals) <= set(SUITE_SIGNALS)
    assert predictor.has_fusion and predictor.reference.values.shape == (32, len(SUITE_SIGNALS))


def test_scores_are_ranks_in_unit_interval_with_positive_std(fused_predictor) -> None:
    predictor, _, archs = fused_predictor
    result = predictor.score([_net(a) for a in archs[:5]], example_input=SHAPE)
    assert result.kind == ["fused"] * 5
    assert np.all((result.score >= 0) & (result.score <= 1)) and np.all(result.std > 0)
    assert np.all((result.novelty >= 0) & (result.novelty <= 1)) and np.all(np.isfinite(result.anchor))


def test_a_novel_graph_is_scored_by_its_anchor(fused_predictor) -> None:
    predictor, _, archs = fused_predictor
    result = predictor.score([MLP(), _net(archs[0])], example_input=SHAPE, population="reference")
    assert result.novelty[0] == pytest.approx(1.0)  # unlike every training architecture
    assert result.score[0] == pytest.approx(result.anchor[0], abs=1e-12)  # correction shrunk to nothing
    assert result.novelty[1] < 1.0  # a training-like architecture keeps some correction


def test_a_single_models_score_does_not_depend_on_the_batch(fused_predictor) -> None:
    predictor, _, archs = fused_predictor
    alone = predictor.score([_net(archs[1])], example_input=SHAPE)
    together = predictor.score([_net(archs[1]), _net(archs[2]), _net(archs[3])], example_input=SHAPE,
                               population="reference")
    assert together.score[0] == pytest.approx(alone.score[0])
    assert together.std[0] == pytest.approx(alone.std[0])


def test_precomputed_suite_values_give_the_same_fused_score(fused_predictor) -> None:
    predictor, _, archs = fused_predictor
    models = [_net(a) for a in archs[:3]]
    direct = predictor.score(models, example_input=SHAPE)
    suites = [compute_suite(m, example_input=SHAPE) for m in models]
    graphs = [from_torch(m, SHAPE) for m in models]
    via_graphs = predictor.score_graphs(graphs, suite=suites)
    np.testing.assert_allclose(via_graphs.score, direct.score)
    with pytest.raises(PredictorError, match="entries"):
        predictor.score_graphs(graphs, suite=suites[:2])
    with pytest.raises(PredictorError, match="unknown suite signals"):
        predictor.score_graphs(graphs[:1], suite=[{"bogus": 1.0}])


def test_graphs_alone_fall_back_to_the_learned_part_with_one_notice(fused_predictor, caplog, monkeypatch) -> None:
    predictor, _, archs = fused_predictor
    monkeypatch.setattr(zero_shot_module, "_notice_shown", False)
    graphs = [from_torch(_net(a), SHAPE) for a in archs[:2]]
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.predictor"):
        first = predictor.score(graphs)
        predictor.score(graphs)
    assert first.kind == ["learned-only"] * 2 and np.all(np.isnan(first.anchor))
    assert np.all((first.score >= 0) & (first.score <= 1))
    assert sum("learned part alone" in r.getMessage() for r in caplog.records) == 1


def test_save_load_keeps_the_fused_score(fused_predictor, tmp_path) -> None:
    predictor, _, archs = fused_predictor
    path = predictor.save(tmp_path / "fused.safetensors")
    loaded = Predictor.load(path)
    assert loaded.fusion_settings == predictor.fusion_settings
    models = [_net(a) for a in archs[:2]]
    np.testing.assert_allclose(loaded.score(models, example_input=SHAPE).score,
                               predictor.score(models, example_input=SHAPE).score)


def test_calibrated_std_covers_the_stated_fraction_of_new_residuals() -> None:
    """sigma0/kappa fitted on one draw of held-out residuals cover ~68 % of a fresh draw."""
    rng = np.random.default_rng(1)

    def fold(n: int) -> FoldResult:
        novelty = rng.uniform(0, 1, n)
        target = rng.uniform(0, 1, n)
        noise = rng.normal(0, 0.05 + 0.2 * novelty)  # residuals grow with novelty
        values = target  # rank targets of TaskData are computed from values
        task = TaskData("f", "t", [str(i) for i in range(n)], np.zeros((n, len(SUITE_SIGNALS))), values,
                        np.arange(n))
        anchor = np.clip(task.target - noise, 0, 1)
        return FoldResult("f", ["flops"], "subset", {}, [task], [anchor], [np.zeros(n)], [np.zeros(n)], [novelty])

    sigma0, kappa, coverage = calibrate([fold(3000)], lam=0.0, gamma=1.0)
    assert kappa > 0.05 and coverage["all_1sigma"] == pytest.approx(0.683, abs=0.03)
    fresh = fold(3000)
    residual = np.abs(fresh.tasks[0].target - fresh.anchor[0])
    std = np.sqrt(sigma0 ** 2 + (kappa * fresh.novelty[0]) ** 2)
    assert np.mean(residual <= std) == pytest.approx(0.683, abs=0.05)
    assert np.mean(residual <= 2 * std) == pytest.approx(0.954, abs=0.04)


def test_anchor_is_chosen_by_the_worst_family() -> None:
    rng = np.random.default_rng(0)
    n = 60
    quality = rng.normal(size=n)
    suite = rng.normal(size=(n, len(SUITE_SIGNALS)))
    suite[:, SUITE_SIGNALS.index("meco")] = quality + rng.normal(0, 0.3, n)
    suite[:, SUITE_SIGNALS.index("meco_opt")] = quality + rng.normal(0, 0.3, n)
    tasks = [TaskData("f", "t", [str(i) for i in range(n)], suite, quality, np.arange(n)),
             TaskData("g", "t", [str(i) for i in range(n)], suite, quality, np.arange(n))]
    chosen, weighting, info = choose_anchor_signals(tasks)
    # only meco and meco_opt carry the quality: MeCo, or spectral weights that find them, wins
    assert info["anchor"] in ("MeCo", "spectral, all signals") and {"meco", "meco_opt"} <= set(chosen)
    assert info["candidates"]["AZ-NAS"]["worst"] < info["worst_family_spearman"]
    assert info["worst_family_spearman"] == pytest.approx(max(c["worst"] for c in info["candidates"].values()))


def test_learned_scores_outside_the_rank_range_keep_their_order_inside_0_1():
    from nasassist_plugins.predictor.zero_shot import bounded_rank

    raw = np.array([-1e9, -40.0, -3.0, -0.2, 0.0, 0.5, 1.0, 1.7, 30.0, 1e9])
    out = bounded_rank(raw)
    assert np.all((out >= 0.0) & (out <= 1.0))
    assert np.all(np.diff(out[1:-1]) > 0)  # no ties where a clip would have tied them at 0 or 1
    assert out[5] == pytest.approx(0.5)
