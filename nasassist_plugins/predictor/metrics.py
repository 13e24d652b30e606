"""Ranking metrics used to evaluate predictors: Spearman, Kendall tau, NDCG@k, top-k% precision."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, spearmanr


def ndcg_at_k(predicted: np.ndarray, true: np.ndarray, k: int = 10) -> float:
    """NDCG@k with the true accuracy as relevance (thesis definition): DCG of the k
    architectures ranked best by the prediction over the DCG of the true top k.

    Relevance must be non-negative; targets that can be negative (a negative L2 error)
    are shifted so that the worst architecture has relevance 0.
    """
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    if true.size and true.min() < 0:
        true = true - true.min()
    k = min(k, len(true))
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float((true[np.argsort(-predicted)[:k]] * discount).sum())
    idcg = float((np.sort(true)[::-1][:k] * discount).sum())
    return dcg / idcg if idcg != 0 else float("nan")


def precision_at_top(predicted: np.ndarray, true: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the predicted top ``fraction`` that is in the true top ``fraction``."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    k = max(1, int(round(fraction * len(true))))
    top_pred = set(np.argsort(-predicted)[:k].tolist())
    top_true = set(np.argsort(-true)[:k].tolist())
    return len(top_pred & top_true) / k


def ranking_metrics(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """All four metrics for one set of architectures."""
    predicted, true = np.asarray(predicted, float), np.asarray(true, float)
    return {
        "spearman": float(spearmanr(predicted, true).statistic),
        "kendall": float(kendalltau(predicted, true).statistic),
        "ndcg@10": ndcg_at_k(predicted, true, 10),
        "precision@10%": precision_at_top(predicted, true, 0.1),
        "n": int(len(true)),
    }
