"""The objectives of a multi-objective architecture search, computed for candidates before they run.

An :class:`ObjectiveSet` holds one objective per study direction:

* ``"score"``: the trained metric, predicted by the study surrogate (zero-shot, then fine-tuned
  on the finished trials); the planner fills it in;
* ``"params"``, ``"flops"``: exact, from the candidate's model and graph;
* ``"latency"``: measured on this machine (median of timed forward passes);
* ``"latency:DEVICE"`` or a :class:`~nasassist_plugins.hardware.LatencyPredictor`: predicted
  for a device, with an uncertainty, and adapted to the values the study stores for that
  objective once a few trials have finished (HELP-style few-shot transfer);
* any callable ``(model, graph) -> float``.

It also holds the hard budgets (``max_params``, ``max_latency_ms``): a candidate predicted to
exceed one is infeasible and never chosen.

Example::

    from nasassist_plugins.search.objectives import ObjectiveSet

    objectives = ObjectiveSet(["score", "params"], ["maximize", "minimize"], max_params=2e6)
    mean, std = objectives.evaluate(model, graph)      # NaN where the surrogate predicts ("score")
    objectives.violations(objectives.budget_values(mean))   # [] or ["params 2.3e+06 > max_params 2e+06"]
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import numpy as np

from nasassist_plugins.errors import ConfigurationError, ObjectiveError

__all__ = ["SCORE", "ObjectiveSet"]

_logger = logging.getLogger(__name__)

#: The objective predicted by the study surrogate (the trained metric).
SCORE = "score"

_MIN_ADAPT = 3  # finished trials needed before a device latency predictor adapts to the study's values


def _direction_name(direction: Any) -> str:
    name = str(getattr(direction, "name", direction)).lower()
    if name in ("maximize", "minimize"):
        return name
    raise ConfigurationError(f"a direction must be 'maximize' or 'minimize', got {direction!r}")


def _check_budget(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number or None, got {value!r}")
    return float(value)


class ObjectiveSet:
    """One objective per study direction, plus hard budgets.

    Args:
        objectives: ``"score"``, ``"params"``, ``"flops"``, ``"latency"``,
            ``"latency:DEVICE"``, a :class:`~nasassist_plugins.hardware.LatencyPredictor` or
            a callable ``(model, graph) -> float``, one per direction. ``"score"`` may appear
            at most once.
        directions: ``"maximize"`` / ``"minimize"`` (or ``StudyDirection``) per objective.
        example_input: the input ``"latency"`` times models on (and a latency budget without a
            latency objective). Default ``None``.
        max_params: candidates with more trainable parameters are never run. Default ``None``.
        max_latency_ms: candidates slower than this are never run: the ``"latency"`` objective
            if there is one, else the first device-latency objective (its predicted mean),
            else latency measured for the budget alone (needs ``example_input``). Default ``None``.
        latency_options: :class:`~nasassist_plugins.hardware.LatencyMeter` arguments
            (``n_warmup``, ``n_repeats``, ``max_seconds``). Default ``None``.

    Raises:
        ConfigurationError: lengths differ, ``"score"`` twice, unknown names or devices,
            ``"latency"`` without an example input, a non-positive budget.
    """

    def __init__(
        self,
        objectives: Sequence[Any],
        directions: Sequence[Any],
        *,
        example_input: Any = None,
        max_params: float | None = None,
        max_latency_ms: float | None = None,
        latency_options: dict[str, Any] | None = None,
    ) -> None:
        from nasassist_plugins.hardware import LatencyPredictor, resolve_objective
        from nasassist_plugins.hardware.objectives import Objective

        if isinstance(objectives, (str, bytes)) or not isinstance(objectives, Sequence) or not objectives:
            raise ConfigurationError("objectives must be a non-empty list, one entry per study direction")
        if len(objectives) != len(directions):
            raise ConfigurationError(
                f"{len(objectives)} objectives for {len(directions)} study directions: give one objective per direction"
            )
        self.directions = tuple(_direction_name(d) for d in directions)
        self.max_params = _check_budget("max_params", max_params)
        self.max_latency_ms = _check_budget("max_latency_ms", max_latency_ms)
        self.objectives: list[Objective | None] = []
        for spec in objectives:
            if isinstance(spec, str) and spec.strip() == SCORE:
                self.objectives.append(None)
            else:
                self.objectives.append(
                    resolve_objective(spec, example_input=example_input, latency_options=latency_options)
                )
        self.names = tuple(SCORE if o is None else o.name for o in self.objectives)
        if self.names.count(SCORE) > 1:
            raise ConfigurationError("'score' can be only one of the objectives")
        if len(set(self.names)) != len(self.names):
            raise ConfigurationError(f"objectives must differ, got {list(self.names)}")
        self.score_index = self.names.index(SCORE) if SCORE in self.names else None
        # the objective a latency budget applies to
        self._latency_index: int | None = None
        self._budget_meter: Objective | None = None
        if self.max_latency_ms is not None:
            kinds = [(i, o) for i, o in enumerate(self.objectives) if o is not None]
            measured = [i for i, o in kinds if o.name == "latency"]
            predicted = [i for i, o in kinds if o.kind == "predicted"]
            if measured or predicted:
                self._latency_index = (measured or predicted)[0]
            else:
                if example_input is None:
                    raise ConfigurationError(
                        "max_latency_ms without a latency objective measures latency: pass example_input="
                    )
                self._budget_meter = resolve_objective("latency", example_input=example_input,
                                                       latency_options=latency_options)  # fmt: skip
        self._params = resolve_objective("params") if self.max_params is not None else None
        # device predictors adapt to the study's own values; this is the adapted copy per objective
        self._adapted: dict[int, LatencyPredictor] = {}
        self._predictors = {i: o.fn for i, o in enumerate(self.objectives)
                            if o is not None and isinstance(o.fn, LatencyPredictor)}  # fmt: skip

    # ------------------------------------------------------------------ inspection
    @property
    def n_objectives(self) -> int:
        return len(self.names)

    @property
    def needs_model(self) -> bool:
        """Whether some objective or budget times the PyTorch model (not only its graph)."""
        return self._budget_meter is not None or any(o is not None and o.needs_model for o in self.objectives)

    @property
    def has_budgets(self) -> bool:
        return self.max_params is not None or self.max_latency_ms is not None

    @property
    def latency_budget_index(self) -> int | None:
        """Position of the objective ``max_latency_ms`` applies to (``None``: measured for the budget alone)."""
        return self._latency_index

    def with_directions(self, directions: Sequence[Any]) -> "ObjectiveSet":
        """This set for a study's ``directions`` (one per objective).

        Raises:
            ConfigurationError: the number of directions differs from the number of objectives.
        """
        if len(directions) != self.n_objectives:
            raise ConfigurationError(
                f"{self.n_objectives} objectives ({', '.join(self.names)}) for a study with {len(directions)} "
                "directions: give one objective per study direction"
            )
        self.directions = tuple(_direction_name(d) for d in directions)
        return self

    def __repr__(self) -> str:
        budgets = ", ".join(f"{k}={v:g}" for k, v in (("max_params", self.max_params),
                                                      ("max_latency_ms", self.max_latency_ms)) if v is not None)  # fmt: skip
        pairs = ", ".join(f"{n} ({d})" for n, d in zip(self.names, self.directions))
        return f"ObjectiveSet({pairs}{', ' + budgets if budgets else ''})"

    # ------------------------------------------------------------------ candidates
    @property
    def device_indices(self) -> tuple[int, ...]:
        """Positions of the device-latency objectives (predicted from the graph's cost features)."""
        return tuple(self._predictors)

    def evaluate(self, model: Any, graph: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of the objectives computed from one candidate's model and graph.

        Exact objectives (params, FLOPs, measured latency, callables) have ``std`` 0. The
        ``"score"`` and device-latency entries are ``NaN`` here: the surrogate predicts the
        first and :meth:`predict_devices` the others, for the whole pool at once.

        Raises:
            ObjectiveError: an objective cannot be computed (no model to time, a failing
                forward pass, a non-finite value, ...).
        """
        mean = np.full(self.n_objectives, np.nan)
        std = np.full(self.n_objectives, np.nan)
        for i, objective in enumerate(self.objectives):
            if objective is None or i in self._predictors:
                continue
            mean[i], std[i] = objective.evaluate(model, graph), 0.0
        return mean, std

    def features(self, graph: Any) -> np.ndarray | None:
        """The cost features device predictors need (``None`` when no objective needs them)."""
        if not self._predictors:
            return None
        from nasassist_plugins.hardware import hardware_features

        return hardware_features(graph)

    def predict_devices(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` (candidates × objectives) of the device-latency objectives, ``NaN`` elsewhere.

        A predictor bound to a device it has not been adapted to yet gives ``NaN`` (unknown
        until the study has finished a few trials).
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        mean = np.full((x.shape[0], self.n_objectives), np.nan)
        std = np.full((x.shape[0], self.n_objectives), np.nan)
        for i, base in self._predictors.items():
            predictor = self._adapted.get(i, base)
            if predictor.device not in predictor.devices or x.shape[0] == 0:
                continue
            mean[:, i], std[:, i] = predictor.predict(x, return_std=True)
        return mean, std

    def budget_values(self, mean: np.ndarray, model: Any = None, graph: Any = None) -> dict[str, float]:
        """The values the budgets are checked on, from a candidate's objective values ``mean``
        (parameters and latency are computed from the model when they are not objectives)."""
        out: dict[str, float] = {}
        if self._params is not None:
            index = self.names.index("params") if "params" in self.names else None
            out["params"] = float(mean[index]) if index is not None else self._params.evaluate(model, graph)
        if self.max_latency_ms is not None:
            if self._latency_index is not None:
                out["latency_ms"] = float(mean[self._latency_index])
            else:
                assert self._budget_meter is not None
                out["latency_ms"] = self._budget_meter.evaluate(model, graph)
        return out

    def violations(self, budget_values: dict[str, float]) -> list[str]:
        """Why a candidate breaks a hard budget (empty: within every budget, or not known yet)."""
        out = []
        params = budget_values.get("params")
        if self.max_params is not None and params is not None and params > self.max_params:
            out.append(f"params {params:.4g} > max_params {self.max_params:.4g}")
        latency = budget_values.get("latency_ms")
        if self.max_latency_ms is not None and latency is not None and np.isfinite(latency) \
                and latency > self.max_latency_ms:  # fmt: skip
            out.append(f"latency {latency:.4g} ms > max_latency_ms {self.max_latency_ms:.4g}")
        return out

    # ------------------------------------------------------------------ learning from the study
    def observe(self, features: np.ndarray, values: Any) -> None:
        """Adapt every device-latency objective to the values the study stored for it.

        Args:
            features: cost features (:meth:`features`) of finished trials' graphs, one row each.
            values: their stored objective values (rows × objectives).
        """
        x = np.atleast_2d(np.asarray(features, dtype=np.float64))
        if not self._predictors or x.shape[0] == 0:
            return
        table = np.asarray(values, dtype=np.float64).reshape(x.shape[0], self.n_objectives)
        for i, predictor in self._predictors.items():
            ok = np.isfinite(table[:, i]) & (table[:, i] > 0)
            if ok.sum() < _MIN_ADAPT:
                continue
            try:
                self._adapted[i] = predictor.adapt(x[ok], table[ok, i], device=predictor.device or self.names[i])
            except (ConfigurationError, ObjectiveError) as exc:  # keep the last good adaptation
                _logger.debug("could not adapt %s to the study's values: %s", self.names[i], exc)
