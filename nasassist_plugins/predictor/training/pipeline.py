"""Train the whole predictor: pre-train the encoder, shape it on labelled families,
fit the GMM gate, train the mixture-of-experts ensemble.

Targets come at different scales and budgets (NB101 accuracy 0–1, NB201 % at 12 or 200
epochs, TransNAS SSIM or negative L2); what must transfer is the ranking, so every
(family, task) is rank-normalised to [0, 1] before training (:func:`rank_normalise`).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import rankdata

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.coarsen import coarsen
from nasassist_plugins.predictor.encoder import EMBEDDING_DIM
from nasassist_plugins.predictor.features import collate, graph_to_data
from nasassist_plugins.predictor.graph_features import graph_feature_matrix
from nasassist_plugins.predictor.op_text import vocabulary_text_table
from nasassist_plugins.predictor.predictor import Predictor
from nasassist_plugins.predictor.regression import pairwise_rank_loss, train_regressor
from nasassist_plugins.predictor.training.pretrain import (
    laplacian_spectrum,
    pretrain_encoder,
)

_logger = logging.getLogger(__name__)


@dataclass
class LabelledSet:
    """Architectures of one (family, task) with their measured values (larger is better)."""

    family: str
    task: str
    graphs: Sequence[ComputationalGraph]
    values: np.ndarray

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        if len(self.graphs) != len(self.values):
            raise ValueError(f"{self.family}/{self.task}: {len(self.graphs)} graphs but {len(self.values)} values")


@dataclass
class TrainingConfig:
    """Sizes and budgets of one training run (recorded in the weights file)."""

    hidden_dim: int = 64
    num_gin_layers: int = 6
    ensemble_size: int = 5
    pretrain_epochs: int = 3
    pretrain_max_minutes: float = 15.0
    supervised_epochs: int = 6
    supervised_max_minutes: float = 20.0
    regressor_epochs: int = 60
    regressor_max_minutes: float = 10.0
    gmm_candidates: tuple[int, ...] = (2, 4, 6, 8, 12, 16)
    batch_size: int = 64
    seed: int = 0
    notes: dict = field(default_factory=dict)


def rank_normalise(values: np.ndarray) -> np.ndarray:
    """Average ranks scaled to [0, 1] (0 = worst, 1 = best); ties share a rank."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return np.full(len(values), 0.5)
    return (rankdata(values) - 1) / (len(values) - 1)


def _featurise(graphs: Sequence[ComputationalGraph], progress: bool, desc: str):
    """Coarsen each graph once; return (encoder inputs with Laplacian spectra, coarse graphs)."""
    from tqdm.auto import tqdm

    datas, coarse = [], []
    for g in tqdm(graphs, desc=desc, disable=not progress):
        small = coarsen(g)
        data = graph_to_data(small)
        data.spectrum = torch.from_numpy(laplacian_spectrum(small)).unsqueeze(0)
        datas.append(data)
        coarse.append(small)
    return datas, coarse


def _supervised_encoder_training(predictor: Predictor, datas, targets: np.ndarray, groups: np.ndarray,
                                 config: TrainingConfig, progress: bool) -> list[float]:
    """Shape the encoder on labelled data: an auxiliary head regresses the rank-normalised
    target, with a pairwise ranking loss inside each (family, task); batches are drawn per
    group so that every pair compares like with like."""
    from tqdm.auto import tqdm

    encoder = predictor.encoder
    head = nn.Sequential(nn.Linear(EMBEDDING_DIM, 128), nn.GELU(), nn.Linear(128, 1))
    params = list(encoder.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=5e-4, weight_decay=1e-4)
    generator = np.random.default_rng(config.seed)
    y = torch.tensor(targets, dtype=torch.float32)
    by_group = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    steps = config.supervised_epochs * max(1, math.ceil(len(datas) / config.batch_size))
    started = time.perf_counter()
    losses: list[float] = []
    encoder.train()
    for step in tqdm(range(steps), desc="supervised encoder training", disable=not progress):
        group = generator.choice(list(by_group))
        idx = generator.choice(by_group[group], size=min(config.batch_size, len(by_group[group])), replace=False)
        batch = collate([datas[i] for i in idx])
        pred = head(encoder(batch)).squeeze(1)
        target = y[idx]
        loss = nn.functional.mse_loss(pred, target) + pairwise_rank_loss(pred, target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        losses.append(loss.item())
        if time.perf_counter() - started > 60 * config.supervised_max_minutes:
            _logger.info("supervised encoder training stopped at its time budget after %d steps", step + 1)
            break
    encoder.eval()
    return losses


def train_predictor(
    labelled: Sequence[LabelledSet],
    unlabelled: Sequence[ComputationalGraph] = (),
    config: TrainingConfig | None = None,
    progress: bool = True,
) -> Predictor:
    """Train a predictor from labelled families (and unlabelled graphs for pre-training)."""
    config = config or TrainingConfig()
    if not labelled:
        raise ValueError("train_predictor needs at least one labelled family")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    predictor = Predictor(
        hidden_dim=config.hidden_dim,
        num_gin_layers=config.num_gin_layers,
        ensemble_size=config.ensemble_size,
        seed=config.seed,
        text_table=torch.from_numpy(vocabulary_text_table()),
    )
    graphs = [g for s in labelled for g in s.graphs]
    targets = np.concatenate([rank_normalise(s.values) for s in labelled])
    groups = np.concatenate([np.full(len(s.values), k) for k, s in enumerate(labelled)])
    datas, coarse = _featurise(graphs, progress=progress, desc="featurising labelled graphs")
    extra, _ = _featurise(list(unlabelled), progress=progress, desc="featurising unlabelled graphs")
    timings["featurise_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    pretrain_history = pretrain_encoder(
        predictor.encoder, datas + extra, epochs=config.pretrain_epochs, batch_size=config.batch_size,
        seed=config.seed, max_seconds=60 * config.pretrain_max_minutes, progress=progress,
    )
    timings["pretrain_s"] = time.perf_counter() - t

    t = time.perf_counter()
    supervised_losses = _supervised_encoder_training(predictor, datas, targets, groups, config, progress)
    timings["supervised_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.no_grad():
        z = torch.cat([predictor.encoder(collate(datas[i : i + 512])) for i in range(0, len(datas), 512)])
    predictor.fit_gate(z.numpy(), candidates=config.gmm_candidates, random_state=config.seed)
    if predictor.scaler.num_features:
        predictor.scaler.fit(graph_feature_matrix(graphs, coarse))
    train_regressor(predictor.regressor, predictor.clusterer, z, torch.tensor(targets, dtype=torch.float32),
                    inputs=predictor.regressor_inputs(graphs, z, coarse), epochs=config.regressor_epochs,
                    max_seconds=60 * config.regressor_max_minutes, seed=config.seed)
    timings["gate_and_regressor_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    predictor.training_info = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "families": [{"family": s.family, "task": s.task, "n": len(s.values)} for s in labelled],
        "unlabelled_graphs": len(unlabelled),
        "gmm_components": predictor.clusterer.num_components,
        "pretrain_history": pretrain_history,
        "supervised_final_loss": float(np.mean(supervised_losses[-20:])) if supervised_losses else None,
        "timings": timings,
        "torch": torch.__version__,
    }
    return predictor
