"""The fused zero-shot score: a training-free anchor plus a learned, novelty-shrunk correction.

For each candidate:

1. **anchor** — the suite signals (:func:`nasassist_plugins.proxies.compute_suite`) are
   ranked, each within the candidates scored together when there are at least
   ``min_population`` of them (AZ-NAS's setting), otherwise against the reference sample
   stored with the weights (so one model alone still gets a score); the anchor is AZ-NAS's
   non-linear sum of log-ranks over the selected signals, turned into a rank score ``a``
   in [0, 1] the same way (within the population, or against the reference's anchors);
2. **correction** — an ensemble of small networks reads the graph embedding, the graph
   features, the signal ranks and ``a`` and predicts the residual ``delta`` of the true
   rank over ``a``; it was trained with a pairwise ranking loss inside each benchmark
   (family, task), on rank targets;
3. **shrinkage** — the correction is weighted by ``lambda * (1 - novelty)^gamma``, where
   the novelty is a calibrated out-of-distribution measure: the fraction of training
   architectures whose embedding is more typical under the GMM of the training embeddings
   (uniform on [0, 1] for architectures like the training ones, near 1 for unlike ones). A
   graph unlike every training family is scored by its anchor;
4. **uncertainty** — ``sqrt(sigma0^2 + (kappa * novelty)^2 + w^2 * spread^2)``, with
   ``sigma0`` and ``kappa`` fitted on leave-family-out residuals so that ``score ± std``
   covers the stated fraction of held-out architectures (see ``TRAINING.md``).

The score is ``clip(a + w * delta, 0, 1)``: a rank score (0 worst .. 1 best).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.proxies.aggregate import log_rank_aggregate, signal_ranks, spectral_weights
from nasassist_plugins.proxies.suite import SUITE_SIGNALS

__all__ = [
    "CorrectionHead",
    "FusionSettings",
    "ReferenceSet",
    "ZeroShotScores",
    "anchor_ranks",
]


@dataclass
class FusionSettings:
    """Settings of the fusion (stored in the weights header; chosen by the worst held-out family)."""

    anchor_signals: list[str] = field(default_factory=lambda: ["expressivity", "progressivity", "trainability", "flops"])
    anchor_weighting: str = "subset"  # "subset": weight 1 each; "spectral": label-free spectral weights
    correction_weight: float = 1.0  # lambda
    novelty_power: float = 1.0  # gamma
    sigma0: float = 0.2
    kappa: float = 0.1
    min_population: int = 20
    learned_sigma0: float = 0.25  # floor of the learned-only score's uncertainty
    coverage: float = 0.0  # measured fraction of held-out architectures within score ± std

    def to_dict(self) -> dict[str, Any]:
        return {
            "anchor_signals": list(self.anchor_signals), "anchor_weighting": str(self.anchor_weighting),
            "correction_weight": float(self.correction_weight),
            "novelty_power": float(self.novelty_power), "sigma0": float(self.sigma0), "kappa": float(self.kappa),
            "min_population": int(self.min_population), "learned_sigma0": float(self.learned_sigma0),
            "coverage": float(self.coverage),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "FusionSettings":
        return cls(**{k: data[k] for k in cls().to_dict() if k in data})


@dataclass
class ZeroShotScores:
    """Scores of a batch of candidates (all arrays have one entry per candidate).

    Attributes:
        score: rank score in [0, 1] (0 worst .. 1 best); fused, learned-only or, after
            :meth:`Predictor.fit`, the study surrogate's prediction on the fitted scale.
        std: calibrated uncertainty of ``score``.
        novelty: out-of-distribution measure in [0, 1] (near 1: unlike every training family).
        anchor: training-free anchor rank score (NaN where no suite signals were available).
        learned: the learned part's own score (graph-only predictor).
        kind: ``"fused"``, ``"learned-only"`` or ``"surrogate"`` per candidate; never mix
            kinds in one ranking column.
        signals: the suite signals used (one dict per candidate; empty for graphs alone).
    """

    score: np.ndarray
    std: np.ndarray
    novelty: np.ndarray
    anchor: np.ndarray
    learned: np.ndarray
    kind: list[str]
    signals: list[dict[str, float]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(len(self.score))


class ReferenceSet(nn.Module):
    """Reference sample of the suite signals and of the training embeddings' typicality.

    Buffers: ``values`` (R, k) suite signals of reference architectures (pooled over the
    training families), ``anchors`` (R,) their anchors against themselves (sorted), and
    ``loglik`` (Q,) sorted GMM log-likelihoods of the training embeddings (novelty).
    """

    def __init__(self, size: int = 0, num_signals: int = len(SUITE_SIGNALS), quantiles: int = 0) -> None:
        super().__init__()
        self.register_buffer("values", torch.zeros(size, num_signals))
        self.register_buffer("anchors", torch.zeros(size))
        self.register_buffer("loglik", torch.zeros(quantiles))

    def novelty(self, loglik: np.ndarray) -> np.ndarray:
        """Fraction of training embeddings more typical (higher log-likelihood) than each one."""
        ref = self.loglik.numpy().astype(np.float64)
        if ref.size == 0:
            return np.zeros(len(loglik))
        return 1.0 - np.searchsorted(ref, np.asarray(loglik, dtype=np.float64), side="right") / ref.size


def anchor_weights(ranks: np.ndarray, mask: np.ndarray, weighting: str) -> np.ndarray:
    """Per-signal weights of the anchor: 1 on the selected signals, or their spectral weights
    estimated from the population's ranks (:func:`~nasassist_plugins.proxies.aggregate.spectral_weights`)."""
    weights = mask.astype(np.float64)
    if weighting == "spectral" and mask.any():
        weights[mask] = spectral_weights(ranks[:, mask])
    return weights


def anchor_ranks(values: np.ndarray, mask: np.ndarray, reference: ReferenceSet | None,
                 min_population: int, context: np.ndarray | None = None,
                 weighting: str = "subset") -> tuple[np.ndarray, np.ndarray]:
    """``(signal ranks (n, k), anchor rank score (n,))`` of suite signal rows.

    The population is ``values`` plus the ``context`` rows (other candidates of the same
    search, e.g. a study's earlier trials: ranked with, not scored). With at least
    ``min_population`` rows (or no reference), every signal and the anchor are ranked
    within it, as AZ-NAS does; otherwise each row is placed against ``reference`` (and
    spectral weights come from the reference population).
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n = values.shape[0]
    population = values
    if context is not None and len(context):
        population = np.vstack([values, np.atleast_2d(np.asarray(context, dtype=np.float64))])
    use_batch = reference is None or reference.values.shape[0] == 0 or len(population) >= min_population
    if use_batch:
        ranks = signal_ranks(population)
        anchor = log_rank_aggregate(ranks, anchor_weights(ranks, mask, weighting))
        return ranks[:n], _normalised_ranks(anchor)[:n]
    ref = reference.values.numpy().astype(np.float64)
    ranks = signal_ranks(values, ref)
    anchor = log_rank_aggregate(ranks, anchor_weights(signal_ranks(ref), mask, weighting))
    ref_anchors = reference.anchors.numpy().astype(np.float64)
    return ranks, signal_ranks(anchor[:, None], ref_anchors[:, None])[:, 0]


def reference_anchors(reference: np.ndarray, mask: np.ndarray, weighting: str) -> np.ndarray:
    """Sorted anchors of the reference rows against themselves (what a single model's anchor is placed in)."""
    ranks = signal_ranks(reference, reference)
    return np.sort(log_rank_aggregate(ranks, anchor_weights(signal_ranks(reference), mask, weighting)))


def _normalised_ranks(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    if len(x) < 2:
        return np.full(len(x), 0.5)
    return (rankdata(x) - 1) / (len(x) - 1)


class _Member(nn.Module):
    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden // 2), nn.GELU(), nn.Linear(hidden // 2, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class CorrectionHead(nn.Module):
    """Ensemble predicting the residual of the true rank over the anchor; ``forward`` -> (mean, spread)."""

    def __init__(self, in_dim: int = 1, members: int = 5, hidden: int = 128) -> None:
        super().__init__()
        self.in_dim = int(in_dim)
        self.members = nn.ModuleList(_Member(in_dim, hidden) for _ in range(members))

    def member_outputs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.member_outputs(x)
        return out.mean(0), out.std(0, unbiased=False)


def correction_inputs(embeddings: torch.Tensor, graph_features: torch.Tensor, ranks: np.ndarray,
                      anchor: np.ndarray) -> torch.Tensor:
    """Correction-head input: embedding, standardised graph features, signal ranks, anchor."""
    extra = torch.tensor(np.column_stack([ranks, anchor]), dtype=torch.float32)
    return torch.cat([embeddings, graph_features, extra], dim=1)


def fused(anchor: np.ndarray, delta: np.ndarray, spread: np.ndarray, novelty: np.ndarray,
          settings: FusionSettings) -> tuple[np.ndarray, np.ndarray]:
    """``(score, std)`` from the anchor, the correction and the novelty (module docstring)."""
    w = settings.correction_weight * np.clip(1.0 - novelty, 0.0, 1.0) ** settings.novelty_power
    score = np.clip(anchor + w * delta, 0.0, 1.0)
    std = np.sqrt(settings.sigma0 ** 2 + (settings.kappa * novelty) ** 2 + (w * spread) ** 2)
    return score, std


def is_finite_row(row: Sequence[float]) -> bool:
    return all(isinstance(v, float) and not math.isnan(v) for v in row)
