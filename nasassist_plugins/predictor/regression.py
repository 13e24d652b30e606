"""Training of the mixture-of-experts regressor (used by ``Predictor.fit`` and by training)."""

from __future__ import annotations

import logging
import time

import torch
import torch.nn as nn

from nasassist_plugins.predictor.clustering import SoftClusterer
from nasassist_plugins.predictor.moe import MixtureOfExpertsRegressor

__all__ = ["pairwise_rank_loss", "train_regressor"]

_logger = logging.getLogger(__name__)


def pairwise_rank_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean logistic loss over every pair of architectures whose targets differ (RankNet)."""
    diff_t = target.unsqueeze(0) - target.unsqueeze(1)
    diff_p = pred.unsqueeze(0) - pred.unsqueeze(1)
    mask = diff_t.abs() > 1e-6
    if not mask.any():
        return pred.sum() * 0.0
    return nn.functional.softplus(-torch.sign(diff_t[mask]) * diff_p[mask]).mean()


def train_regressor(
    regressor: MixtureOfExpertsRegressor,
    clusterer: SoftClusterer,
    z: torch.Tensor,
    target: torch.Tensor,
    *,
    inputs: torch.Tensor | None = None,
    epochs: int = 150,
    lr: float = 3e-3,
    batch_size: int = 256,
    max_seconds: float | None = None,
    seed: int = 0,
    rank_weight: float = 0.5,
) -> None:
    """Train every ensemble member on bootstrap resamples (MSE + pairwise ranking loss).

    ``z`` (embeddings) drives the gate; ``inputs`` (default ``z``) is what the experts see.
    """
    generator = torch.Generator().manual_seed(seed)
    x = z if inputs is None else inputs
    with torch.no_grad():
        gates = clusterer.memberships(z)
        novelty = clusterer.novelty(z)
    n = z.shape[0]
    started = time.perf_counter()
    budget = None if max_seconds is None else max_seconds / max(len(regressor.members), 1)
    for member in regressor.members:
        member.train()
        optimizer = torch.optim.AdamW(member.parameters(), lr=lr, weight_decay=1e-4)
        sample = torch.randint(0, n, (n,), generator=generator)  # bootstrap: members see different data
        member_start = time.perf_counter()
        for _ in range(epochs):
            order = sample[torch.randperm(n, generator=generator)]
            for start in range(0, n, batch_size):
                idx = order[start : start + batch_size]
                pred, _ = member(x[idx], gates[idx], novelty[idx])
                loss = nn.functional.mse_loss(pred, target[idx]) + rank_weight * pairwise_rank_loss(pred, target[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            if budget is not None and time.perf_counter() - member_start > budget:
                break
        member.eval()
    _logger.debug("trained %d regressor members in %.2fs", len(regressor.members), time.perf_counter() - started)
