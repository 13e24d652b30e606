"""The public zero-shot performance predictor.

Path of a candidate: model -> :func:`~nasassist_plugins.adapters.from_torch` ->
:func:`.coarsen` -> :func:`.graph_to_data` -> :class:`.GraphEncoder` (512-d embedding)
-> :class:`.SoftClusterer` (GMM memberships, novelty) ->
:class:`.MixtureOfExpertsRegressor` (mean, std).

Scores of the shipped weights are on a normalised scale (per-family rank scores: 0 is the
worst architecture of a training family, 1 the best); after :meth:`Predictor.fit` on a
study's own results, predictions come back on the scale of the values given to ``fit``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.errors import PredictorError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor import persistence, zero_shot
from nasassist_plugins.predictor.arguments import check_fit_arguments, check_items
from nasassist_plugins.predictor.clustering import SoftClusterer
from nasassist_plugins.predictor.coarsen import coarsen
from nasassist_plugins.predictor.encoded import (
    EncodedArchitectures, adopt_features, feature_matrix, full_inputs, register_unknown_ops)
from nasassist_plugins.predictor.encoder import EMBEDDING_DIM, GraphEncoder
from nasassist_plugins.predictor.features import collate, graph_to_data
from nasassist_plugins.predictor.fusion import CorrectionHead, FusionSettings, ReferenceSet, ZeroShotScores
from nasassist_plugins.predictor.graph_features import NUM_GRAPH_FEATURES, graph_feature_matrix
from nasassist_plugins.predictor.moe import MixtureOfExpertsRegressor
from nasassist_plugins.predictor.persistence import read_weights
from nasassist_plugins.predictor.regression import train_regressor
from nasassist_plugins.predictor.scalers import ExtraFeatureScaler, FeatureScaler
from nasassist_plugins.proxies.suite import SUITE_SIGNALS

__all__ = ["EncodedArchitectures", "Predictor", "PredictorError"]

_SURROGATE_DESCRIPTION = "values given to fit() (study surrogate, not a zero-shot score)"


class Predictor:
    """Zero-shot architecture performance predictor (scikit-learn style ``fit``/``predict``).

    With the shipped weights, :meth:`predict` on ``nn.Module`` candidates returns the
    **fused zero-shot score** (see :mod:`.fusion`): the training-free suite's anchor plus a
    learned correction shrunk toward the anchor for novel architectures, as a rank score in
    [0, 1] with a calibrated uncertainty; :meth:`score` also returns the novelty, the anchor
    and the learned part. Graphs alone (no model to run) get the learned part only, with a
    one-time notice. After :meth:`fit` on a study's results, predictions are on the scale
    of the fitted values (``kind="surrogate"``).

    Example::

        predictor = Predictor.load_default()
        mean, std = predictor.predict([model_a, model_b], example_input=(1, 3, 32, 32))
        details = predictor.score([model_a], example_input=(1, 3, 32, 32))
        details.score, details.std, details.novelty, details.kind

    Args:
        hidden_dim: GIN hidden width (default 64).
        num_gin_layers: GIN layers (default 6).
        num_experts: mixture-of-experts heads of the learned part (default 4).
        ensemble_size: ensemble members of the learned part (default 5).
        graph_features: append GRAF-style graph features to the embedding (default True).
        extra_features: caller features the learned part was fitted with (default 0).
        extra_feature_names: their names (default None).
        seed: seed for weight initialisation (default 0).
        text_table: operator text embeddings (default: built from the vocabulary).
        fusion: whether the predictor holds a fused score (reference set and correction
            head; default False: a learned-only predictor).
        reference_size: rows of the suite reference sample (default 0).
        novelty_quantiles: stored training log-likelihoods for the novelty (default 0).
        correction_members: ensemble members of the correction head (default 5).
        correction_hidden: width of the correction head (default 128).

    Loaded predictors take every size from their weights file.
    """

    def __init__(
        self,
        hidden_dim: int = 64,
        num_gin_layers: int = 6,
        num_experts: int = 4,
        ensemble_size: int = 5,
        graph_features: bool = True,
        extra_features: int = 0,
        extra_feature_names: Sequence[str] | None = None,
        seed: int = 0,
        text_table: torch.Tensor | None = None,
        fusion: bool = False,
        reference_size: int = 0,
        novelty_quantiles: int = 0,
        correction_members: int = 5,
        correction_hidden: int = 128,
    ) -> None:
        torch.manual_seed(seed)
        self.config: dict[str, Any] = {
            "hidden_dim": hidden_dim,
            "num_gin_layers": num_gin_layers,
            "num_experts": num_experts,
            "ensemble_size": ensemble_size,
            "graph_features": graph_features,
            "extra_features": extra_features,
            "extra_feature_names": list(extra_feature_names) if extra_feature_names else None,
            "fusion": bool(fusion),
            "reference_size": int(reference_size),
            "novelty_quantiles": int(novelty_quantiles),
            "correction_members": int(correction_members),
            "correction_hidden": int(correction_hidden),
        }
        self.encoder = GraphEncoder(hidden_dim=hidden_dim, num_gin_layers=num_gin_layers, text_table=text_table)
        self.clusterer = SoftClusterer(num_experts, EMBEDDING_DIM)
        self.scaler = FeatureScaler(NUM_GRAPH_FEATURES if graph_features else 0)
        self.extra_scaler = ExtraFeatureScaler(extra_features)
        self.regressor = MixtureOfExpertsRegressor(self._regressor_dim, num_experts, ensemble_size)
        self.reference = ReferenceSet(reference_size if fusion else 0, len(SUITE_SIGNALS), novelty_quantiles)
        self.correction = CorrectionHead(self._correction_dim, correction_members if fusion else 0, correction_hidden)
        self.fusion_settings = FusionSettings()
        # predictions are (raw - offset) / scale in the regressor's space
        self.target_offset = 0.0
        self.target_scale = 1.0
        self.target_description = "normalised rank score (0 worst .. 1 best of a training family)"
        self.unknown_op_ids: dict[str, int] = {}
        self.training_info: dict[str, Any] = {}
        self._eval()

    # ------------------------------------------------------------------ conversion
    @property
    def _regressor_dim(self) -> int:
        return EMBEDDING_DIM + self.scaler.num_features + self.extra_scaler.num_features

    @property
    def _correction_dim(self) -> int:
        return EMBEDDING_DIM + self.scaler.num_features + len(SUITE_SIGNALS) + 1

    @property
    def has_fusion(self) -> bool:
        """Whether the fused score is available (weights trained with the training-free anchor)."""
        return bool(self.config.get("fusion"))

    @property
    def is_surrogate(self) -> bool:
        """Whether :meth:`fit` adapted the learned part to a study's values (no zero-shot score then)."""
        return self.target_description == _SURROGATE_DESCRIPTION

    def _modules(self) -> tuple[tuple[str, nn.Module], ...]:
        return (("encoder", self.encoder), ("clusterer", self.clusterer), ("scaler", self.scaler),
                ("extra_scaler", self.extra_scaler), ("regressor", self.regressor),
                ("reference", self.reference), ("correction", self.correction))

    # ------------------------------------------------------------------ extra features
    def _feature_matrix(self, features: Any, n: int) -> torch.Tensor | None:
        """Validate caller features: an (n, k) array, or {name: n values} (see :func:`.encoded.feature_matrix`)."""
        return feature_matrix(features, n, self.config.get("extra_feature_names"))

    def _full_inputs(self, encoded: EncodedArchitectures) -> torch.Tensor:
        """Regressor inputs: embedding, graph features and (when fitted with them) extra features."""
        return full_inputs(encoded, self.extra_scaler, self.config.get("extra_feature_names"))

    def _adopt_features(self, features: torch.Tensor, names: Sequence[str] | None) -> None:
        adopt_features(self, features, names)

    def _eval(self) -> None:
        for _, module in self._modules():
            module.eval()

    def regressor_inputs(
        self, graphs: Sequence[ComputationalGraph], z: torch.Tensor, coarse: Sequence[ComputationalGraph] | None = None
    ) -> torch.Tensor:
        """Embeddings, plus the standardised GRAF-style graph features when enabled."""
        if self.scaler.num_features == 0:
            return z
        features = torch.tensor(graph_feature_matrix(graphs, coarse), dtype=torch.float32)
        return torch.cat([z, self.scaler(features)], dim=1)

    def to_graphs(self, items: Iterable[Any], example_input: Any = None) -> list[ComputationalGraph]:
        """Graphs of the items (ComputationalGraphs pass through; modules are traced)."""
        from nasassist_plugins.adapters.torch_adapter import from_torch

        graphs = []
        for k, item in enumerate(items):
            if isinstance(item, ComputationalGraph):
                graphs.append(item)
            elif isinstance(item, nn.Module):
                if example_input is None:
                    raise PredictorError(
                        f"item {k} is a {type(item).__name__} module: pass example_input (a tensor or shape) to trace it"
                    )
                graphs.append(from_torch(item, example_input))
            else:
                raise PredictorError(
                    f"item {k} is a {type(item).__name__}: predict/embed/fit take ComputationalGraph or nn.Module items"
                )
        for g in graphs:
            if g.num_nodes == 0:
                raise PredictorError(f"graph {g.name!r} is empty: it has no nodes to score")
        return graphs

    def _register_unknown_ops(self, graphs: Sequence[ComputationalGraph]) -> None:
        register_unknown_ops(graphs, self.unknown_op_ids, self.encoder.nodes.extend_text_table)

    @torch.no_grad()
    def _embed_coarse(self, coarse: Sequence[ComputationalGraph], batch_size: int) -> torch.Tensor:
        """Embeddings of already coarsened graphs."""
        if not coarse:
            return torch.zeros((0, EMBEDDING_DIM))
        self._register_unknown_ops(coarse)
        self._eval()
        datas = [graph_to_data(g, self.unknown_op_ids) for g in coarse]
        return torch.cat([self.encoder(collate(datas[i : i + batch_size])) for i in range(0, len(datas), batch_size)])

    # ------------------------------------------------------------------ inference
    def embed(self, items: Iterable[Any], example_input: Any = None, batch_size: int = 512) -> np.ndarray:
        """512-d embeddings, shape (n, 512)."""
        items = check_items("embed", items, batch_size=batch_size)
        graphs = self.to_graphs(items, example_input)
        return self._embed_coarse([coarsen(g) for g in graphs], batch_size).numpy()

    def encode(
        self, items: Iterable[Any], example_input: Any = None, batch_size: int = 512, features: Any = None
    ) -> EncodedArchitectures:
        """Encode architectures once (embeddings and regressor inputs) for repeated predict/fit.

        The encoder is frozen during :meth:`fit`, so a caller that predicts and fine-tunes
        on the same architectures many times (a sampler, a few-shot benchmark) pays for
        graph conversion and encoding only once. ``features`` are optional extra
        per-architecture features (see :meth:`fit`).
        """
        items = check_items("encode", items, batch_size=batch_size)
        return self._encode_graphs(self.to_graphs(items, example_input), batch_size, features)

    def predict(
        self,
        items: Iterable[Any],
        example_input: Any = None,
        batch_size: int = 512,
        features: Any = None,
        *,
        batch: torch.Tensor | None = None,
        suite: Sequence[Any] | None = None,
        context: Sequence[Any] | None = None,
        population: str = "auto",
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score and its uncertainty (standard deviation) for every item: ``(score, std)``.

        The same as :meth:`score` without the details: on ``nn.Module`` items of a predictor
        with a fused score, the fused rank score in [0, 1]; on graphs alone, the learned part
        (one-time notice); after :meth:`fit`, the study surrogate's prediction. A predictor
        fitted with extra ``features`` (e.g. zero-cost proxies) needs the same features, in
        the same order, for the items scored.
        """
        items = check_items("predict", items, batch_size=batch_size, seed=seed)
        result = self.score(items, example_input, batch_size=batch_size, features=features, batch=batch,
                            suite=suite, context=context, population=population, seed=seed)
        return result.score, result.std

    def score(
        self,
        items: Iterable[Any],
        example_input: Any = None,
        *,
        batch_size: int = 512,
        features: Any = None,
        batch: torch.Tensor | None = None,
        suite: Sequence[Any] | None = None,
        context: Sequence[Any] | None = None,
        population: str = "auto",
        seed: int = 0,
    ) -> ZeroShotScores:
        """Fused zero-shot scores with their details (novelty, anchor, learned part, kind).

        Args:
            items: ``nn.Module`` instances (traced with ``example_input`` and run by the
                training-free suite) and/or ComputationalGraphs (learned part only, unless
                ``suite`` gives their signals).
            example_input: a tensor or a shape such as ``(1, 3, 32, 32)``: traces the modules
                and shapes the suite's random batch (at least 16 samples).
            batch_size: graphs per encoder batch.
            features: extra features of a predictor fitted with them (see :meth:`fit`).
            batch: a batch of real inputs for the suite (default: random data of the example
                input's shape).
            suite: precomputed suite signals, one per item (a
                :class:`~nasassist_plugins.proxies.SuiteResult`, a ``{signal: value}``
                mapping or ``None``); modules are then not run again.
            context: suite signals of other candidates of the same search (e.g. a study's
                earlier trials), ranked with the items but not scored: scores of one model
                then follow the study's own population.
            population: ``"auto"`` (default: rank within items + context when there are at
                least ``min_population``, else against the reference), ``"batch"`` (always
                within items + context, AZ-NAS) or ``"reference"`` (always against the
                reference: each item's score is independent of the others).
            seed: seeds the suite's random batch, initialisation and vectors.

        With at least ``fusion_settings.min_population`` candidates carrying suite signals
        (items plus ``context``; 20 by default), each signal is ranked among them, as AZ-NAS
        does; fewer are placed against the reference sample stored with the weights
        (benchmark architectures, with smooth tails beyond their range), so a single model
        gets a score that does not depend on what it is scored with.
        """
        items = check_items("score", items, batch_size=batch_size, seed=seed)
        if suite is not None and len(suite) != len(items):
            raise PredictorError(f"suite has {len(suite)} entries for {len(items)} items")
        graphs = self.to_graphs(items, example_input)
        rows = self._suite_rows(items, example_input, batch, suite, seed)
        encoded = self._encode_graphs(graphs, batch_size, features)
        return self.score_encoded(encoded, rows, context=context, population=population)

    def score_graphs(self, graphs: Sequence[ComputationalGraph], suite: Sequence[Any] | None = None,
                     *, batch_size: int = 512, context: Sequence[Any] | None = None,
                     population: str = "auto") -> ZeroShotScores:
        """:meth:`score` for graphs with optional precomputed suite signals (no model is run).

        The cheap path for pools of thousands of candidates: without ``suite`` the learned
        part alone (``kind="learned-only"``, no notice); with it, the fused score.
        """
        graphs = list(graphs)
        if suite is not None and len(suite) != len(graphs):
            raise PredictorError(f"suite has {len(suite)} entries for {len(graphs)} graphs")
        rows = [None] * len(graphs) if suite is None else [zero_shot.suite_row(r) for r in suite]
        return self.score_encoded(self._encode_graphs(self.to_graphs(graphs), batch_size, None), rows,
                                  notice=suite is not None, context=context, population=population)

    def _encode_graphs(self, graphs: Sequence[ComputationalGraph], batch_size: int, features: Any
                       ) -> EncodedArchitectures:
        extra = self._feature_matrix(features, len(graphs))
        coarse = [coarsen(g) for g in graphs]
        z = self._embed_coarse(coarse, batch_size)
        return EncodedArchitectures(z, self.regressor_inputs(graphs, z, coarse), extra)

    def _suite_rows(self, items: Sequence[Any], example_input: Any, batch: torch.Tensor | None,
                    suite: Sequence[Any] | None, seed: int) -> list[list[float] | None]:
        return zero_shot.suite_rows(self, items, example_input, batch, suite, seed)

    def novelty_encoded(self, encoded: EncodedArchitectures) -> np.ndarray:
        """Calibrated novelty in [0, 1] of encoded architectures (see :class:`.fusion.ReferenceSet`)."""
        return zero_shot.novelty_encoded(self, encoded)

    def score_encoded(self, encoded: EncodedArchitectures, suite_rows: Sequence[Sequence[float] | None] | None = None,
                      *, notice: bool = True, context: Sequence[Any] | None = None,
                      population: str = "auto") -> ZeroShotScores:
        """:meth:`score` for architectures already passed through :meth:`encode`."""
        return zero_shot.score_encoded(self, encoded, suite_rows, notice=notice, context=context, population=population)

    @torch.no_grad()
    def predict_encoded(self, encoded: EncodedArchitectures) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for architectures already passed through :meth:`encode`."""
        z = encoded.embeddings
        if z.shape[0] == 0:
            return np.zeros(0), np.zeros(0)
        x = self._full_inputs(encoded)
        with torch.no_grad():
            mean, std = self.regressor(x, self.clusterer.memberships(z), self.clusterer.novelty(z))
        return (mean.numpy() * self.target_scale + self.target_offset, std.numpy() * abs(self.target_scale))

    def cluster_memberships(self, items: Iterable[Any], example_input: Any = None) -> np.ndarray:
        """GMM soft cluster memberships, shape (n, num_experts)."""
        z = torch.from_numpy(self.embed(items, example_input))
        with torch.no_grad():
            return self.clusterer.memberships(z).numpy()

    # ------------------------------------------------------------------ training steps
    def fit_gate(
        self, embeddings: np.ndarray, candidates: Sequence[int] = (2, 4, 6, 8, 12, 16), random_state: int = 0
    ) -> "Predictor":
        """Fit the GMM gate on embeddings; the regressor gets one expert per chosen component.

        If BIC picks a different number of components than the regressor has experts,
        the regressor is rebuilt (untrained) with the new number: train it afterwards.
        """
        self.clusterer.fit(embeddings, candidates=candidates, random_state=random_state)
        k = self.clusterer.num_components
        if k != self.config["num_experts"]:
            self.config["num_experts"] = k
            self.regressor = MixtureOfExpertsRegressor(self._regressor_dim, k, self.config["ensemble_size"])
            self.regressor.eval()
        return self

    # ------------------------------------------------------------------ few-shot adaptation
    def fit(
        self,
        items: Iterable[Any],
        values: Sequence[float],
        example_input: Any = None,
        *,
        epochs: int = 100,
        lr: float = 3e-3,
        refit_gate: bool = False,
        max_seconds: float | None = 10.0,
        seed: int = 0,
        features: Any = None,
    ) -> "Predictor":
        """Adapt the regressor to labelled architectures of a new family or study.

        The encoder stays frozen (embeddings are computed once), so this takes seconds
        on CPU for ~100 points. Values may be on any scale and in either direction as
        long as larger is better; pass ``-loss`` for losses. Afterwards, ``predict``
        returns values on that scale. ``refit_gate`` also refits the GMM gate on the
        new embeddings (useful with a few hundred points, not with tens).

        ``features`` adds extra per-architecture inputs, e.g. zero-cost proxies from
        :func:`nasassist_plugins.proxies.compute_proxies`: an (n, k) array or
        ``{name: n values}``. The regressor's input layers grow by k columns that start
        at zero (so the zero-shot prediction is the starting point) and are learned
        here; later ``predict`` calls need the same features.
        """
        y = check_fit_arguments(values, epochs=epochs, lr=lr, max_seconds=max_seconds, seed=seed)
        if isinstance(items, EncodedArchitectures):
            encoded = items
            if features is not None:
                encoded = EncodedArchitectures(encoded.embeddings, encoded.inputs, self._feature_matrix(features, len(encoded)))
        else:
            encoded = self.encode(items, example_input, features=features)
        if encoded.features is not None:
            names = list(features) if isinstance(features, Mapping) else None
            self._adopt_features(encoded.features, names)
            self.extra_scaler.fit(encoded.features.numpy())
        z, x = encoded.embeddings, self._full_inputs(encoded)
        if z.shape[0] != y.shape[0]:
            raise PredictorError(f"fit got {z.shape[0]} architectures but {y.shape[0]} values")
        if y.shape[0] < 2:
            raise PredictorError("fit needs at least 2 labelled architectures")
        offset, scale = float(np.mean(y)), float(np.std(y)) or 1.0
        target = torch.tensor((y - offset) / scale, dtype=torch.float32)
        if refit_gate and y.shape[0] >= 20:
            candidates = [k for k in (1, 2, 3, 4) if k <= self.clusterer.num_components and k <= y.shape[0] // 10] or [1]
            self.fit_gate(z.numpy(), candidates=candidates, random_state=seed)
        train_regressor(self.regressor, self.clusterer, z, target, inputs=x,
                        epochs=epochs, lr=lr, max_seconds=max_seconds, seed=seed)
        self.target_offset, self.target_scale = offset, scale
        self.target_description = _SURROGATE_DESCRIPTION
        self._eval()
        return self

    # ------------------------------------------------------------------ persistence
    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the predictor's modules, keyed ``<module>.<name>``."""
        return persistence.module_tensors(self._modules())

    def save(self, path: str | Path) -> Path:
        """Write weights and configuration to one safetensors file (see :mod:`.persistence`)."""
        return persistence.write_predictor(path, self)

    @classmethod
    def _expected_tensors(cls, config: dict[str, Any], text_rows: int) -> dict[str, torch.Tensor]:
        """Tensors (on the meta device: no memory) of a predictor with this configuration."""
        return persistence.expected_tensors(cls, config, text_rows)

    @classmethod
    def load(cls, path: str | Path) -> "Predictor":
        """Load a predictor saved by :meth:`save`.

        The file is validated before anything is allocated (header schema, then every
        tensor's shape against the configuration; see :mod:`.persistence`), and no code is
        unpickled.
        """
        header, tensors = read_weights(path, cls._expected_tensors)
        predictor = cls(**header["config"], text_table=tensors.get("encoder.nodes.text_table"))
        try:
            for prefix, module in predictor._modules():
                state = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
                if not state and all(t.numel() == 0 for t in module.state_dict().values()):
                    continue  # empty parts (no extra features, no fusion) may be absent from older files
                module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise PredictorError(f"{path}: weights do not match the predictor's architecture: {exc}") from exc
        predictor.target_offset = header["target_offset"]
        predictor.target_scale = header["target_scale"]
        predictor.target_description = header["target_description"]
        predictor.unknown_op_ids = header["unknown_op_ids"]
        predictor.training_info = header["training_info"]
        predictor.fusion_settings = FusionSettings.from_dict(header.get("fusion_settings") or {})
        predictor._eval()
        return predictor

    @classmethod
    def load_default(cls) -> "Predictor":
        """The weights shipped with the package (trained on all benchmark families)."""
        if not persistence.DEFAULT_WEIGHTS.is_file():
            raise PredictorError(
                f"no default predictor weights at {persistence.DEFAULT_WEIGHTS}; train them with "
                "`nasassist train --data ../shared/data --out <dir>` and pass the file to Predictor.load"
            )
        return cls.load(persistence.DEFAULT_WEIGHTS)

    def copy(self) -> "Predictor":
        return copy.deepcopy(self)

