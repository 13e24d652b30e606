"""Encoded architectures and the regressor inputs built from them.

:meth:`Predictor.encode <nasassist_plugins.predictor.Predictor.encode>` returns an
:class:`EncodedArchitectures` (embeddings, regressor inputs and the caller's extra
per-architecture features); the helpers here validate those extra features and assemble
the inputs the mixture-of-experts regressor sees, and give operators outside the vocabulary
an id before their graphs are encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, MutableMapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.errors import PredictorError
from nasassist_plugins.graph import ComputationalGraph, is_known_op
from nasassist_plugins.predictor.features import OP_INDEX
from nasassist_plugins.predictor.op_text import embed_op_texts, nearest_known_op, warn_unknown_once
from nasassist_plugins.predictor.scalers import ExtraFeatureScaler

__all__ = ["EncodedArchitectures", "adopt_features", "feature_matrix", "full_inputs", "register_unknown_ops"]


@dataclass
class EncodedArchitectures:
    """Output of :meth:`Predictor.encode`: embeddings (n, 512), regressor inputs, extra features.

    ``features`` holds the caller's extra per-architecture features (e.g. zero-cost
    proxies), raw, shape (n, k), or ``None``.

    Example::

        encoded = predictor.encode(graphs)
        mean, std = predictor.predict_encoded(encoded.subset([0, 2]))
    """

    embeddings: torch.Tensor
    inputs: torch.Tensor
    features: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray) -> "EncodedArchitectures":
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        features = None if self.features is None else self.features[index]
        return EncodedArchitectures(self.embeddings[index], self.inputs[index], features)


def feature_matrix(features: Any, n: int, names: Sequence[str] | None) -> torch.Tensor | None:
    """Validate caller features: an (n, k) array, or {name: n values} (order kept by ``names``)."""
    if features is None:
        return None
    if isinstance(features, Mapping):
        given = list(features)
        order = names if names else given
        missing = sorted(set(order) - set(given))
        if missing:
            raise PredictorError(f"features lack {missing}: this predictor was fitted with features {order}")
        columns = [np.asarray(features[name], dtype=np.float64).reshape(-1) for name in order]
        matrix = np.column_stack(columns) if columns else np.zeros((n, 0))
    else:
        try:
            matrix = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise PredictorError(f"features must be numbers, an (n, k) array or {{name: values}}: {exc}") from exc
        if matrix.ndim == 1:
            matrix = matrix.reshape(-1, 1)
    if matrix.ndim != 2 or matrix.shape[0] != n:
        raise PredictorError(f"features must have one row per architecture ({n}), got shape {matrix.shape}")
    if np.isinf(matrix).any():
        raise PredictorError("features contain inf; use NaN for a missing value (e.g. a failed proxy)")
    return torch.tensor(matrix, dtype=torch.float32)


def full_inputs(encoded: EncodedArchitectures, extra_scaler: nn.Module, names: Sequence[str] | None) -> torch.Tensor:
    """Regressor inputs: embedding, graph features and (when fitted with them) extra features."""
    k = extra_scaler.num_features
    if k == 0:
        if encoded.features is not None:
            raise PredictorError(
                "features were given but this predictor was not fitted with extra features: "
                "call fit(..., features=...) on labelled architectures first"
            )
        return encoded.inputs
    if encoded.features is None or encoded.features.shape[1] != k:
        got = "none" if encoded.features is None else f"{encoded.features.shape[1]} columns"
        raise PredictorError(
            f"this predictor was fitted with extra features ({names or f'{k} columns'}); "
            f"pass features= with them (got {got})"
        )
    return torch.cat([encoded.inputs, extra_scaler(encoded.features)], dim=1)



def adopt_features(predictor: Any, features: torch.Tensor, names: Sequence[str] | None) -> None:
    """Make room for ``features`` in ``predictor``'s regressor (fit with new extra features)."""
    k = int(features.shape[1])
    current = predictor.extra_scaler.num_features
    if current == k:
        return
    if current != 0:
        raise PredictorError(
            f"this predictor was fitted with {current} extra features; fit got {k} "
            "(start from a predictor without extra features to change them)"
        )
    predictor.regressor.widen_inputs(k)  # new columns start at zero: predictions are unchanged
    predictor.extra_scaler = ExtraFeatureScaler(k)
    predictor.config["extra_features"] = k
    predictor.config["extra_feature_names"] = list(names) if names else None

def register_unknown_ops(graphs: Sequence[ComputationalGraph], unknown_op_ids: MutableMapping[str, int],
                         extend_text_table: Callable[[torch.Tensor], int]) -> None:
    """Give every operator of ``graphs`` outside the vocabulary an id in ``unknown_op_ids``.

    With a sentence encoder, the operator's text embedding is appended to the encoder's
    text table (``extend_text_table`` returns the first new row); without one, the
    operator maps to the nearest known operator (one warning per operator).
    """
    new = sorted({n.op_type for g in graphs for n in g.nodes if not is_known_op(n.op_type)} - set(unknown_op_ids))
    if not new:
        return
    vectors = embed_op_texts(new)
    if vectors is None:
        for op in new:
            replacement = nearest_known_op(op)
            warn_unknown_once(op, replacement)
            unknown_op_ids[op] = OP_INDEX[replacement]
        return
    first = extend_text_table(torch.from_numpy(vectors))
    for k, op in enumerate(new):
        unknown_op_ids[op] = first + k
