"""Soft clusters of graph embeddings: a spherical Gaussian mixture chosen by BIC.

scikit-learn's ``GaussianMixture`` (EM) is fitted once; its parameters are then kept
as tensors so that memberships (the mixture-of-experts gate) and a novelty score are
computed in torch, differentiably, at prediction time — no scikit-learn object is
pickled into the weights file.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn


class SoftClusterer(nn.Module):
    """Spherical GMM memberships and log-likelihoods of embeddings.

    Buffers: ``means`` (K, D), ``variances`` (K,), ``log_weights`` (K,), and the 5th/50th
    percentile of the training log-likelihoods, used to turn a log-likelihood into a
    novelty in [0, 1] (0: typical of the training embeddings, 1: far from every cluster).
    """

    def __init__(self, num_components: int = 1, dim: int = 512) -> None:
        super().__init__()
        self.register_buffer("means", torch.zeros(num_components, dim))
        self.register_buffer("variances", torch.ones(num_components))
        self.register_buffer("log_weights", torch.full((num_components,), -math.log(num_components)))
        self.register_buffer("loglik_reference", torch.tensor([-1.0, 0.0]))

    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    def fit(
        self,
        embeddings: np.ndarray,
        candidates: Sequence[int] = (2, 4, 6, 8, 12, 16),
        random_state: int = 0,
        max_samples: int = 20000,
    ) -> "SoftClusterer":
        """Fit spherical GMMs with each candidate size and keep the one with the lowest BIC."""
        from sklearn.mixture import GaussianMixture

        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"need at least 2 embeddings of shape (n, d) to cluster, got {x.shape}")
        if x.shape[0] > max_samples:
            x = x[np.random.default_rng(random_state).choice(x.shape[0], max_samples, replace=False)]
        best, best_bic = None, math.inf
        for k in sorted({int(c) for c in candidates if 1 <= c <= x.shape[0]}):
            gmm = GaussianMixture(k, covariance_type="spherical", random_state=random_state, reg_covar=1e-4)
            gmm.fit(x)
            bic = gmm.bic(x)
            if bic < best_bic:
                best, best_bic = gmm, bic
        assert best is not None
        k, d = best.means_.shape
        self.means = torch.tensor(best.means_, dtype=torch.float32)
        self.variances = torch.tensor(best.covariances_, dtype=torch.float32)
        self.log_weights = torch.tensor(np.log(best.weights_), dtype=torch.float32)
        loglik = self.log_likelihood(torch.tensor(x, dtype=torch.float32)).numpy()
        self.loglik_reference = torch.tensor(np.percentile(loglik, [5, 50]), dtype=torch.float32)
        return self

    def _component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        d = z.shape[1]
        sq = torch.cdist(z, self.means).pow(2)  # (B, K)
        return self.log_weights - 0.5 * (sq / self.variances + d * torch.log(2 * math.pi * self.variances))

    def memberships(self, z: torch.Tensor) -> torch.Tensor:
        """Posterior probability of each component (rows sum to 1)."""
        return torch.softmax(self._component_log_prob(z), dim=1)

    def log_likelihood(self, z: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(self._component_log_prob(z), dim=1)

    def novelty(self, z: torch.Tensor) -> torch.Tensor:
        """0 for embeddings as likely as the median training one, rising to 1 far below the 5th percentile."""
        low, mid = self.loglik_reference[0], self.loglik_reference[1]
        scale = torch.clamp(mid - low, min=1e-3)
        return torch.sigmoid(2.0 * (mid - self.log_likelihood(z)) / scale - 2.0).unsqueeze(1)
