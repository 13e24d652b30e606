"""The two zero-shot scoring calls of the planner, each behind one small function.

* Stage 1 scores every candidate of a large pool from its graph alone with the
  predictor's learned part (:func:`encode_graphs`: batched encoding, then
  ``Predictor.score_encoded``: the learned-only score, on the same [0, 1] scale as stage 2).
* Stage 2 re-scores a shortlist from the built *models*
  (:func:`score_models` → ``Predictor.predict(models, example_input=...)``), where the
  predictor may add what only a model gives (training-free proxies on a forward pass).

Switching either scorer means changing one function here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["encode_graphs", "score_encoded", "score_models"]


def encode_graphs(predictor: Any, graphs: Sequence[Any]) -> Any:
    """Stage 1, part 1: encode graphs once (``EncodedArchitectures``: embeddings, regressor inputs)."""
    return predictor.encode(list(graphs))


def score_encoded(predictor: Any, encoded: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stage 1, part 2: the learned zero-shot score ``(mean, std)`` of encoded architectures."""
    result = predictor.score_encoded(encoded, notice=False)  # the learned-only score, on stage 2's scale
    return np.asarray(result.score, dtype=np.float64).reshape(-1), np.asarray(result.std, dtype=np.float64).reshape(-1)


def score_models(predictor: Any, items: Sequence[Any], example_input: Any) -> tuple[np.ndarray, np.ndarray]:
    """Stage 2: the predictor's full zero-shot score ``(mean, std)`` of built models (or graphs)."""
    mean, std = predictor.predict(list(items), example_input=example_input)
    return np.asarray(mean, dtype=np.float64).reshape(-1), np.asarray(std, dtype=np.float64).reshape(-1)
