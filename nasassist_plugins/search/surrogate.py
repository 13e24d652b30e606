"""The predictor as a study-specific surrogate: zero-shot at first, then fine-tuned.

A front end keeps one :class:`StudySurrogate`. It is also the planner's one cache: every
architecture is encoded once (keyed by a string the caller chooses, e.g. the canonical
JSON of the parameters) into a record holding its encoding, its zero-shot score and an
architecture identity (equal for isomorphic graphs). Predictions come from the zero-shot
predictor until the study has enough results, then from a study-specific model refitted
every ``fine_tune_every`` new results:

* ``"gp"`` (default): a Gaussian process on the predictor's own view of each
  architecture — its standardised GRAF-style graph features and its zero-shot score —
  fitted to the study's values. With tens of points it ranks better than retraining the
  regressor (NB201, NB101-only weights, 20 random points: Spearman 0.58 vs 0.26), fits in
  well under a second, and its uncertainty grows away from the data. Far from every
  observation it reverts to the mean, and the zero-shot score stays one of its inputs.
* ``"moe"``: :meth:`Predictor.fit` on a copy (the mixture-of-experts regressor is
  retrained on the study's values; slower, better with hundreds of points).

Results come in two kinds: finished values, and *censored* ones — the last value of a
pruned trial, an upper bound of what it would have reached (larger is better). Censored
points enter the fit at ``min(bound, prediction)`` (one imputation step, as in SMAC's
treatment of capped runs), so weak, pruned architectures pull predictions down around
them instead of being ignored. Values are centred and scaled robustly (median, IQR) and
clipped before a fit, so an extreme value (1e200) cannot break it.

Everything it holds can be rebuilt from the study's storage: a cache, not state.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from nasassist_plugins.errors import SearchError
from nasassist_plugins.search.config import FINE_TUNE_MODES, PlannerConfig
from nasassist_plugins.search.scoring import encode_graphs, score_encoded

__all__ = ["FINE_TUNE_MODES", "StudySurrogate"]

_logger = logging.getLogger(__name__)

#: Records kept before the least recently used are dropped (about 2 KB each).
MAX_RECORDS = 50_000
_CLIP = 8.0  # robust z-scores beyond this are clipped before a fit


@dataclass
class _Record:
    embedding: Any  # torch tensor (512,)
    inputs: Any  # torch tensor: the regressor's inputs (embedding + graph features)
    arch: str  # identity of the architecture as the predictor sees it
    zero_shot: tuple[float, float]  # (mean, std)
    stage: int  # 1: learned part on the graph; 2: full score on the built model


def _positive_int(value: Any, what: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SearchError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


class StudySurrogate:
    """Zero-shot predictor that becomes a study-specific surrogate as results arrive.

    Args:
        predictor: the zero-shot predictor (default: the shared
            :func:`~nasassist_plugins.predictor.default_predictor`, loaded on first use; it is
            never fitted in place).
        fine_tune: ``"gp"`` (default; ``True`` means the same), ``"moe"``, or ``False``
            to stay zero-shot.
        fine_tune_every: refit after this many new results. Default 1.
        min_fit_points: results (finished or censored) needed before the first refit. Default 5.
        fit_seconds: time budget of one ``"moe"`` refit (seconds, CPU). Default 5.0.
        fit_epochs: regressor epochs per ``"moe"`` refit. Default 60.
        seed: seed of the refits (reproducible studies). Default 0.

    Example::

        surrogate = StudySurrogate(Predictor.load_default(), fine_tune="gp")
        surrogate.encode(["a", "b", "c"], [graph_a, graph_b, graph_c])
        surrogate.update({"a": 0.91, "b": 0.87}, censored={"c": 0.42}, force=True)
        mean, std = surrogate.predict(["a", "b", "c"])
    """

    def __init__(
        self,
        predictor: Any = None,
        *,
        fine_tune: bool | str = "gp",
        fine_tune_every: int = 1,
        min_fit_points: int = 5,
        fit_seconds: float = 5.0,
        fit_epochs: int = 60,
        seed: int = 0,
    ) -> None:
        if predictor is not None:
            from nasassist_plugins.predictor import Predictor

            if not isinstance(predictor, Predictor):
                raise SearchError(
                    f"predictor must be a nasassist_plugins.predictor.Predictor, got {type(predictor).__name__}")
        self._base = predictor
        if fine_tune is True:
            fine_tune = "gp"
        if fine_tune not in (False, None) and fine_tune not in FINE_TUNE_MODES:
            raise SearchError(f"fine_tune must be one of {', '.join(FINE_TUNE_MODES)}, True or False, got {fine_tune!r}")
        self.fine_tune: str | None = fine_tune or None
        self.fine_tune_every = _positive_int(fine_tune_every, "fine_tune_every")
        self.min_fit_points = _positive_int(min_fit_points, "min_fit_points", 2)
        if not (isinstance(fit_seconds, (int, float)) and fit_seconds > 0):
            raise SearchError(f"fit_seconds must be a positive number, got {fit_seconds!r}")
        self.fit_seconds = float(fit_seconds)
        self.fit_epochs = _positive_int(fit_epochs, "fit_epochs")
        self.seed = int(seed)
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._fitted: Any = None
        self._scale: _RobustScale | None = None
        self._fitted_on = 0
        self._optimized_at = 0  # results the kernel hyperparameters were last optimised on
        self._lock = threading.RLock()

    @classmethod
    def from_config(cls, predictor: Any, config: PlannerConfig, *, seed: int = 0) -> "StudySurrogate":
        """The surrogate a :class:`PlannerConfig` describes."""
        return cls(predictor, fine_tune=config.fine_tune, fine_tune_every=config.fine_tune_every,
                   min_fit_points=config.fine_tune_min_trials, fit_seconds=config.fine_tune_seconds, seed=seed)

    # ------------------------------------------------------------------ predictor
    @property
    def predictor(self) -> Any:
        """The zero-shot predictor (loaded lazily)."""
        if self._base is None:
            from nasassist_plugins.predictor import default_predictor

            self._base = default_predictor()
        return self._base

    @property
    def is_fine_tuned(self) -> bool:
        """Whether predictions now come from a study-specific fit."""
        return self._fitted is not None

    @property
    def n_fitted(self) -> int:
        """Number of results the current fit used (0 when zero-shot)."""
        return self._fitted_on

    # ------------------------------------------------------------------ the cache
    def has(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def arch(self, key: str) -> str:
        """Identity of an encoded architecture: equal for graphs the predictor cannot tell apart."""
        return self._record(key).arch

    def zero_shot_stage(self, key: str) -> int:
        """1: zero-shot score from the graph (learned part); 2: from the built model (full score)."""
        return self._record(key).stage

    def _record(self, key: str) -> _Record:
        try:
            record = self._records[key]
        except KeyError:
            raise SearchError(f"architecture {key!r} was not encoded first") from None
        self._records.move_to_end(key)
        return record

    def add_encodings(self, keys: Sequence[str], encoded: Any) -> None:
        """Insert encodings computed elsewhere (e.g. a benchmark encoding a whole space once)."""
        if len(keys) != len(encoded):
            raise SearchError(f"add_encodings got {len(keys)} keys for {len(encoded)} encodings")
        if not len(keys):
            return
        mean, std = score_encoded(self.predictor, encoded)
        rows = encoded.inputs.detach().numpy()
        with self._lock:
            for k, key in enumerate(keys):
                self._records[key] = _Record(encoded.embeddings[k], encoded.inputs[k], _arch_hash(rows[k]),
                                             (float(mean[k]), float(std[k])), 1)
                self._records.move_to_end(key)
            while len(self._records) > MAX_RECORDS:
                self._records.popitem(last=False)

    def encode(self, keys: Sequence[str], graphs: Sequence[Any]) -> None:
        """Encode (and score, stage 1) the graphs whose keys are not cached yet, in one batch."""
        if len(keys) != len(graphs):
            raise SearchError(f"encode got {len(keys)} keys for {len(graphs)} graphs")
        todo = {key: g for key, g in zip(keys, graphs) if key not in self._records}
        if todo:
            self.add_encodings(list(todo), encode_graphs(self.predictor, list(todo.values())))

    def set_zero_shot(self, keys: Sequence[str], mean: Sequence[float], std: Sequence[float]) -> None:
        """Replace the zero-shot score of encoded architectures with a stage-2 (model) score."""
        with self._lock:
            for key, m, s in zip(keys, mean, std):
                if key in self._records and np.isfinite(m):
                    record = self._records[key]
                    record.zero_shot, record.stage = (float(m), float(s) if np.isfinite(s) else 0.0), 2

    # ------------------------------------------------------------------ predict
    def _stack(self, keys: Sequence[str]) -> tuple[Any, Any]:
        import torch

        records = [self._record(key) for key in keys]
        return torch.stack([r.embedding for r in records]), torch.stack([r.inputs for r in records])

    def zero_shot(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Zero-shot ``(mean, std)`` of encoded architectures (rank scores, comparable across studies)."""
        with self._lock:
            records = [self._record(key) for key in keys]
        return (np.array([r.zero_shot[0] for r in records], dtype=np.float64),
                np.array([r.zero_shot[1] for r in records], dtype=np.float64))

    def predict_zero_shot(self, keys: Sequence[str]) -> np.ndarray:
        """Zero-shot rank scores of encoded architectures."""
        return self.zero_shot(keys)[0]

    def predict(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted (mean, std) for encoded architectures; larger is better.

        Zero-shot predictions are rank scores (0..1); after fine-tuning they are on the
        scale of the values given to :meth:`update`.
        """
        if not keys:
            return np.zeros(0), np.zeros(0)
        with self._lock:
            if self._fitted is None:
                return self.zero_shot(keys)
            if isinstance(self._fitted, _GaussianProcessHead):
                return self._fitted.predict(self._gp_features(keys))
            from nasassist_plugins.predictor import EncodedArchitectures

            embeddings, inputs = self._stack(keys)
            mean, std = self._fitted.predict_encoded(EncodedArchitectures(embeddings, inputs))
            assert self._scale is not None
            return self._scale.inverse(np.asarray(mean)), self._scale.inverse_std(np.asarray(std))

    def _gp_features(self, keys: Sequence[str]) -> np.ndarray:
        """What the Gaussian process sees: the predictor's graph features and zero-shot score."""
        zero_shot = self.zero_shot(keys)[0].reshape(-1, 1)
        embeddings, inputs = self._stack(keys)
        n_graph = self.predictor.scaler.num_features
        if n_graph:
            structure = inputs[:, -n_graph:].numpy()
        else:  # no graph features in these weights: a few fixed random projections of the embedding
            projection = np.random.RandomState(0).normal(size=(embeddings.shape[1], 16)) / 16.0
            structure = embeddings.numpy() @ projection
        return np.concatenate([structure, zero_shot / 0.2], axis=1).astype(np.float64)

    # ------------------------------------------------------------------ update
    def update(
        self,
        observations: Mapping[str, float],
        censored: Mapping[str, float] | None = None,
        *,
        force: bool = False,
    ) -> bool:
        """Refit on the study's results when enough new ones arrived; returns whether it refit.

        Args:
            observations: key → finished value (larger is better) of encoded architectures.
            censored: key → upper bound of the value (larger is better) of architectures
                whose training was stopped early (a pruned trial's last value).
            force: refit whenever there are enough points, ignoring ``fine_tune_every``.

        Keys that were not encoded (or values that are not finite) are ignored.
        """
        if not self.fine_tune:
            return False
        with self._lock:
            done = {k: float(v) for k, v in observations.items() if np.isfinite(v) and k in self._records}
            bounds = {k: float(v) for k, v in (censored or {}).items()
                      if np.isfinite(v) and k in self._records and k not in done}
            n = len(done) + len(bounds)
            values = list(done.values()) + list(bounds.values())
            if not done or n < self.min_fit_points or len(set(values)) < 2:
                return False
            if not force and self._fitted is not None and n - self._fitted_on < self.fine_tune_every:
                return False
            started = time.perf_counter()
            keys = list(done) + list(bounds)
            scale = _RobustScale(np.array(values))
            y = scale.transform(np.array(values))
            is_bound = np.r_[np.zeros(len(done), dtype=bool), np.ones(len(bounds), dtype=bool)]
            if self.fine_tune == "gp":
                fitted: Any = self._fit_gp(keys, y, is_bound, n)
            else:
                fitted = self._fit_moe(keys, y, n)
            self._fitted, self._fitted_on, self._scale = fitted, n, scale
            if isinstance(fitted, _GaussianProcessHead):
                fitted.scale = scale
            _logger.debug("surrogate fine-tuned on %d results (%d censored) in %.2fs", n, len(bounds),
                          time.perf_counter() - started)
            return True

    def _fit_gp(self, keys: list[str], y: np.ndarray, is_bound: np.ndarray, n: int) -> "_GaussianProcessHead":
        # kernel hyperparameters are re-optimised (the costly part) once the data has grown by
        # a quarter since the last optimisation, so O(log n) times in a study; in between the
        # GP is conditioned on the new data with the last kernel
        previous = self._fitted if isinstance(self._fitted, _GaussianProcessHead) else None
        optimize = previous is None or n >= 1.25 * self._optimized_at
        features = self._gp_features(keys)
        # hyperparameters come from the finished results (when there are a few): a censored
        # value is only a bound
        fit_on = ~is_bound if (~is_bound).sum() >= 3 else np.ones_like(is_bound)
        head = _GaussianProcessHead(self.seed + n).fit(
            features[fit_on], y[fit_on], kernel=previous.kernel if previous is not None else None, optimize=optimize)
        if optimize:
            self._optimized_at = n
        if is_bound.any():  # censored points: at most their bound, at most what the others suggest
            imputed = np.minimum(y[is_bound], head.predict_raw(features[is_bound])[0])
            y = y.copy()
            y[is_bound] = imputed
            head = _GaussianProcessHead(self.seed + n).fit(features, y, kernel=head.kernel, optimize=False)
        return head

    def _fit_moe(self, keys: list[str], y: np.ndarray, n: int) -> Any:
        from nasassist_plugins.predictor import EncodedArchitectures

        fitted = copy.copy(self.predictor)
        fitted.regressor = copy.deepcopy(self.predictor.regressor)
        fitted.clusterer = copy.deepcopy(self.predictor.clusterer)
        fitted.config = dict(self.predictor.config)
        embeddings, inputs = self._stack(keys)
        fitted.fit(EncodedArchitectures(embeddings, inputs), y, epochs=self.fit_epochs, max_seconds=self.fit_seconds,
                   seed=self.seed + n)
        return fitted


def _arch_hash(row: np.ndarray) -> str:
    """Short identity of an encoded architecture (rounded, so float noise across batches is ignored)."""
    rounded = np.round(np.asarray(row, dtype=np.float64), 4) + 0.0  # + 0.0 folds -0.0 into 0.0
    return hashlib.blake2b(rounded.tobytes(), digest_size=8).hexdigest()


class _RobustScale:
    """Centre (median) and scale (IQR) values, clipping extremes: what fits see."""

    def __init__(self, values: np.ndarray) -> None:
        self.center = float(np.median(values))
        q75, q25 = np.percentile(values, [75, 25])
        spread = float(q75 - q25) / 1.349
        if not np.isfinite(spread) or spread <= 0:
            spread = float(np.std(values))
        if not np.isfinite(spread) or spread <= 0:
            spread = 1.0
        self.spread = spread

    def transform(self, values: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            z = (np.asarray(values, dtype=np.float64) - self.center) / self.spread
        return np.clip(np.nan_to_num(z, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(z, dtype=np.float64) * self.spread + self.center

    def inverse_std(self, s: np.ndarray) -> np.ndarray:
        return np.asarray(s, dtype=np.float64) * self.spread


class _GaussianProcessHead:
    """Gaussian process (ARD RBF + noise, scikit-learn) from surrogate features to (scaled) values."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._gp: Any = None
        self._mean = np.zeros(0)
        self._scale = np.ones(0)
        self.scale: _RobustScale | None = None

    @property
    def kernel(self) -> Any:
        """The fitted kernel (hyperparameters included), reusable without re-optimising."""
        return self._gp.kernel_

    def fit(self, features: np.ndarray, values: np.ndarray, kernel: Any = None,
            optimize: bool = True) -> "_GaussianProcessHead":
        """Fit on ``features``; ``kernel`` is the starting point of the hyperparameter search
        (default: a fresh ARD RBF + noise kernel), or used as is when ``optimize`` is false."""
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        self._mean, self._scale = features.mean(axis=0), features.std(axis=0) + 1e-9
        x = (features - self._mean) / self._scale
        if kernel is None or getattr(kernel, "n_dims", None) != 2 + x.shape[1]:
            kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(np.full(x.shape[1], 5.0), (1e-1, 1e2)) \
                + WhiteKernel(0.1, (1e-6, 1.0))
            optimize = True
        self._gp = GaussianProcessRegressor(kernel, normalize_y=True, optimizer=_lbfgs if optimize else None,
                                            random_state=self._seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._gp.fit(x, values)
        return self

    def predict_raw(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self._gp.predict((features - self._mean) / self._scale, return_std=True)
        return np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.predict_raw(features)
        if self.scale is None:
            return mean, std
        return self.scale.inverse(mean), self.scale.inverse_std(std)


def _lbfgs(objective: Any, theta: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, float]:
    """scikit-learn's L-BFGS-B step for kernel hyperparameters, capped at 30 iterations.

    Refits start from the last fit's hyperparameters, so a few iterations suffice; the
    cap keeps a refit well under a second with a few hundred points.
    """
    from scipy.optimize import minimize

    result = minimize(objective, theta, method="L-BFGS-B", jac=True, bounds=bounds, options={"maxiter": 30})
    return result.x, float(result.fun)
