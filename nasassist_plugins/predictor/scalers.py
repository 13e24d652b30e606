"""Standardisation of the regressor's extra inputs (graph features, caller features)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

__all__ = ["ExtraFeatureScaler", "FeatureScaler"]


class FeatureScaler(nn.Module):
    """Standardises extra per-architecture features with statistics of the training set."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    @property
    def num_features(self) -> int:
        return int(self.mean.shape[0])

    def fit(self, features: np.ndarray) -> "FeatureScaler":
        self.mean = torch.tensor(features.mean(0), dtype=torch.float32)
        self.std = torch.tensor(np.maximum(features.std(0), 1e-6), dtype=torch.float32)
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return ((features - self.mean) / self.std).clamp(-6.0, 6.0)


class ExtraFeatureScaler(FeatureScaler):
    """Standardises caller-supplied features (e.g. zero-cost proxies) after a signed log.

    Proxies span many orders of magnitude (synflow reaches 1e30 on large networks), so
    each value goes through ``sign(x) * log1p(|x|)`` before standardising; a missing
    value (NaN, e.g. a proxy that failed) becomes the training mean (0 after scaling).
    """

    @staticmethod
    def _signed_log(features: torch.Tensor | np.ndarray):
        if isinstance(features, np.ndarray):
            return np.sign(features) * np.log1p(np.abs(features))
        return torch.sign(features) * torch.log1p(features.abs())

    def fit(self, features: np.ndarray) -> "ExtraFeatureScaler":
        logged = self._signed_log(np.asarray(features, dtype=np.float64))
        mean = np.nanmean(logged, axis=0) if np.isfinite(logged).any() else np.zeros(logged.shape[1])
        std = np.nanstd(logged, axis=0) if np.isfinite(logged).any() else np.ones(logged.shape[1])
        self.mean = torch.tensor(np.nan_to_num(mean), dtype=torch.float32)
        self.std = torch.tensor(np.maximum(np.nan_to_num(std, nan=1.0), 1e-6), dtype=torch.float32)
        return self

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.nan_to_num(super().forward(self._signed_log(features)), nan=0.0)
