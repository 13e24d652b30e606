"""Training and leave-family-out evaluation of the fused zero-shot score (see :mod:`..fusion`).

Data: for every family, the architectures measured by ``benchmarks/zero_shot_suite.py``
(suite signals on proxy networks, :mod:`.suite_data`), their benchmark graphs (full-size
networks, through the family cache) and every task's measured values, turned into rank
targets per (family, task).

Steps (:func:`train_fused`):

1. the graph encoder is pre-trained **without labels** (contrastive + reconstruction) on
   the graphs of every family and generated ResNet/MobileNet/Inception/MLP/ViT models, so no
   held-out label reaches it;
2. for each held-out family (:func:`leave_family_out`): the anchor is chosen on the other
   families among a few principled aggregations (:data:`ANCHOR_CANDIDATES`: AZ-NAS's log-rank
   sum over a set of signals, or label-free spectral weights), the one with the best *worst
   family* mean Spearman; the correction head is trained on their tasks, the
   GMM of the novelty is fitted on their embeddings, and the held-out tasks are scored for
   every shrinkage setting;
3. the shrinkage (``lambda``, ``gamma``) with the best worst held-out family is kept, and the
   uncertainty (``sigma0``, ``kappa``) is calibrated on the held-out residuals;
4. the shipped model is trained the same way on every family (plus the learned-only head
   for graphs alone) and saved with the reference sample and the settings.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import rankdata, spearmanr

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.fusion import CorrectionHead, FusionSettings, anchor_ranks
from nasassist_plugins.predictor.metrics import ranking_metrics
from nasassist_plugins.predictor.regression import pairwise_rank_loss
from nasassist_plugins.predictor.training.suite_data import TaskData, load_tasks
from nasassist_plugins.proxies.aggregate import log_rank_aggregate, signal_ranks
from nasassist_plugins.proxies.suite import SUITE_SIGNALS

_logger = logging.getLogger(__name__)

__all__ = [
    "FusedConfig",
    "TaskData",
    "choose_anchor_signals",
    "load_tasks",
    "metrics",
]


@dataclass
class FusedConfig:
    """Sizes and budgets of a fused training run (recorded in the weights file)."""

    pretrain_epochs: int = 2
    pretrain_max_minutes: float = 8.0
    zoo: int = 100
    correction_members: int = 5
    correction_hidden: int = 128
    correction_steps: int = 600
    correction_batch: int = 128
    correction_max_minutes: float = 2.0
    regressor_epochs: int = 15
    regressor_max_minutes: float = 4.0
    reference_per_family: int = 400
    novelty_quantiles: int = 512
    gmm_candidates: tuple[int, ...] = (2, 4, 8, 12)
    lambdas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    gammas: tuple[float, ...] = (1.0, 3.0)
    seed: int = 0
    notes: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- metrics
def metrics(scores: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Spearman, Kendall, NDCG@10 (measured values as relevance, the thesis's definition) and
    precision@top-10 % of ``scores`` against ``values``; a failed score (NaN) ranks last."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.where(np.isnan(s), -np.inf, s)
    finite = s[np.isfinite(s)]
    low = (finite.min() - 1.0) if finite.size else -1.0
    return ranking_metrics(np.where(np.isfinite(s), s, np.where(s > 0, np.inf, low)), values)


def task_signal_spearman(task: TaskData) -> dict[str, float]:
    out = {}
    for j, name in enumerate(SUITE_SIGNALS):
        x = np.where(np.isnan(task.suite[:, j]), -np.inf, task.suite[:, j])
        rho = spearmanr(x, task.values)[0]
        out[name] = float(rho) if math.isfinite(rho) else 0.0
    return out


def anchor_of(task: TaskData, mask: np.ndarray, weighting: str = "subset") -> tuple[np.ndarray, np.ndarray]:
    """(signal ranks, anchor rank score) of a task's architectures, ranked among themselves."""
    from nasassist_plugins.predictor.fusion import anchor_weights

    ranks = signal_ranks(task.suite)
    anchor = log_rank_aggregate(ranks, anchor_weights(ranks, mask, weighting))
    return ranks, (rankdata(anchor) - 1) / max(len(anchor) - 1, 1)


#: The anchors :func:`choose_anchor_signals` chooses from: ``(name, signals, weighting)``. A short list
#: of principled aggregations rather than every subset of the signals: with five families, choosing
#: among hundreds of subsets by the worst training family over-fits (measured: the held-out worst
#: family drops from 0.62 to 0.54).
ANCHOR_CANDIDATES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("AZ-NAS", ("expressivity", "progressivity", "trainability", "flops"), "subset"),
    ("MeCo", ("meco", "meco_opt"), "subset"),
    ("AZ-NAS+MeCo+SWAP", ("expressivity", "progressivity", "trainability", "flops", "meco", "swap"), "subset"),
    ("spectral, all signals", SUITE_SIGNALS, "spectral"),
    ("spectral, one signal per kind", ("expressivity", "progressivity", "trainability", "meco", "swap", "flops"),
     "spectral"),
)


def choose_anchor_signals(tasks: Sequence[TaskData],
                          candidates: Sequence[tuple[str, Sequence[str], str]] = ANCHOR_CANDIDATES
                          ) -> tuple[list[str], str, dict[str, Any]]:
    """The anchor with the best *worst family* on ``tasks``: ``(signals, weighting, info)``.

    Candidates are :data:`ANCHOR_CANDIDATES` (AZ-NAS's log-rank sum over a set of signals,
    or label-free spectral weights). A family's figure is the anchor's mean Spearman over its
    tasks; the best worst family wins (rounded to 3 decimals; ties: the mean over families).
    """
    from nasassist_plugins.predictor.fusion import anchor_weights

    ranks = [signal_ranks(t.suite) for t in tasks]
    logs = [np.log(np.clip(r, 1e-12, 1.0)) for r in ranks]
    families = np.array([t.family for t in tasks])
    names = list(dict.fromkeys(families))
    options = []
    for label, signals, weighting in candidates:
        mask = np.array([s in signals for s in SUITE_SIGNALS])
        rhos = np.nan_to_num(np.array([spearmanr((lg * anchor_weights(r, mask, weighting)).sum(1), t.values)[0]
                                       for lg, r, t in zip(logs, ranks, tasks)]))
        per_family = [float(np.mean(rhos[families == f])) for f in names]
        options.append(((round(min(per_family), 3), float(np.mean(per_family))), label, list(signals), weighting))
    best = max(options, key=lambda o: o[0])
    return best[2], best[3], {"anchor": best[1], "worst_family_spearman": best[0][0],
                              "mean_family_spearman": best[0][1],
                              "candidates": {o[1]: {"worst": o[0][0], "mean": o[0][1]} for o in options}}


# ----------------------------------------------------------------------------- correction
def _inputs(task: TaskData, base: torch.Tensor, mask: np.ndarray, weighting: str) -> tuple[torch.Tensor, np.ndarray]:
    ranks, a = anchor_of(task, mask, weighting)
    extra = torch.tensor(np.column_stack([ranks, a]), dtype=torch.float32)
    return torch.cat([base[task.graph_rows], extra], dim=1), a


def train_correction(head: CorrectionHead, tasks: Sequence[TaskData], base: torch.Tensor, mask: np.ndarray,
                     weighting: str, config: FusedConfig) -> None:
    """Pairwise ranking loss on ``anchor + delta`` inside each task, plus a pull toward the residual."""
    data = []
    for t in tasks:
        x, a = _inputs(t, base, mask, weighting)
        data.append((x, torch.tensor(a, dtype=torch.float32), torch.tensor(t.target, dtype=torch.float32)))
    rng = np.random.default_rng(config.seed)
    budget = 60 * config.correction_max_minutes / max(len(head.members), 1)
    for m, member in enumerate(head.members):
        torch.manual_seed(config.seed + m)
        optimizer = torch.optim.AdamW(member.parameters(), lr=2e-3, weight_decay=1e-3)
        member.train()
        started = time.perf_counter()
        boot = [rng.integers(0, len(x), len(x)) for x, _, _ in data]  # bootstrap per member
        for _ in range(config.correction_steps):
            g = int(rng.integers(len(data)))
            x, a, y = data[g]
            idx = torch.as_tensor(rng.choice(boot[g], size=min(config.correction_batch, len(boot[g])), replace=False))
            delta = member(x[idx])
            pred = a[idx] + delta
            loss = pairwise_rank_loss(pred, y[idx]) + 0.5 * nn.functional.mse_loss(delta, y[idx] - a[idx]) \
                + 0.1 * delta.pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if time.perf_counter() - started > budget:
                break
        member.eval()


def shrink_weight(novelty: np.ndarray, lam: float, gamma: float) -> np.ndarray:
    return lam * np.clip(1.0 - novelty, 0.0, 1.0) ** gamma


# ----------------------------------------------------------------------------- encoder and novelty
def embed_all(graphs: Sequence[ComputationalGraph], config: FusedConfig, *, progress: bool = False):
    """Pre-train a fresh encoder without labels; return ``(predictor, embeddings, coarse graphs)``."""
    from nasassist_plugins.predictor.features import collate
    from nasassist_plugins.predictor.op_text import vocabulary_text_table
    from nasassist_plugins.predictor.predictor import Predictor
    from nasassist_plugins.predictor.training.pipeline import _featurise
    from nasassist_plugins.predictor.training.pretrain import pretrain_encoder
    from nasassist_plugins.predictor.training.zoo import sample_zoo_graphs

    torch.manual_seed(config.seed)
    predictor = Predictor(seed=config.seed, text_table=torch.from_numpy(vocabulary_text_table()), fusion=True,
                          reference_size=0, novelty_quantiles=config.novelty_quantiles,
                          correction_members=config.correction_members, correction_hidden=config.correction_hidden)
    datas, coarse = _featurise(graphs, progress=progress, desc="featurising benchmark graphs")
    zoo = sample_zoo_graphs(config.zoo, seed=config.seed, progress=progress) if config.zoo else []
    zoo_datas, _ = _featurise(zoo, progress=progress, desc="featurising generated models")
    history = pretrain_encoder(predictor.encoder, datas + zoo_datas, epochs=config.pretrain_epochs, batch_size=64,
                               seed=config.seed, max_seconds=60 * config.pretrain_max_minutes, progress=progress)
    predictor.encoder.eval()
    with torch.no_grad():
        z = torch.cat([predictor.encoder(collate(datas[i:i + 512])) for i in range(0, len(datas), 512)])
    predictor.training_info["pretrain_history"] = history
    return predictor, z, coarse


def fit_novelty(predictor: Any, z: torch.Tensor, config: FusedConfig) -> None:
    """Fit the GMM on training embeddings and store their sorted log-likelihood quantiles."""
    predictor.clusterer.fit(z.numpy(), candidates=config.gmm_candidates, random_state=config.seed)
    with torch.no_grad():
        loglik = predictor.clusterer.log_likelihood(z).numpy()
    q = np.quantile(loglik, np.linspace(0, 1, config.novelty_quantiles))
    predictor.reference.loglik = torch.tensor(np.sort(q), dtype=torch.float32)


# ----------------------------------------------------------------------------- leave one family out
@dataclass
class FoldResult:
    """Held-out predictions of one family for every shrinkage setting."""

    family: str
    anchor_signals: list[str]
    anchor_weighting: str
    selection: dict[str, Any]
    tasks: list[TaskData]
    anchor: list[np.ndarray]
    delta: list[np.ndarray]
    spread: list[np.ndarray]
    novelty: list[np.ndarray]


def _base_inputs(predictor: Any, z: torch.Tensor, graphs: Sequence[ComputationalGraph],
                 coarse: Sequence[ComputationalGraph]) -> torch.Tensor:
    from nasassist_plugins.predictor.graph_features import graph_feature_matrix

    predictor.scaler.fit(graph_feature_matrix(graphs, coarse))
    return predictor.regressor_inputs(graphs, z, coarse)


def leave_family_out(tasks: Sequence[TaskData], predictor: Any, z: torch.Tensor, base: torch.Tensor,
                     config: FusedConfig, families: Sequence[str] | None = None) -> list[FoldResult]:
    """Train on all families but one, score the held-out one (for each family in turn)."""
    families = list(families or dict.fromkeys(t.family for t in tasks))
    folds = []
    for family in families:
        train = [t for t in tasks if t.family != family]
        held = [t for t in tasks if t.family == family]
        if not train or not held:
            continue
        started = time.perf_counter()
        signals, weighting, selection = choose_anchor_signals(train)
        mask = np.array([s in signals for s in SUITE_SIGNALS])
        rows = np.unique(np.concatenate([t.graph_rows for t in train]))
        fit_novelty(predictor, z[rows], config)
        head = CorrectionHead(base.shape[1] + len(SUITE_SIGNALS) + 1, config.correction_members,
                              config.correction_hidden)
        train_correction(head, train, base, mask, weighting, config)
        fold = FoldResult(family, signals, weighting, selection, held, [], [], [], [])
        with torch.no_grad():
            for t in held:
                x, a = _inputs(t, base, mask, weighting)
                delta, spread = head(x)
                loglik = predictor.clusterer.log_likelihood(z[t.graph_rows]).numpy()
                fold.anchor.append(a)
                fold.delta.append(delta.numpy().astype(np.float64))
                fold.spread.append(spread.numpy().astype(np.float64))
                fold.novelty.append(predictor.reference.novelty(loglik))
        _logger.info("held out %s: anchor %s (%s), %.0fs", family, signals, weighting, time.perf_counter() - started)
        folds.append(fold)
    return folds


def fold_scores(fold: FoldResult, k: int, lam: float, gamma: float) -> np.ndarray:
    w = shrink_weight(fold.novelty[k], lam, gamma)
    return np.clip(fold.anchor[k] + w * fold.delta[k], 0.0, 1.0)


def choose_shrinkage(folds: Sequence[FoldResult], config: FusedConfig) -> tuple[float, float, dict[str, Any]]:
    """``(lambda, gamma)`` with the best worst held-out family (mean Spearman over its tasks, rounded to
    3 decimals; ties: the mean over families)."""
    best, choice = (-math.inf, -math.inf), (0.0, 1.0)
    table = {}
    for lam in config.lambdas:
        for gamma in config.gammas:
            per_family = []
            for fold in folds:
                rhos = [spearmanr(fold_scores(fold, k, lam, gamma), t.values)[0] for k, t in enumerate(fold.tasks)]
                per_family.append(float(np.mean(rhos)))
            key = (round(min(per_family), 3), float(np.mean(per_family)))
            table[f"{lam}/{gamma}"] = {"worst_family_spearman": key[0], "mean_family_spearman": key[1]}
            if key > best:
                best, choice = key, (lam, gamma)
    return choice[0], choice[1], table


def calibrate(folds: Sequence[FoldResult], lam: float, gamma: float) -> tuple[float, float, dict[str, float]]:
    """``(sigma0, kappa)`` making ``score ± std`` cover 68.3 % of held-out architectures overall,
    with the 2-sigma coverage nearest 95.4 % among the settings that do; per-family coverage."""
    residual, novelty, spread_w = [], [], []
    fam = []
    for fold in folds:
        for k, t in enumerate(fold.tasks):
            residual.append(t.target - fold_scores(fold, k, lam, gamma))
            novelty.append(fold.novelty[k])
            spread_w.append(shrink_weight(fold.novelty[k], lam, gamma) * fold.spread[k])
            fam += [fold.family] * len(t.target)
    r, nov, sw = (np.abs(np.concatenate(x)) for x in (residual, novelty, spread_w))
    best, choice = math.inf, (0.2, 0.0)
    for sigma0 in np.linspace(0.02, 0.6, 59):
        for kappa in np.linspace(0.0, 0.6, 31):
            std = np.sqrt(sigma0 ** 2 + (kappa * nov) ** 2 + sw ** 2)
            c1, c2 = float(np.mean(r <= std)), float(np.mean(r <= 2 * std))
            loss = abs(c1 - 0.683) + 0.5 * abs(c2 - 0.954)
            if loss < best:
                best, choice = loss, (float(sigma0), float(kappa))
    std = np.sqrt(choice[0] ** 2 + (choice[1] * nov) ** 2 + sw ** 2)
    fam_arr = np.array(fam)
    coverage = {"all_1sigma": float(np.mean(r <= std)), "all_2sigma": float(np.mean(r <= 2 * std))}
    for f in dict.fromkeys(fam):
        sel = fam_arr == f
        coverage[f"{f}_1sigma"] = float(np.mean(r[sel] <= std[sel]))
    return choice[0], choice[1], coverage


# ----------------------------------------------------------------------------- the whole run
def _reference_rows(tasks: Sequence[TaskData], per_family: int, seed: int) -> np.ndarray:
    """A pooled sample of suite rows: up to ``per_family`` distinct architectures per (family, suite)."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    for t in tasks:
        ident = (t.family, t.suite.shape[0], float(np.nansum(t.suite[:5])))
        if ident in seen:
            continue  # tasks of one family sharing the same suite rows
        seen.add(ident)
        take = rng.choice(len(t.suite), size=min(per_family, len(t.suite)), replace=False)
        rows.append(t.suite[take])
    return np.concatenate(rows) if rows else np.zeros((0, len(SUITE_SIGNALS)))


def reference_anchor_scores(held: TaskData, reference: np.ndarray, mask: np.ndarray, weighting: str) -> np.ndarray:
    """Anchor of each held-out architecture scored alone, against a reference sample (no population)."""
    from nasassist_plugins.predictor.fusion import ReferenceSet, reference_anchors

    ref = ReferenceSet(len(reference), len(SUITE_SIGNALS))
    ref.values = torch.tensor(reference, dtype=torch.float32)
    ref.anchors = torch.tensor(reference_anchors(reference, mask, weighting), dtype=torch.float32)
    return np.array([anchor_ranks(row[None, :], mask, ref, 10**9, None, weighting)[1][0] for row in held.suite])


def evaluation_table(folds: Sequence[FoldResult], lam: float, gamma: float, all_tasks: Sequence[TaskData],
                     config: FusedConfig) -> list[dict[str, Any]]:
    """One row per (held-out task, method) with the four ranking metrics."""
    from nasassist_plugins.proxies.aggregate import AZNAS_SIGNALS, aznas_score, swap_regularised

    rows = []
    for fold in folds:
        mask = np.array([s in fold.anchor_signals for s in SUITE_SIGNALS])
        everything = np.ones(len(SUITE_SIGNALS), dtype=bool)
        reference = _reference_rows([t for t in all_tasks if t.family != fold.family], config.reference_per_family,
                                    config.seed)
        for k, t in enumerate(fold.tasks):
            methods: dict[str, np.ndarray] = {}
            methods["fused (leave-family-out)"] = fold_scores(fold, k, lam, gamma)
            methods[f"anchor ({fold.anchor_weighting}: {'+'.join(fold.anchor_signals)})"] = fold.anchor[k]
            methods["anchor, one model at a time (reference)"] = reference_anchor_scores(t, reference, mask,
                                                                                        fold.anchor_weighting)
            methods["spectral log-rank, all signals"] = anchor_of(t, everything, "spectral")[1]
            methods["AZ-NAS (4 components)"] = aznas_score({s: t.suite[:, j] for j, s in enumerate(SUITE_SIGNALS)},
                                                           AZNAS_SIGNALS)
            for j, s in enumerate(SUITE_SIGNALS):
                methods[s] = t.suite[:, j]
            methods["swap (regularised)"] = swap_regularised(t.suite[:, SUITE_SIGNALS.index("swap")],
                                                             t.suite[:, SUITE_SIGNALS.index("params")])
            for name, scores in methods.items():
                rows.append({"family": t.family, "task": t.task, "method": name, "n": len(t.values),
                             "novelty_mean": float(np.mean(fold.novelty[k])), **metrics(scores, t.values)})
    return rows


def train_fused(tasks: Sequence[TaskData], graphs: Sequence[ComputationalGraph], config: FusedConfig | None = None,
                *, evaluate: bool = True, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """The shipped fused predictor and its leave-family-out report (module docstring)."""
    from nasassist_plugins.predictor.fusion import reference_anchors
    from nasassist_plugins.predictor.regression import train_regressor

    config = config or FusedConfig()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    predictor, z, coarse = embed_all(graphs, config, progress=progress)
    base = _base_inputs(predictor, z, graphs, coarse)
    timings["featurise_and_pretrain_s"] = time.perf_counter() - t0
    report: dict[str, Any] = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}}
    lam, gamma = config.lambdas[-1], config.gammas[0]
    settings = FusionSettings()
    if evaluate:
        t = time.perf_counter()
        folds = leave_family_out(tasks, predictor, z, base, config)
        lam, gamma, shrink_table = choose_shrinkage(folds, config)
        sigma0, kappa, coverage = calibrate(folds, lam, gamma)
        settings.sigma0, settings.kappa, settings.coverage = sigma0, kappa, coverage["all_1sigma"]
        report.update(shrinkage=shrink_table, coverage=coverage,
                      folds=[{"family": f.family, "anchor_signals": f.anchor_signals,
                              "anchor_weighting": f.anchor_weighting, **f.selection} for f in folds],
                      table=evaluation_table(folds, lam, gamma, tasks, config))
        timings["leave_family_out_s"] = time.perf_counter() - t
    settings.correction_weight, settings.novelty_power = float(lam), float(gamma)

    t = time.perf_counter()
    signals, weighting, selection = choose_anchor_signals(tasks)
    settings.anchor_signals, settings.anchor_weighting = signals, weighting
    mask = np.array([s in signals for s in SUITE_SIGNALS])
    # gate + novelty on every family; the learned-only head needs one expert per GMM component
    predictor.fit_gate(z.numpy(), candidates=config.gmm_candidates, random_state=config.seed)
    with torch.no_grad():
        loglik = predictor.clusterer.log_likelihood(z).numpy()
    predictor.reference.loglik = torch.tensor(np.sort(np.quantile(loglik, np.linspace(0, 1, config.novelty_quantiles))),
                                              dtype=torch.float32)
    train_correction(predictor.correction, tasks, base, mask, weighting, config)
    reference = _reference_rows(tasks, config.reference_per_family, config.seed)
    predictor.config["reference_size"] = len(reference)
    predictor.reference.values = torch.tensor(reference, dtype=torch.float32)
    predictor.reference.anchors = torch.tensor(reference_anchors(reference, mask, weighting), dtype=torch.float32)
    rows = np.concatenate([t.graph_rows for t in tasks])
    target = torch.tensor(np.concatenate([t.target for t in tasks]), dtype=torch.float32)
    train_regressor(predictor.regressor, predictor.clusterer, z[rows], target, inputs=base[rows],
                    epochs=config.regressor_epochs, max_seconds=60 * config.regressor_max_minutes, seed=config.seed)
    timings["final_training_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    predictor.fusion_settings = settings
    predictor.target_description = "rank score (0 worst .. 1 best among comparable architectures)"
    predictor._eval()
    predictor.training_info.update({
        "kind": "fused", "config": report["config"], "anchor_selection": selection, "timings": timings,
        "tasks": [{"family": t.family, "task": t.task, "n": len(t.values)} for t in tasks],
        "gmm_components": predictor.clusterer.num_components, "coverage": report.get("coverage"),
        "torch": torch.__version__,
    })
    report["settings"] = settings.to_dict()
    report["timings"] = timings
    return predictor, report
