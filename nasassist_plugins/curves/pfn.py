"""A prior-fitted network (PFN) for learning-curve extrapolation, run in numpy.

After LC-PFN (Adriaensen et al., NeurIPS 2023): a small transformer, trained only on curves
drawn from a prior (:mod:`nasassist_plugins.curves.prior`), reads the observed prefix of a curve
and returns the posterior predictive distribution of its value at any later step in **one
forward pass**, as a discretised "bar distribution" (a histogram over fixed buckets).

Differences from LC-PFN, each for a reason:

* **Scale-free inputs.** LC-PFN needs values normalised to [0, 1] and increasing; a
  1000-bucket histogram over [0, 1] then resolves 0.1 pp at best, while the decisions that
  matter separate runs 0.2 pp apart near 99 %. Here each prefix is normalised by its own last
  value ``m`` and a scale ``s`` (the range of its recent half, with floors), and the model
  predicts ``z = asinh((y_T - m) / s)``: fine buckets near the last value, coarse far away, and
  any metric (accuracy, negated loss) works. A known upper bound enters as a feature
  (headroom ``(upper - m) / s``), and forecasts are capped at it.
* **Any report steps.** Steps are normalised by the full budget (``t = step / max_step``)
  and enter as features, so dense epochs, sparse ladders (steps 1, 4, 8, 16, 32) and NB101's
  4/12/36/108 epochs are all the same kind of input.
* **Small and CPU-only.** 151,680 parameters (LC-PFN: millions) trained in 13 CPU minutes on
  one thread, shipped as a 0.6 MB safetensors file; the forward pass here is plain numpy (no
  PyTorch import, so NNI's assessor process starts fast), about a millisecond of CPU per curve,
  and batched (:meth:`CurvePFN.forecast_batch`) when many prefixes are forecast at once.

Architecture (the training code in :mod:`nasassist_plugins.curves.train_pfn` builds the same
network in PyTorch): one context token (bound flag, headroom, number of points, last ``t``),
one token per observed point (``t``, ``log t``, ``asinh`` of the normalised value) and one per
query step; pre-LayerNorm transformer layers where every token attends to the context and the
observed tokens only (queries never see each other, as in LC-PFN); a linear head on each query
token gives the bucket logits.

Weights are read with :func:`safetensors.safe_open` and checked (names, shapes, dtype, header
configuration) before any array is materialised; nothing is unpickled.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

from nasassist_plugins.errors import (
    ConfigurationError,
    LearningCurveError,
)

__all__ = [
    "BarDistribution",
    "CurveForecast",
    "CurvePFN",
    "DEFAULT_WEIGHTS",
    "encode_prefix",
    "load_default_pfn",
]

#: File name of the shipped weights inside ``nasassist_plugins.curves.weights``.
DEFAULT_WEIGHTS = "curve_pfn.safetensors"
FORMAT = "nasassist-curve-pfn-1"
N_OBS_FEATURES = 4
N_QUERY_FEATURES = 4
N_CONTEXT_FEATURES = 5
#: Most observed points the network reads; longer prefixes are thinned (the last points are kept).
MAX_OBSERVED = 48


# ----------------------------------------------------------------------------- input encoding
def prefix_scale(y: np.ndarray, upper: float | None) -> tuple[float, float]:
    """Location ``m`` (last value) and scale ``s`` of an observed prefix (maximisation units).

    ``s`` is the range of the recent half of the prefix (at least two points), floored at 5 %
    of the whole prefix's range, at ``1e-3 |m|`` and, with a known upper bound, at 0.2 % of the
    distance from the lowest value to it; so it is never zero.
    """
    n = len(y)
    m = float(y[-1])
    k = max(2, math.ceil(n / 2))
    recent = float(np.ptp(y[-k:])) if n >= 2 else 0.0
    total = float(np.ptp(y)) if n >= 2 else 0.0
    s = max(recent, 0.05 * total, 1e-3 * abs(m), 1e-9)
    if upper is not None:
        s = max(s, 2e-3 * max(upper - float(np.min(y)), 0.0))
    return m, s


def thin_prefix(t: np.ndarray, y: np.ndarray, limit: int = MAX_OBSERVED) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points: the last half of them kept as they are, the rest evenly thinned."""
    n = len(t)
    if n <= limit:
        return t, y
    keep_tail = limit // 2
    head = np.round(np.linspace(0, n - keep_tail - 1, limit - keep_tail)).astype(int)
    idx = np.concatenate([head, np.arange(n - keep_tail, n)])
    return t[idx], y[idx]


def encode_prefix(
    t: np.ndarray, y: np.ndarray, upper: float | None, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Features of one prefix: ``(context (5,), observed (n, 4), queries (q, 4), m, s)``.

    ``t`` are normalised steps in (0, 1] (sorted), ``y`` values in maximisation units, ``upper``
    the metric's known upper bound in those units (or ``None``), ``queries`` normalised target
    steps. The same function builds the training inputs, so training and inference agree.
    """
    m, s = prefix_scale(y, upper)
    u = np.arcsinh((y - m) / s)
    n = len(t)
    obs = np.stack([t, np.log(t) / 5.0, u / 3.0, (np.arange(n) == n - 1).astype(float)], axis=1)
    t_last = float(t[-1])
    head = 0.0 if upper is None else float(np.arcsinh(max(upper - m, 0.0) / s)) / 3.0
    context = np.array([0.0 if upper is None else 1.0, head, math.log(n) / 4.0, t_last, math.log(t_last) / 5.0])
    q = np.asarray(queries, dtype=float)
    query = np.stack([q, np.log(q) / 5.0, q - t_last, np.ones_like(q)], axis=1)
    return context, obs, query, m, s


# ----------------------------------------------------------------------------- bar distribution
@dataclass(frozen=True)
class BarDistribution:
    """A histogram density over ``borders`` (``K + 1`` increasing edges) with bucket ``probs`` (``K``).

    Uniform inside each bucket, nothing outside ``[borders[0], borders[-1]]``.
    """

    borders: np.ndarray
    probs: np.ndarray

    def cdf(self, x: float) -> float:
        """P(Z <= x)."""
        b, p = self.borders, self.probs
        if x <= b[0]:
            return 0.0
        if x >= b[-1]:
            return 1.0
        k = int(np.searchsorted(b, x, side="right")) - 1
        frac = (x - b[k]) / (b[k + 1] - b[k])
        return float(np.sum(p[:k]) + p[k] * frac)

    def quantile(self, q: float) -> float:
        """Smallest ``x`` with ``cdf(x) >= q`` (linear inside the bucket)."""
        cum = np.concatenate([[0.0], np.cumsum(self.probs)])
        q = min(max(q, 0.0), float(cum[-1]))
        k = int(np.searchsorted(cum, q, side="left")) - 1
        k = min(max(k, 0), len(self.probs) - 1)
        width = self.probs[k]
        frac = 0.0 if width <= 0 else (q - cum[k]) / width
        return float(self.borders[k] + frac * (self.borders[k + 1] - self.borders[k]))

    def mean(self) -> float:
        mids = (self.borders[:-1] + self.borders[1:]) / 2.0
        return float(self.probs @ mids)


# ----------------------------------------------------------------------------- the network
def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))  # x * x * x: ** is 10x slower


class CurvePFN:
    """The curve PFN's forward pass in numpy; :func:`load_default_pfn` gives the shipped one.

    Example::

        pfn = load_default_pfn()
        dist = pfn.forecast(t=np.array([0.1, 0.2, 0.3]), y=np.array([0.6, 0.7, 0.74]),
                            upper=1.0, query=1.0)
        dist.mean, dist.quantile(0.9), dist.probability_above(0.8)

    Args:
        tensors: Parameter arrays by name (as written by ``train_pfn``).
        config: ``d_model``, ``n_layers``, ``n_heads``, ``n_buckets`` and training facts.
    """

    def __init__(self, tensors: dict[str, np.ndarray], config: dict) -> None:
        self.config = dict(config)
        self.d_model = int(config["d_model"])
        self.n_layers = int(config["n_layers"])
        self.n_heads = int(config["n_heads"])
        self._w = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
        self.borders = self._w["borders"]
        expected = expected_shapes(config)
        for name, shape in expected.items():
            if name not in self._w or self._w[name].shape != shape:
                got = None if name not in self._w else self._w[name].shape
                raise ConfigurationError(f"curve PFN weights: {name} should have shape {shape}, got {got}")

    # -------------------------------------------------------------- loading
    @classmethod
    def load(cls, path: str | Path) -> CurvePFN:
        """Read and validate a weights file (safetensors, no pickle)."""
        from safetensors import SafetensorError, safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigurationError(f"curve PFN weights not found: {path}")
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                if meta.get("format") != FORMAT:
                    raise ConfigurationError(f"{path}: not curve PFN weights (format {meta.get('format')!r})")
                config = json.loads(meta["config"])
                expected = expected_shapes(config)
                names = set(f.keys())
                if names != set(expected):
                    raise ConfigurationError(
                        f"{path}: unexpected tensors (missing {sorted(set(expected) - names)}, "
                        f"extra {sorted(names - set(expected))})"
                    )
                for name, shape in expected.items():
                    sl = f.get_slice(name)
                    if tuple(sl.get_shape()) != shape or sl.get_dtype() not in ("F32", "F64"):
                        raise ConfigurationError(
                            f"{path}: {name} has shape {tuple(sl.get_shape())} / {sl.get_dtype()}, expected {shape} float"
                        )
                tensors = {name: f.get_tensor(name) for name in expected}
        except (OSError, ValueError, KeyError, SafetensorError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise ConfigurationError(f"{path}: unreadable curve PFN weights ({exc})") from exc
        if not all(np.all(np.isfinite(v)) for v in tensors.values()):
            raise ConfigurationError(f"{path}: curve PFN weights contain NaN or inf")
        if not np.all(np.diff(tensors["borders"]) > 0):
            raise ConfigurationError(f"{path}: bucket borders must increase")
        return cls(tensors, config)

    # -------------------------------------------------------------- forward
    def logits(self, context: np.ndarray, obs: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Bucket logits ``(q, K)`` of one curve's queries (features from ``encode_prefix``)."""
        return self.logits_batch([(context, obs, query)])[0]

    def logits_batch(self, items: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Bucket logits of several curves in one pass: ``items`` are ``(context, obs, query)`` triples.

        Prefixes are padded to the longest one; padded tokens are never attended to, so each
        curve's logits are those it would get alone.
        """
        w, d = self._w, self.d_model
        n_obs = [len(o) for _, o, _ in items]
        n_q = [len(q) for _, _, q in items]
        b, n_max, q_max = len(items), max(n_obs), max(n_q)
        obs = np.zeros((b, n_max, N_OBS_FEATURES))
        query = np.zeros((b, q_max, N_QUERY_FEATURES))
        valid = np.zeros((b, 1 + n_max), dtype=bool)
        valid[:, 0] = True
        for i, (_, o, q) in enumerate(items):
            obs[i, : len(o)] = o
            query[i, : len(q)] = q
            valid[i, 1 : 1 + len(o)] = True
        context = np.stack([c for c, _, _ in items])
        x = np.concatenate([
            (context @ w["embed_context.weight"].T + w["embed_context.bias"])[:, None],
            obs @ w["embed_obs.weight"].T + w["embed_obs.bias"],
            query @ w["embed_query.weight"].T + w["embed_query.bias"],
        ], axis=1)
        n_keys, n_tok = 1 + n_max, x.shape[1]
        h, dh = self.n_heads, d // self.n_heads
        mask = np.where(valid, 0.0, -1e30)[:, None, None, :]
        for i in range(self.n_layers):
            p = f"layers.{i}."
            a = _layer_norm(x, w[p + "norm1.weight"], w[p + "norm1.bias"])
            qkv = a @ w[p + "attn.in_proj_weight"].T + w[p + "attn.in_proj_bias"]
            q, k, v = np.split(qkv, 3, axis=-1)
            q = q.reshape(b, n_tok, h, dh).transpose(0, 2, 1, 3)
            k = k[:, :n_keys].reshape(b, n_keys, h, dh).transpose(0, 2, 1, 3)
            v = v[:, :n_keys].reshape(b, n_keys, h, dh).transpose(0, 2, 1, 3)
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh) + mask
            scores -= scores.max(-1, keepdims=True)
            att = np.exp(scores)
            att /= att.sum(-1, keepdims=True)
            out = (att @ v).transpose(0, 2, 1, 3).reshape(b, n_tok, d)
            x = x + out @ w[p + "attn.out_proj.weight"].T + w[p + "attn.out_proj.bias"]
            a = _layer_norm(x, w[p + "norm2.weight"], w[p + "norm2.bias"])
            a = _gelu(a @ w[p + "ff1.weight"].T + w[p + "ff1.bias"])
            x = x + a @ w[p + "ff2.weight"].T + w[p + "ff2.bias"]
        xq = _layer_norm(x[:, n_keys:], w["norm.weight"], w["norm.bias"])
        logits = xq @ w["head.weight"].T + w["head.bias"]
        return [logits[i, : n_q[i]] for i in range(b)]

    def forecast(
        self, t: np.ndarray, y: np.ndarray, upper: float | None, query: float | Sequence[float] = 1.0,
        lower: float | None = None,
    ) -> CurveForecast | list[CurveForecast]:
        """Predictive distribution of the value at normalised step(s) ``query`` given the prefix.

        ``t``: normalised observed steps in (0, 1], increasing; ``y``: values in maximisation
        units; ``upper``: known upper bound in those units or ``None`` (``lower``: the lower one, used
        only to bound the forecast). Needs two points or more.
        """
        out = self.forecast_batch([(t, y)], upper, np.atleast_1d(np.asarray(query, dtype=float)), lower)[0]
        return out[0] if np.ndim(query) == 0 else out

    def forecast_batch(
        self, prefixes: Sequence[tuple[np.ndarray, np.ndarray]], upper: float | None, queries: np.ndarray,
        lower: float | None = None,
    ) -> list[list[CurveForecast]]:
        """:meth:`forecast` for several prefixes ``(t, y)`` at once (same bounds and queries): one pass."""
        items, scales = [], []
        for t, y in prefixes:
            t, y = np.asarray(t, dtype=float), np.asarray(y, dtype=float)
            if len(t) < 2:
                raise LearningCurveError("the curve PFN needs at least two observed points")
            t, y = thin_prefix(t, y)
            context, obs, q, m, s = encode_prefix(t, y, upper, np.maximum(queries, t[-1]))
            items.append((context, obs, q))
            scales.append((m, s))
        out = []
        for logits, (m, s) in zip(self.logits_batch(items), scales):
            logits = logits - logits.max(-1, keepdims=True)
            probs = np.exp(logits)
            probs /= probs.sum(-1, keepdims=True)
            out.append([CurveForecast(BarDistribution(self.borders, p), m, s, upper, lower) for p in probs])
        return out


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Names and shapes of every tensor of a PFN with this configuration."""
    d, k, f = int(config["d_model"]), int(config["n_buckets"]), int(config["d_ff"])
    shapes: dict[str, tuple[int, ...]] = {
        "borders": (k + 1,),
        "embed_context.weight": (d, N_CONTEXT_FEATURES), "embed_context.bias": (d,),
        "embed_obs.weight": (d, N_OBS_FEATURES), "embed_obs.bias": (d,),
        "embed_query.weight": (d, N_QUERY_FEATURES), "embed_query.bias": (d,),
        "norm.weight": (d,), "norm.bias": (d,),
        "head.weight": (k, d), "head.bias": (k,),
    }
    for i in range(int(config["n_layers"])):
        p = f"layers.{i}."
        shapes.update({
            p + "norm1.weight": (d,), p + "norm1.bias": (d,),
            p + "attn.in_proj_weight": (3 * d, d), p + "attn.in_proj_bias": (3 * d,),
            p + "attn.out_proj.weight": (d, d), p + "attn.out_proj.bias": (d,),
            p + "norm2.weight": (d,), p + "norm2.bias": (d,),
            p + "ff1.weight": (f, d), p + "ff1.bias": (f,),
            p + "ff2.weight": (d, f), p + "ff2.bias": (d,),
        })
    if d % int(config["n_heads"]):
        raise ConfigurationError(f"d_model {d} is not a multiple of n_heads {config['n_heads']}")
    return shapes


# ----------------------------------------------------------------------------- forecasts
@dataclass(frozen=True)
class CurveForecast:
    """Predictive distribution of one future value, in maximisation units.

    ``Y = m + s * sinh(Z)`` with ``Z`` the bar distribution, capped at ``upper`` (the known bound
    on the good side) and floored at ``lower`` (the bad side) when they are known. The mean and
    standard deviation winsorise the outermost 1 % on a side whose bound is unknown: the sinh
    transform gives the extreme buckets values far beyond anything observed, and the prior's
    divergence mode puts a little mass there. The predictive is often skewed or bimodal (a run may
    still collapse), so quantiles describe it better than ``mean ± std``.
    """

    z: BarDistribution
    m: float
    s: float
    upper: float | None = None
    lower: float | None = None

    def _to_y(self, z: float) -> float:
        y = self.m + self.s * math.sinh(z)
        if self.upper is not None:
            y = min(y, self.upper)
        return y if self.lower is None else max(y, self.lower)

    def _to_z(self, y: float) -> float:
        return math.asinh((y - self.m) / self.s)

    def cdf(self, y: float) -> float:
        """P(Y <= y)."""
        if self.upper is not None and y >= self.upper:
            return 1.0
        if self.lower is not None and y < self.lower:
            return 0.0
        return self.z.cdf(self._to_z(y))

    def probability_above(self, y: float) -> float:
        """P(Y > y)."""
        return 1.0 - self.cdf(y)

    def quantile(self, q: float) -> float:
        return self._to_y(self.z.quantile(q))

    def _support(self) -> np.ndarray:
        mids = (self.z.borders[:-1] + self.z.borders[1:]) / 2.0
        ys = self.m + self.s * np.sinh(mids)
        lo = self.lower if self.lower is not None else self.quantile(0.01)
        hi = self.upper if self.upper is not None else self.quantile(0.99)
        return np.clip(ys, lo, hi)

    @property
    def mean(self) -> float:
        """Mean of ``Y`` (bucket mid-points mapped through ``sinh``, bounded as described above)."""
        return float(self.z.probs @ self._support())

    @property
    def std(self) -> float:
        ys = self._support()
        mu = float(self.z.probs @ ys)
        return float(math.sqrt(max(float(self.z.probs @ (ys - mu) ** 2), 0.0)))


_DEFAULT: CurvePFN | None = None


def load_default_pfn() -> CurvePFN:
    """The shipped curve PFN (``nasassist_plugins/curves/weights/curve_pfn.safetensors``), loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        ref = resources.files("nasassist_plugins.curves").joinpath("weights", DEFAULT_WEIGHTS)
        with resources.as_file(ref) as p:
            _DEFAULT = CurvePFN.load(p)
    return _DEFAULT
