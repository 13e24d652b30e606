"""What a planning decision returns: the chosen candidate and its ranked fallbacks (plain data).

:meth:`Planner.plan <nasassist_plugins.search.planner.Planner.plan>` returns a
:class:`Decision`; its :attr:`~Decision.alternatives` are :class:`Choice` objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from nasassist_plugins.search.space import to_builtin

__all__ = ["Choice", "Decision"]


@dataclass
class Choice:
    """One ranked candidate of a decision (plain data).

    Attributes:
        params: the sample / hyper-parameters to run.
        key: canonical key of ``params`` (:func:`nasassist_plugins.search.params_key`).
        arch: identity of the architecture (equal for graphs the predictor cannot tell apart).
        origin: ``"random"``, ``"mutation"`` or ``"proposer"``.
        predicted_mean, predicted_std: the surrogate's prediction (zero-shot rank score, or
            the metric's scale once fine-tuned; larger is better).
        zero_shot: the zero-shot rank score (comparable across studies).
        zero_shot_stage: 2 when it was re-scored from the built model, else 1.
    """

    params: dict[str, Any]
    key: str
    arch: str
    origin: str
    predicted_mean: float
    predicted_std: float
    zero_shot: float
    zero_shot_stage: int


@dataclass
class Decision(Choice):
    """The planned candidate, why it was chosen, and the ranked fallbacks.

    Attributes (besides those of :class:`Choice`):
        threshold: the quantile below which candidates were excluded (``None``: no filter).
        n_candidates: size of the scored pool (after de-duplication).
        fine_tuned_on: results the surrogate was fitted on (0: zero-shot).
        pool_quantile: share of the pool predicted no better than the chosen candidate (on the stage-1
            scores, which the threshold also refers to).
        pool_origins: how many pool candidates came from each origin.
        plan_seconds: wall time of the decision.
        alternatives: the next choices, best first (for a front end whose first choice
            was reserved meanwhile by another worker).
    """

    threshold: float | None = None
    n_candidates: int = 0
    fine_tuned_on: int = 0
    pool_quantile: float = 1.0
    pool_origins: dict[str, int] = field(default_factory=dict)
    plan_seconds: float = 0.0
    alternatives: list[Choice] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for logs and checkpoints (without the alternatives)."""
        data = asdict(self)
        data.pop("alternatives")
        return to_builtin(data)

    def choices(self) -> list[Choice]:
        """This decision's choice, then the alternatives."""
        return [self, *self.alternatives]
