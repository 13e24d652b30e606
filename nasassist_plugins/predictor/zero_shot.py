"""The predictor's zero-shot score: suite rows, novelty and the fused score.

:meth:`Predictor.score <nasassist_plugins.predictor.Predictor.score>` and its variants
delegate here. The score of an architecture with training-free suite signals is the fused
score of :mod:`.fusion` (anchor plus a learned correction shrunk toward it by novelty);
without signals it is the learned part alone (with a one-time notice); after
:meth:`Predictor.fit` it is the study surrogate's prediction.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.errors import PredictorError
from nasassist_plugins.predictor.encoded import EncodedArchitectures
from nasassist_plugins.predictor.fusion import ZeroShotScores, anchor_ranks, fused
from nasassist_plugins.proxies.suite import SUITE_SIGNALS, SuiteResult, compute_suite

if TYPE_CHECKING:
    from nasassist_plugins.predictor.predictor import Predictor

__all__ = ["novelty_encoded", "score_encoded", "suite_row", "suite_rows"]

_logger = logging.getLogger(__name__)

#: Printed once per process when graphs alone are scored by a predictor that has a fused score.
_GRAPH_ONLY_NOTICE = (
    "scoring graphs without their models: the learned part alone is used (no training-free anchor); "
    "pass nn.Module candidates with example_input=..., or suite=... values, for the fused zero-shot score"
)
_notice_shown = False


def _graph_only_notice() -> None:
    global _notice_shown
    if not _notice_shown:
        _notice_shown = True
        _logger.warning(_GRAPH_ONLY_NOTICE)


def suite_row(entry: Any) -> list[float] | None:
    """One suite row (values in :data:`SUITE_SIGNALS` order) from a SuiteResult, a mapping or ``None``."""
    if entry is None:
        return None
    if isinstance(entry, SuiteResult):
        entry = entry.values
    if not isinstance(entry, Mapping):
        raise PredictorError(f"suite entries must be SuiteResult, {{signal: value}} or None, got {type(entry).__name__}")
    unknown = sorted(set(entry) - set(SUITE_SIGNALS))
    if unknown:
        raise PredictorError(f"unknown suite signals {unknown}; expected {list(SUITE_SIGNALS)}")
    row = []
    for name in SUITE_SIGNALS:
        value = entry.get(name)
        try:
            row.append(float("nan") if value is None else float(value))
        except (TypeError, ValueError):
            raise PredictorError(f"suite signal {name!r} must be a number, got {value!r}") from None
    return row


def suite_rows(predictor: "Predictor", items: Sequence[Any], example_input: Any, batch: torch.Tensor | None,
               suite: Sequence[Any] | None, seed: int) -> list[list[float] | None]:
    """Suite rows of ``items``: the given ``suite`` values, else the suite run on each module."""
    if suite is not None:
        return [suite_row(r) for r in suite]
    if not predictor.has_fusion or predictor.is_surrogate:
        return [None] * len(items)
    rows: list[list[float] | None] = []
    for item in items:
        if isinstance(item, nn.Module):
            result = compute_suite(item, batch, example_input=example_input, seed=seed)
            rows.append([result.values[name] for name in SUITE_SIGNALS])
        else:
            rows.append(None)
    return rows


@torch.no_grad()
def novelty_encoded(predictor: "Predictor", encoded: EncodedArchitectures) -> np.ndarray:
    """Calibrated novelty in [0, 1] of encoded architectures (see :class:`.fusion.ReferenceSet`)."""
    z = encoded.embeddings
    if z.shape[0] == 0:
        return np.zeros(0)
    if predictor.reference.loglik.numel():
        return predictor.reference.novelty(predictor.clusterer.log_likelihood(z).numpy())
    return predictor.clusterer.novelty(z).squeeze(1).numpy().astype(np.float64)


#: Share of [0, 1] kept for raw predictions outside the rank range (half below 0, half above 1).
_TAIL = 0.02


def bounded_rank(raw: np.ndarray) -> np.ndarray:
    """The learned part's raw rank prediction mapped into (0, 1), strictly increasing.

    The learned part is trained on ranks in [0, 1] but can predict outside that range
    (an untrained or far out-of-distribution predictor often does). Clipping would tie
    every such prediction at 0 or 1 and silently erase their order (and every layer
    relevance computed from them); instead [0, 1] is scaled into [tail/2, 1 - tail/2] and
    values beyond it approach 0 or 1 along a logistic tail (unit scale).
    """
    x = np.asarray(raw, dtype=np.float64)
    inside = _TAIL / 2 + (1.0 - _TAIL) * np.clip(x, 0.0, 1.0)
    from scipy.special import expit

    below = _TAIL * expit(np.minimum(x, 0.0))  # tail/2 at 0, toward 0 like a logistic
    above = 1.0 - _TAIL * expit(-np.maximum(x - 1.0, 0.0))
    return np.where(x < 0.0, below, np.where(x > 1.0, above, inside))


@torch.no_grad()
def score_encoded(predictor: "Predictor", encoded: EncodedArchitectures,
                  suite_rows: Sequence[Sequence[float] | None] | None = None, *, notice: bool = True,
                  context: Sequence[Any] | None = None, population: str = "auto") -> ZeroShotScores:
    """:meth:`Predictor.score` for architectures already passed through :meth:`Predictor.encode`."""
    if population not in ("auto", "batch", "reference"):
        raise PredictorError(f"population must be 'auto', 'batch' or 'reference', got {population!r}")
    n = len(encoded)
    rows = list(suite_rows) if suite_rows is not None else [None] * n
    if len(rows) != n:
        raise PredictorError(f"{len(rows)} suite rows for {n} architectures")
    raw, raw_std = predictor.predict_encoded(encoded)
    novelty = novelty_encoded(predictor, encoded)
    anchor = np.full(n, np.nan)
    signals = [dict(zip(SUITE_SIGNALS, r)) if r is not None else {} for r in rows]
    if predictor.is_surrogate:
        return ZeroShotScores(raw, raw_std, novelty, anchor, raw, ["surrogate"] * n, signals)
    settings = predictor.fusion_settings
    raw, raw_std = raw.astype(np.float64), raw_std.astype(np.float64)
    learned = bounded_rank(raw)
    score = learned.copy()
    std = np.sqrt(raw_std ** 2 + settings.learned_sigma0 ** 2)
    kind = ["learned-only"] * n
    idx = [i for i, r in enumerate(rows) if r is not None]
    if predictor.has_fusion and idx:
        values = np.array([rows[i] for i in idx], dtype=np.float64)
        mask = np.array([name in settings.anchor_signals for name in SUITE_SIGNALS])
        extra = [r for r in (suite_row(c) for c in (context or ())) if r is not None]
        minimum = {"auto": settings.min_population, "batch": 1, "reference": 10**12}[population]
        ranks, a = anchor_ranks(values, mask, predictor.reference, minimum,
                                np.array(extra, dtype=np.float64) if extra else None, settings.anchor_weighting)
        x = torch.cat([encoded.inputs[idx], torch.tensor(np.column_stack([ranks, a]), dtype=torch.float32)], dim=1)
        delta, spread = predictor.correction(x)
        s, sd = fused(a, delta.numpy().astype(np.float64), spread.numpy().astype(np.float64), novelty[idx], settings)
        score[idx], std[idx], anchor[idx] = s, sd, a
        for i in idx:
            kind[i] = "fused"
    if predictor.has_fusion and notice and len(idx) < n:
        _graph_only_notice()
    return ZeroShotScores(score, std, novelty, anchor, learned, kind, signals)
