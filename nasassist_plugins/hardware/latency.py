"""Latency of an architecture on a named device, predicted from its graph; adapted to new devices.

:class:`LatencyPredictor` holds one ridge regression per *source device* from the graph's
cost features (:mod:`nasassist_plugins.hardware.features`) to ``log(latency)``. A device it
has never seen is described by the source devices themselves, as HELP (Lee et al., NeurIPS
2021) describes a device by its latencies on reference architectures: the new device's
``log(latency)`` is a ridge combination of the source devices' standardised predictions,
fitted on as few as 5–20 models measured on it (:meth:`LatencyPredictor.adapt`). Without
any measurement the mean of the standardised source predictions ranks candidates (its
scale is unknown, so it predicts relative latency only).

The shipped parameters (``hardware/data/latency_nb201.json``, written by
``benchmarks/latency_predictor.py``) were fitted on the 15,625 NAS-Bench-201 cells measured
on the 27 device/batch settings of HELP and on HW-NAS-Bench's edge GPU (Jetson TX2) and
Edge TPU. They rank architectures *like those*: for other families, adapt with a few
measurements of your own models.

Example::

    from nasassist_plugins.hardware import LatencyPredictor, latency_devices

    print(latency_devices())                        # ('1080ti_1', ..., 'edgegpu', 'edgetpu', ...)
    edge = LatencyPredictor.pretrained("edgegpu")
    ms = edge(None, graph)                          # an objective: (model, graph) -> ms
    mine = LatencyPredictor.pretrained().adapt(graphs, measured_ms, device="my-phone")
    print(mine.predict([graph]))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from nasassist_plugins.errors import ConfigurationError, ObjectiveError, PredictorError
from nasassist_plugins.hardware.features import FEATURE_NAMES, hardware_feature_matrix

if TYPE_CHECKING:  # pragma: no cover
    from nasassist_plugins.graph import ComputationalGraph

__all__ = ["LatencyPredictor", "latency_devices"]

FORMAT = "nasassist.latency-predictor"
FORMAT_VERSION = 1
_PACKAGE_FILE = "latency_nb201.json"


@dataclass
class _DeviceModel:
    """``log(ms) = intercept + coef · standardised features`` (a source device)."""

    coef: np.ndarray
    intercept: float
    sigma: float  # residual standard deviation of log(ms) on the fitting data
    n: int
    center: float  # mean and spread of the device's predicted log(ms) over the fitting data,
    scale: float  # used to standardise it as a basis function for new devices

    def to_dict(self) -> dict[str, Any]:
        return {"coef": [float(c) for c in self.coef], "intercept": self.intercept, "sigma": self.sigma, "n": self.n,
                "center": self.center, "scale": self.scale}  # fmt: skip


@dataclass
class _AdaptedModel:
    """``log(ms) = intercept + weights · standardised source predictions + feature_weights · features``."""

    weights: np.ndarray
    intercept: float
    sigma: float
    n: int
    sources: tuple[str, ...]
    feature_weights: np.ndarray | None = None  # only when model selection preferred the features too

    def to_dict(self) -> dict[str, Any]:
        out = {"weights": [float(w) for w in self.weights], "intercept": self.intercept, "sigma": self.sigma,
               "n": self.n, "sources": list(self.sources)}  # fmt: skip
        if self.feature_weights is not None:
            out["feature_weights"] = [float(w) for w in self.feature_weights]
        return out


def _finite_array(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(arr)):
        raise ConfigurationError(f"{what} must be finite numbers")
    return arr


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept, shrinking towards ``prior`` (default 0)."""
    xm, ym = x.mean(axis=0), y.mean()
    xc, yc = x - xm, y - ym
    p = x.shape[1]
    prior = np.zeros(p) if prior is None else prior
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(p), xc.T @ yc + alpha * prior)
    return coef, float(ym - xm @ coef)


def _loo_error(x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
    """Leave-one-out squared error of :func:`_ridge` (the linear-smoother shortcut e_i / (1 - h_ii))."""
    n = y.size
    xc = x - x.mean(axis=0)
    coef, intercept = _ridge(x, y, alpha, prior)
    residual = y - (x @ coef + intercept)
    # the hat matrix of the centred ridge fit (kernel form: n x n, cheap for the few samples adapted on)
    hat = xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T) + 1.0 / n
    leverage = np.clip(np.diag(hat), 0.0, 1.0 - 1e-6)
    return float(np.mean((residual / (1.0 - leverage)) ** 2))


#: Candidate adaptations tried by model selection: (ridge penalty, weight of the raw features; 0 = sources only)
_ADAPT_GRID = tuple((alpha, c) for alpha in (0.3, 1.0, 3.0) for c in (0.0, 0.1, 0.3))
_MIN_SELECT = 8  # measurements needed before leave-one-out model selection is trusted


class LatencyPredictor:
    """Predicts a graph's latency (ms) on named devices; adapts to a new device from a few measurements.

    Args:
        alpha: ridge penalty of the per-device regressions on standardised features (default 1.0).
        adapt_alpha: ridge penalty of the combination of source devices fitted by
            :meth:`adapt` from fewer than 8 measurements (default 1.0; it shrinks towards the
            equal-weight combination). From 8 measurements on, the penalty, and whether the
            graph features join the source devices, are chosen by leave-one-out error.
        device: the device ``__call__`` predicts for (``None``: choose one with
            :meth:`for_device`, or the only one when there is one).

    Calling the predictor with ``(model, graph)`` returns the predicted milliseconds of
    ``graph`` on ``device``, so an instance is an objective for
    :class:`~nasassist_plugins.optuna.NASAssistSampler`.

    Example::

        predictor = LatencyPredictor().fit(train_graphs, {"my_gpu": gpu_ms, "my_cpu": cpu_ms})
        phone = predictor.adapt(measured_graphs, phone_ms, device="phone")   # 10-20 models
        ms = phone.predict(candidate_graphs)
    """

    def __init__(self, *, alpha: float = 1.0, adapt_alpha: float = 1.0, device: str | None = None) -> None:
        for name, value in (("alpha", alpha), ("adapt_alpha", adapt_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        self.alpha = float(alpha)
        self.adapt_alpha = float(adapt_alpha)
        self.device = device
        self.feature_mean: np.ndarray | None = None
        self.feature_scale: np.ndarray | None = None
        self.sources: dict[str, _DeviceModel] = {}
        self.adapted: dict[str, _AdaptedModel] = {}
        self.metadata: dict[str, Any] = {}

    # ------------------------------------------------------------------ inspection
    @property
    def devices(self) -> tuple[str, ...]:
        """Every device this predictor can predict for (source devices, then adapted ones)."""
        return tuple(self.sources) + tuple(d for d in self.adapted if d not in self.sources)

    def __repr__(self) -> str:
        return f"LatencyPredictor(devices={len(self.devices)}, device={self.device!r})"

    def _check_fitted(self) -> None:
        if self.feature_mean is None or not self.sources:
            raise PredictorError("this LatencyPredictor is not fitted: call fit() or LatencyPredictor.pretrained()")

    # ------------------------------------------------------------------ features
    def _standardise(self, features: np.ndarray) -> np.ndarray:
        assert self.feature_mean is not None and self.feature_scale is not None
        return (features - self.feature_mean) / self.feature_scale

    def features(self, graphs: Sequence[ComputationalGraph] | np.ndarray) -> np.ndarray:
        """Standardised cost features of ``graphs`` (or of an already computed feature matrix)."""
        self._check_fitted()
        x = graphs if isinstance(graphs, np.ndarray) else hardware_feature_matrix(graphs)
        if x.ndim != 2 or x.shape[1] != len(FEATURE_NAMES):
            raise PredictorError(f"expected {len(FEATURE_NAMES)} hardware features per graph, got shape {x.shape}")
        return self._standardise(x)

    def _basis(self, z: np.ndarray, sources: Sequence[str]) -> np.ndarray:
        cols = []
        for name in sources:
            m = self.sources[name]
            cols.append((z @ m.coef + m.intercept - m.center) / m.scale)
        return np.stack(cols, axis=1)

    # ------------------------------------------------------------------ fitting
    def fit(self, graphs: Sequence[ComputationalGraph] | np.ndarray, latencies: Mapping[str, Any]) -> "LatencyPredictor":
        """Fit one regression per device.

        Args:
            graphs: the measured architectures' graphs (or their :func:`hardware_feature_matrix`).
            latencies: ``{device: milliseconds per graph}``; NaN or non-positive entries are
                missing measurements and skipped for that device.
        """
        x = graphs if isinstance(graphs, np.ndarray) else hardware_feature_matrix(graphs)
        if x.ndim != 2 or x.shape[0] < 3:
            raise ConfigurationError("fit needs the features of at least 3 graphs")
        if not latencies:
            raise ConfigurationError("fit needs latencies of at least one device")
        self.feature_mean = x.mean(axis=0)
        scale = x.std(axis=0)
        self.feature_scale = np.where(scale > 1e-12, scale, 1.0)
        z = self._standardise(x)
        self.sources = {}
        for device, values in latencies.items():
            y = np.asarray(values, dtype=np.float64).reshape(-1)
            if y.shape[0] != x.shape[0]:
                raise ConfigurationError(f"device {device!r}: {y.shape[0]} latencies for {x.shape[0]} graphs")
            ok = np.isfinite(y) & (y > 0)
            if ok.sum() < 3:
                raise ConfigurationError(f"device {device!r} has fewer than 3 usable latencies")
            log_y = np.log(y[ok])
            coef, intercept = _ridge(z[ok], log_y, self.alpha)
            fitted = z @ coef + intercept
            self.sources[str(device)] = _DeviceModel(
                coef=coef, intercept=intercept, sigma=float(np.std(log_y - fitted[ok])), n=int(ok.sum()),
                center=float(fitted.mean()), scale=float(max(fitted.std(), 1e-9)),
            )  # fmt: skip
        self.adapted = {}
        return self

    def adapt(
        self,
        graphs: Sequence[ComputationalGraph] | np.ndarray,
        latencies_ms: Any,
        *,
        device: str = "target",
        exclude: Sequence[str] = (),
    ) -> "LatencyPredictor":
        """A copy of this predictor that also predicts ``device``, fitted on a few measurements.

        Args:
            graphs: graphs of the measured models (2 or more; 10–20 rank well, see
                ``benchmarks/README.md``), or their feature matrix.
            latencies_ms: their measured latency on ``device`` (ms, positive).
            device: the new device's name (the copy's ``device``).
            exclude: source devices not to use as basis functions.
        """
        self._check_fitted()
        y = _finite_array(latencies_ms, "latencies_ms")
        z = self.features(graphs)
        if z.shape[0] != y.shape[0]:
            raise ConfigurationError(f"{y.shape[0]} latencies for {z.shape[0]} graphs")
        if z.shape[0] < 2:
            raise ConfigurationError("adapting to a device needs at least 2 measured models")
        if np.any(y <= 0):
            raise ConfigurationError("latencies_ms must be positive")
        sources = tuple(d for d in self.sources if d not in set(exclude))
        if not sources:
            raise ConfigurationError("no source device left to adapt from")
        basis = self._basis(z, sources)
        log_y = np.log(y)
        # shrink towards the equal-weight combination, scaled to the measured spread
        spread = float(np.std(log_y))
        prior = np.full(len(sources), spread / len(sources) / max(float(np.std(basis.mean(axis=1))), 1e-9))
        alpha, c = self.adapt_alpha, 0.0
        if y.size >= _MIN_SELECT:  # choose the penalty, and whether the raw features help, by leave-one-out
            scores = []
            for a, cc in _ADAPT_GRID:
                design = np.hstack([basis, cc * z]) if cc else basis
                full_prior = np.concatenate([prior, np.zeros(z.shape[1])]) if cc else prior
                scores.append((_loo_error(design, log_y, a, full_prior), a, cc))
            _, alpha, c = min(scores)
        design = np.hstack([basis, c * z]) if c else basis
        coef, intercept = _ridge(design, log_y, alpha, np.concatenate([prior, np.zeros(z.shape[1])]) if c else prior)
        residual = log_y - (design @ coef + intercept)
        sigma = float(np.sqrt(np.sum(residual**2) / max(y.size - 2, 1))) if y.size > 2 else max(spread, 0.1)
        copy = self._copy()
        copy.adapted[str(device)] = _AdaptedModel(
            weights=coef[: len(sources)], intercept=intercept, sigma=max(sigma, 1e-3), n=int(y.size), sources=sources,
            feature_weights=c * coef[len(sources):] if c else None,
        )  # fmt: skip
        copy.device = str(device)
        return copy

    def _copy(self) -> "LatencyPredictor":
        copy = LatencyPredictor(alpha=self.alpha, adapt_alpha=self.adapt_alpha, device=self.device)
        copy.feature_mean, copy.feature_scale = self.feature_mean, self.feature_scale
        copy.sources = dict(self.sources)
        copy.adapted = dict(self.adapted)
        copy.metadata = dict(self.metadata)
        return copy

    def for_device(self, device: str) -> "LatencyPredictor":
        """A copy bound to ``device`` (what ``__call__`` predicts).

        Raises:
            ConfigurationError: unknown device (the message lists the known ones).
        """
        if device not in self.sources and device not in self.adapted:
            known = ", ".join(self.devices)
            raise ConfigurationError(
                f"unknown latency device {device!r}; known devices: {known} "
                "(adapt to a new device with LatencyPredictor.pretrained().adapt(graphs, ms, device=...))"
            )
        copy = self._copy()
        copy.device = device
        return copy

    def for_new_device(self, device: str) -> "LatencyPredictor":
        """A copy bound to a device it does not know yet: it predicts once :meth:`adapt` has
        seen measurements (the Optuna sampler adapts it to the values the study stores)."""
        if not isinstance(device, str) or not device:
            raise ConfigurationError(f"device must be a non-empty string, got {device!r}")
        copy = self._copy()
        copy.adapted.pop(device, None)
        copy.sources = {d: m for d, m in copy.sources.items() if d != device}
        copy.device = device
        return copy

    def without(self, devices: Sequence[str]) -> "LatencyPredictor":
        """A copy without the given source devices (e.g. to evaluate a held-out device)."""
        copy = self._copy()
        copy.sources = {d: m for d, m in self.sources.items() if d not in set(devices)}
        copy.adapted = {}
        if copy.device in set(devices):
            copy.device = None
        return copy

    # ------------------------------------------------------------------ prediction
    def predict_log(self, graphs: Sequence[ComputationalGraph] | np.ndarray, device: str | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """``(mean, std)`` of ``log(ms)`` per graph on ``device`` (default ``device``).

        ``device="generic"`` (or a predictor without any device) gives the mean standardised
        source prediction: it ranks candidates on an unknown device, but its scale is not ms.
        """
        self._check_fitted()
        device = device or self.device
        z = self.features(graphs)
        if device in self.adapted:
            m = self.adapted[device]
            mean = self._basis(z, m.sources) @ m.weights + m.intercept
            if m.feature_weights is not None:
                mean = mean + z @ m.feature_weights
            return mean, np.full(mean.shape, m.sigma)
        if device in self.sources:
            s = self.sources[device]
            mean = z @ s.coef + s.intercept
            return mean, np.full(mean.shape, s.sigma)
        if device is None or device == "generic":
            return self._basis(z, tuple(self.sources)).mean(axis=1), np.full(z.shape[0], 1.0)
        raise ConfigurationError(f"unknown latency device {device!r}; known devices: {', '.join(self.devices)}")

    def predict(self, graphs: Sequence[ComputationalGraph] | np.ndarray, device: str | None = None, *,
                return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Predicted milliseconds per graph on ``device`` (default ``device``).

        With ``return_std=True`` also the standard deviation in ms (log-normal).
        """
        device = device or self.device
        if device is None:
            raise ConfigurationError("no device given: pass device= or use for_device(name)")
        mean_log, sd_log = self.predict_log(graphs, device)
        ms = np.exp(mean_log + 0.5 * sd_log**2)
        if not return_std:
            return ms
        return ms, ms * np.sqrt(np.expm1(sd_log**2))

    def __call__(self, model: Any, graph: "ComputationalGraph | None") -> float:
        """The objective form: predicted milliseconds of ``graph`` on ``device``."""
        if graph is None:
            raise ObjectiveError(f"latency:{self.device}: the candidate has no computational graph to predict from")
        if self.device is None:
            raise ObjectiveError("latency predictor has no device: use LatencyPredictor.pretrained('DEVICE')")
        return float(self.predict([graph])[0])

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        self._check_fitted()
        assert self.feature_mean is not None and self.feature_scale is not None
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "features": list(FEATURE_NAMES),
            "alpha": self.alpha,
            "adapt_alpha": self.adapt_alpha,
            "feature_mean": [float(v) for v in self.feature_mean],
            "feature_scale": [float(v) for v in self.feature_scale],
            "sources": {d: m.to_dict() for d, m in self.sources.items()},
            "adapted": {d: m.to_dict() for d, m in self.adapted.items()},
            "metadata": self.metadata,
        }

    def save(self, path: str | Path) -> None:
        """Write the predictor as JSON (no pickle)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LatencyPredictor":
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise PredictorError(f"not a NAS-Assist latency predictor (format {data.get('format')!r})"
                                 if isinstance(data, Mapping) else "a latency predictor must be a JSON object")
        if data.get("version") != FORMAT_VERSION:
            raise PredictorError(f"latency predictor format version {data.get('version')!r} is not supported")
        if list(data.get("features", [])) != list(FEATURE_NAMES):
            raise PredictorError("the latency predictor was fitted on other hardware features; refit it")
        try:
            predictor = cls(alpha=float(data["alpha"]), adapt_alpha=float(data["adapt_alpha"]))
            n = len(FEATURE_NAMES)
            predictor.feature_mean = _checked(data["feature_mean"], n, "feature_mean")
            predictor.feature_scale = _checked(data["feature_scale"], n, "feature_scale")
            for device, m in dict(data["sources"]).items():
                predictor.sources[str(device)] = _DeviceModel(
                    coef=_checked(m["coef"], n, f"{device}.coef"), intercept=float(m["intercept"]),
                    sigma=float(m["sigma"]), n=int(m["n"]), center=float(m["center"]), scale=float(m["scale"]),
                )  # fmt: skip
            for device, m in dict(data.get("adapted", {})).items():
                sources = tuple(str(s) for s in m["sources"])
                missing = [s for s in sources if s not in predictor.sources]
                if missing:
                    raise PredictorError(f"adapted device {device!r} uses unknown source devices {missing}")
                fw = m.get("feature_weights")
                predictor.adapted[str(device)] = _AdaptedModel(
                    weights=_checked(m["weights"], len(sources), f"{device}.weights"), intercept=float(m["intercept"]),
                    sigma=float(m["sigma"]), n=int(m["n"]), sources=sources,
                    feature_weights=None if fw is None else _checked(fw, n, f"{device}.feature_weights"),
                )  # fmt: skip
            predictor.metadata = dict(data.get("metadata", {}))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PredictorError):
                raise
            raise PredictorError(f"malformed latency predictor: {exc!r}") from None
        predictor._check_fitted()
        return predictor

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> "LatencyPredictor":
        """Read a predictor written by :meth:`save` (optionally bound to ``device``)."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PredictorError(f"cannot read latency predictor {path}: {exc}") from None
        predictor = cls.from_dict(data)
        return predictor.for_device(device) if device is not None else predictor

    @classmethod
    def pretrained(cls, device: str | None = None) -> "LatencyPredictor":
        """The shipped predictor (NB201 on HELP's 27 settings and HW-NAS-Bench's edge GPU and Edge TPU).

        Args:
            device: bind to this device (see :func:`latency_devices`); ``None`` leaves it unbound.
        """
        predictor = _pretrained()._copy()
        return predictor.for_device(device) if device is not None else predictor


def _checked(values: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise PredictorError(f"malformed latency predictor: {what} must be {n} finite numbers")
    return arr


_CACHE: dict[str, LatencyPredictor] = {}


def _pretrained() -> LatencyPredictor:
    if "default" not in _CACHE:
        path = resources.files("nasassist_plugins.hardware") / "data" / _PACKAGE_FILE
        try:
            text = path.read_text()
        except (OSError, FileNotFoundError) as exc:
            raise PredictorError(f"the shipped latency predictor is missing ({exc}); reinstall nasassist-plugins") from None
        _CACHE["default"] = LatencyPredictor.from_dict(json.loads(text))
    return _CACHE["default"]


def latency_devices() -> tuple[str, ...]:
    """Names of the devices the shipped latency predictor knows (``"latency:NAME"`` objectives)."""
    return _pretrained().devices

