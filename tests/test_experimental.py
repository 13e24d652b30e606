"""Features still settling warn with Optuna's ExperimentalWarning, once per process."""

import warnings

import pytest
from optuna.exceptions import ExperimentalWarning

from nasassist_plugins import experimental
from nasassist_plugins.mutation import LLMConfig, LLMProposer
from nasassist_plugins.search import PlannerConfig


@pytest.fixture(autouse=True)
def fresh_markers(monkeypatch):
    monkeypatch.setattr(experimental, "_warned", set())


def _experimental_warnings(make):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
        make()
    return [w for w in caught if issubclass(w.category, ExperimentalWarning)]


def test_llm_proposer_is_marked_experimental_once():
    caught = _experimental_warnings(lambda: LLMProposer(LLMConfig(model="m", base_url="http://127.0.0.1:9/v1")))
    assert len(caught) == 1 and "LLMProposer" in str(caught[0].message)


def test_moe_fine_tuning_is_marked_experimental_but_the_default_is_not():
    assert _experimental_warnings(lambda: PlannerConfig()) == []
    caught = _experimental_warnings(lambda: PlannerConfig(fine_tune="moe"))
    assert len(caught) == 1 and "fine_tune='moe'" in str(caught[0].message)
