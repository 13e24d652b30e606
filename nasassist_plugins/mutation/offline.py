"""The offline mutator: relevance-guided proposals without any LLM (the default proposer).

**Parameter sets** (:meth:`RelevanceGuidedMutator.propose_params`). With a model builder
(``build_model(trial)`` or ``build_graph(params)``) and a predictor:

1. the best parent's graph gets a layer relevance table (Algorithm 2, masking);
2. every parameter is mapped to the modules it affects by rebuilding the model with that
   parameter moved to a neighbouring value and diffing the graphs module by module; the
   parameter's relevance is the summed relevance (predicted drop) of those modules;
3. moves are drawn on the ``focus`` fraction of parameters with the *lowest* relevance
   (the layers that help least; the best layers are kept), as single moves to every
   neighbouring value, pairs of the best single moves, and — when few single moves are
   valid, e.g. in a space with holes — random two- and three-parameter moves;
4. the moves are pre-screened with the predictor and returned best first. When no move
   on the weak parameters is predicted to beat the parent, all parameters become eligible.

Parameters that do not change the graph (learning rate, ...) are left at the parent's
values except, in one proposal out of four, one random neighbour step (the predictor
cannot judge them). Without a builder it falls back to plain neighbourhood mutation:
one or two parameters moved to adjacent values (random other choices for categoricals).

**Source code** (:meth:`RelevanceGuidedMutator.propose_source`): the code edits of
:mod:`.code_edits`, ordered by the relevance of the lines they touch, built in the
sandbox (never in this process), filtered by the shape and parameter constraints and
pre-screened with the predictor; one candidate per call, best first.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch.nn as nn
from optuna.distributions import BaseDistribution

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.mutation.base import SourceCandidate, SourceRequest, source_digest
from nasassist_plugins.mutation.code_edits import generate_edits
from nasassist_plugins.mutation.errors import MutationError
from nasassist_plugins.mutation.space import contains, neighbours, params_key
from nasassist_plugins.relevance import graph_layers, layer_relevance
from nasassist_plugins.search.candidates import sample_value

__all__ = ["RelevanceGuidedMutator", "module_signatures", "predict_sandboxed"]

_logger = logging.getLogger(__name__)
_CACHE_LIMIT = 50_000
_SIGNATURE_SKIP = frozenset({"output_shape", "flops", "masked", "masked_op"})


def predict_sandboxed(predictor: Any, graphs: Sequence[ComputationalGraph],
                      suites: Sequence[Mapping[str, float] | None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores of models built in the sandbox: the fused score from their graphs and the suite
    signals the sandbox measured, each model placed against the predictor's reference (so
    a score does not depend on the other models scored with it and compares with the
    parent's). Predictors without a ``suite`` argument (duck-typed ones) get the graphs only.
    """
    kwargs: dict[str, Any] = {}
    if suites is not None and any(s is not None for s in suites) and _accepts(predictor.predict, "suite"):
        kwargs["suite"] = list(suites)
        if _accepts(predictor.predict, "population"):
            kwargs["population"] = "reference"
    mean, std = predictor.predict(list(graphs), **kwargs)
    return np.asarray(mean, dtype=float).reshape(-1), np.asarray(std, dtype=float).reshape(-1)


def _accepts(function: Any, name: str) -> bool:
    import inspect

    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters


def module_signatures(graph: ComputationalGraph) -> dict[str, tuple]:
    """``{layer key: (op and attributes of its nodes)}``: what a parameter change is diffed on."""
    sig: dict[str, tuple] = {}
    for layer in graph_layers(graph):
        parts = []
        for i in layer.nodes:
            node = graph.nodes[i]
            attrs = tuple(sorted((k, repr(v)) for k, v in node.attrs.items() if k not in _SIGNATURE_SKIP))
            parts.append((node.op_type, attrs))
        sig[layer.key] = tuple(parts)
    return sig


@dataclass
class _Move:
    params: dict[str, Any]
    changed: tuple[str, ...]
    key: str
    predicted: float = float("nan")


class RelevanceGuidedMutator:
    """Relevance-guided mutation of parameter sets and of model source (see the module docstring).

    Args:
        build_model: ``build_model(trial) -> nn.Module`` using ``trial.suggest_*`` (it is
            called with an ``optuna.trial.FixedTrial``); the user's own, trusted builder.
        example_input: tensor or shape to trace built models with.
        predictor: scores graphs (``predict(graphs) -> (mean, std)``); the shipped default
            predictor is loaded on first use when a builder is given and this is ``None``.
        build_graph: ``build_graph(params) -> ComputationalGraph``; preferred over
            ``build_model`` when given (e.g. graphs looked up in a benchmark cache).
        is_valid: ``is_valid(params) -> bool``; moves it rejects are never proposed.
        focus: fraction of the (architecture) parameters, lowest relevance first, that
            moves may change before falling back to all of them; ``1.0`` ignores relevance.
        max_values: neighbouring values tried per parameter.
        pair_moves: best single moves combined pairwise.
        random_moves: random multi-parameter moves tried when few single moves are valid.
        sandbox: builds source edits (a default :class:`~.sandbox.Sandbox` when needed).
        max_source_edits: code edits generated per parent source.
        risk_aversion: moves are ranked by ``mean - risk_aversion × std`` of the predictor
            (0: by the mean alone; larger values prefer moves the predictor is sure about).
    """

    def __init__(
        self,
        build_model: Callable[[Any], nn.Module] | None = None,
        example_input: Any = None,
        predictor: Any = None,
        *,
        build_graph: Callable[[Mapping[str, Any]], ComputationalGraph] | None = None,
        is_valid: Callable[[Mapping[str, Any]], bool] | None = None,
        focus: float = 0.5,
        max_values: int = 4,
        pair_moves: int = 4,
        random_moves: int = 300,
        sandbox: Any = None,
        max_source_edits: int = 16,
        risk_aversion: float = 0.0,
    ) -> None:
        if build_model is not None and build_graph is None and example_input is None:
            raise MutationError("RelevanceGuidedMutator needs example_input (a tensor or a shape) to trace build_model's models")
        if not 0.0 < focus <= 1.0:
            raise MutationError(f"focus must be in (0, 1], got {focus!r}")
        self.build_model = build_model
        self.build_graph = build_graph
        self.example_input = example_input
        self._predictor = predictor
        self.is_valid = is_valid
        self.focus = float(focus)
        self.max_values = int(max_values)
        self.pair_moves = int(pair_moves)
        self.random_moves = int(random_moves)
        self.sandbox = sandbox
        self.max_source_edits = int(max_source_edits)
        self.risk_aversion = float(risk_aversion)
        self.prediction_std: dict[str, float] = {}
        self.explanations: dict[str, str] = {}
        self.predictions: dict[str, float] = {}
        self.graph_builds = 0
        self.predictor_calls = 0
        self._graphs: dict[str, ComputationalGraph | None] = {}
        self._tables: dict[str, Any] = {}
        self._source_queues: dict[str, list[SourceCandidate]] = {}
        self._context: Any = None  # the planner's ProposalContext during one propose_params call

    # ------------------------------------------------------------------ helpers
    @property
    def has_builder(self) -> bool:
        return self.build_model is not None or self.build_graph is not None

    @property
    def predictor(self) -> Any:
        if self._context is not None:  # inside a planner's call: its predictor
            return self._context.predictor
        if self._predictor is None:
            from nasassist_plugins.predictor import default_predictor

            self._predictor = default_predictor()
        return self._predictor

    def explain(self, params: Mapping[str, Any]) -> str:
        """Why ``params`` was proposed (empty when it was not proposed by this mutator)."""
        return self.explanations.get(params_key(params), "")

    def graph_of(self, params: Mapping[str, Any]) -> ComputationalGraph | None:
        """The (cached) graph of a full parameter set; ``None`` when the builder fails on it."""
        key = params_key(params)
        if key in self._graphs:
            return self._graphs[key]
        if len(self._graphs) > _CACHE_LIMIT:
            self._graphs.clear()
        graph: ComputationalGraph | None
        try:
            self.graph_builds += 1
            if self._context is not None:  # built the planner's way, and encoded once for both of us
                graph = self._context.graph_of(dict(params))
            elif self.build_graph is not None:
                graph = self.build_graph(dict(params))
            else:
                import optuna

                from nasassist_plugins.adapters.torch_adapter import from_torch

                model = self.build_model(optuna.trial.FixedTrial(dict(params)))  # type: ignore[misc]
                graph = from_torch(model, self.example_input)
        except Exception as exc:  # noqa: BLE001 - a parameter set the builder rejects is simply not proposed
            _logger.debug("builder failed on %s: %s", params, exc)
            graph = None
        self._graphs[key] = graph
        return graph

    def _predict(self, moves: list[_Move]) -> None:
        todo = [m for m in moves if m.key not in self.predictions]
        graphs = [self._graphs.get(m.key) for m in todo]
        pairs = [(m, g) for m, g in zip(todo, graphs) if g is not None]
        if pairs:
            self.predictor_calls += 1
            if self._context is not None:  # the study's surrogate (fine-tuned once results exist)
                mean, std = self._context.score([m.params for m, _ in pairs])
            else:
                mean, std = self.predictor.predict([g for _, g in pairs])
            stds = np.asarray(std, dtype=float).reshape(-1)
            for (m, _), value, spread in zip(pairs, np.asarray(mean, dtype=float).reshape(-1), stds):
                self.predictions[m.key] = float(value)
                self.prediction_std[m.key] = float(spread)
        for m in moves:
            m.predicted = self.predictions.get(m.key, float("nan"))

    def _valid(self, params: Mapping[str, Any]) -> bool:
        if self.is_valid is None:
            return True
        try:
            return bool(self.is_valid(params))
        except Exception:  # noqa: BLE001 - a failing validity check means "not valid"
            return False

    # ------------------------------------------------------------------ parameter proposals
    def propose_params(
        self,
        parents: Sequence[tuple[dict[str, Any], float]],
        distributions: Mapping[str, BaseDistribution],
        n: int,
        rng: np.random.RandomState,
        context: Any = None,
    ) -> list[dict[str, Any]]:
        """Up to ``n`` new parameter sets near the best parent (see the class docstring).

        ``context`` (a :class:`~nasassist_plugins.search.source.ProposalContext`, given by
        the planner) replaces this mutator's builder and predictor for the call: graphs are
        built the planner's way and moves are scored by the study's surrogate.
        """
        if n <= 0 or not distributions:
            return []
        if context is not None:
            self._context = context
            self.predictions.clear()  # the surrogate changes as the study goes: no stale scores
            self.prediction_std.clear()
            try:
                return self._propose(parents, distributions, n, rng)
            finally:
                self._context = None
        return self._propose(parents, distributions, n, rng)

    def _propose(self, parents: Sequence[tuple[dict[str, Any], float]], distributions: Mapping[str, BaseDistribution],
                 n: int, rng: np.random.RandomState) -> list[dict[str, Any]]:
        seen = {params_key(p) for p, _ in parents}
        if not parents:
            return self._random_fill([], distributions, n, rng, seen)
        parent = self._complete(dict(parents[0][0]), distributions, rng)
        if self.has_builder or self._context is not None:
            try:
                proposals = self._guided(parent, distributions, n, rng, seen)
            except Exception as exc:  # noqa: BLE001 - guidance is an optimisation; never fail a study over it
                _logger.warning("relevance-guided proposal failed (%s: %s); using neighbourhood mutation", type(exc).__name__, exc)
                proposals = []
        else:
            proposals = []
        if len(proposals) < n:
            proposals += self._neighbourhood(parent, distributions, n - len(proposals), rng, seen | {params_key(p) for p in proposals})
        if len(proposals) < n:
            proposals = self._random_fill(proposals, distributions, n, rng, seen)
        return proposals[:n]

    def _complete(self, params: dict[str, Any], distributions: Mapping[str, BaseDistribution],
                  rng: np.random.RandomState) -> dict[str, Any]:
        for name, dist in distributions.items():
            if name not in params or not contains(dist, params[name]):
                params[name] = sample_value(dist, rng)
        return {k: params[k] for k in distributions}

    def _single_moves(self, parent: dict[str, Any], names: Sequence[str], distributions: Mapping[str, BaseDistribution],
                      rng: np.random.RandomState, seen: set[str]) -> list[_Move]:
        moves = []
        for name in names:
            for value in neighbours(distributions[name], parent[name], rng, self.max_values):
                params = {**parent, name: value}
                key = params_key(params)
                if key not in seen and self._valid(params):
                    moves.append(_Move(params, (name,), key))
        return moves

    def _guided(self, parent: dict[str, Any], distributions: Mapping[str, BaseDistribution], n: int,
                rng: np.random.RandomState, seen: set[str]) -> list[dict[str, Any]]:
        parent_key = params_key(parent)
        parent_graph = self.graph_of(parent)
        if parent_graph is None:
            return []
        table = self._tables.get(parent_key)
        if table is None:
            self.predictor_calls += 1
            table = layer_relevance(self.predictor, parent_graph)
            self._tables[parent_key] = table
        deltas = {row.key: row.delta for row in table}
        parent_mean = table.baseline_mean if self._context is None else float(self._context.score([parent])[0][0])
        names = list(distributions)
        moves = self._single_moves(parent, names, distributions, rng, seen)
        if len(moves) < 2 * n + 4 and self.random_moves > 0:
            moves += self._random_multi_moves(parent, names, distributions, rng, seen | {m.key for m in moves})
        for m in moves:
            self.graph_of(m.params)
        moves = [m for m in moves if self._graphs.get(m.key) is not None]
        if not moves:
            return []
        # parameter -> affected modules -> relevance
        base_sig = module_signatures(parent_graph)
        affected: dict[str, set[str]] = {name: set() for name in names}
        for m in moves:
            sig = module_signatures(self._graphs[m.key])  # type: ignore[arg-type]
            changed_modules = {k for k, v in base_sig.items() if sig.get(k) != v}
            for name in m.changed:
                affected[name] |= changed_modules
        architectural = [nm for nm in names if affected[nm]]
        relevance = {nm: float(sum(deltas.get(k, 0.0) for k in affected[nm])) for nm in architectural}
        ranked = sorted(architectural, key=lambda nm: relevance[nm])
        k = max(1, int(np.ceil(self.focus * len(ranked)))) if ranked else 0
        eligible = set(ranked[:k])
        arch_moves = [m for m in moves if set(m.changed) <= set(architectural)]
        focused = [m for m in arch_moves if set(m.changed) <= eligible]
        self._predict(arch_moves if self.focus >= 1.0 else focused)
        pool = focused
        if not any(m.predicted > parent_mean for m in focused):
            self._predict(arch_moves)
            pool = arch_moves
        pool = pool + self._pairs(parent, pool, seen)
        self._predict(pool)
        pool = [m for m in pool if np.isfinite(m.predicted)]
        pool.sort(key=lambda m: -(m.predicted - self.risk_aversion * self.prediction_std.get(m.key, 0.0)))
        chosen: list[dict[str, Any]] = []
        taken: set[str] = set()
        for m in pool:
            if m.key in taken:
                continue
            params = dict(m.params)
            non_arch = [nm for nm in names if nm not in architectural]
            if non_arch and rng.rand() < 0.25:
                nm = non_arch[int(rng.randint(len(non_arch)))]
                options = neighbours(distributions[nm], params[nm], rng, self.max_values)
                if options:
                    params[nm] = options[int(rng.randint(len(options)))]
            key = params_key(params)
            if key in seen or key in taken:
                continue
            taken.add(key)
            self.explanations[key] = self._explain(parent, m, relevance, parent_mean, focus=m in focused)
            chosen.append(params)
            if len(chosen) >= n:
                break
        return chosen

    def _pairs(self, parent: dict[str, Any], singles: list[_Move], seen: set[str]) -> list[_Move]:
        best: dict[str, _Move] = {}
        for m in sorted((m for m in singles if len(m.changed) == 1 and np.isfinite(m.predicted)), key=lambda m: -m.predicted):
            best.setdefault(m.changed[0], m)
        top = list(best.values())[: self.pair_moves]
        out = []
        for a, b in itertools.combinations(top, 2):
            params = {**parent, **{n: a.params[n] for n in a.changed}, **{n: b.params[n] for n in b.changed}}
            key = params_key(params)
            if key not in seen and self._valid(params) and self.graph_of(params) is not None:
                out.append(_Move(params, a.changed + b.changed, key))
        return out

    def _random_multi_moves(self, parent: dict[str, Any], names: Sequence[str], distributions: Mapping[str, BaseDistribution],
                            rng: np.random.RandomState, seen: set[str]) -> list[_Move]:
        out: list[_Move] = []
        keys: set[str] = set()
        for _ in range(self.random_moves):
            size = 2 if rng.rand() < 0.7 else 3
            picked = [names[int(i)] for i in rng.choice(len(names), size=min(size, len(names)), replace=False)]
            params = dict(parent)
            for nm in picked:
                options = neighbours(distributions[nm], params[nm], rng, self.max_values)
                if options:
                    params[nm] = options[int(rng.randint(len(options)))]
            key = params_key(params)
            if key in seen or key in keys or not self._valid(params):
                continue
            keys.add(key)
            out.append(_Move(params, tuple(nm for nm in picked if params[nm] != parent[nm]), key))
            if len(out) >= 32:
                break
        return out

    def _explain(self, parent: Mapping[str, Any], move: _Move, relevance: Mapping[str, float], parent_mean: float,
                 focus: bool) -> str:
        parts = []
        for nm in move.changed:
            rel = relevance.get(nm)
            rel_text = f"relevance {rel:+.4f}" if rel is not None else "no architectural effect"
            parts.append(f"{nm}: {parent[nm]!r} → {move.params[nm]!r} ({rel_text})")
        why = "the layers these parameters control help least" if focus else "no weak-layer change was predicted to help"
        return f"changed {'; '.join(parts)} — {why}; predicted {parent_mean:.4f} → {move.predicted:.4f}"

    def _neighbourhood(self, parent: dict[str, Any], distributions: Mapping[str, BaseDistribution], n: int,
                       rng: np.random.RandomState, seen: set[str]) -> list[dict[str, Any]]:
        names = list(distributions)
        out: list[dict[str, Any]] = []
        for _ in range(50 * n):
            if len(out) >= n:
                break
            size = 1 if rng.rand() < 0.7 or len(names) == 1 else 2
            params = dict(parent)
            changed = []
            for nm in [names[int(i)] for i in rng.choice(len(names), size=size, replace=False)]:
                options = neighbours(distributions[nm], params[nm], rng, self.max_values)
                if options:
                    params[nm] = options[int(rng.randint(len(options)))]
                    changed.append(nm)
            key = params_key(params)
            if changed and key not in seen and self._valid(params):
                seen = seen | {key}
                self.explanations[key] = "neighbourhood mutation of " + ", ".join(
                    f"{nm}: {parent[nm]!r} → {params[nm]!r}" for nm in changed)
                out.append(params)
        return out

    def _random_fill(self, proposals: list[dict[str, Any]], distributions: Mapping[str, BaseDistribution], n: int,
                     rng: np.random.RandomState, seen: set[str]) -> list[dict[str, Any]]:
        out = list(proposals)
        keys = seen | {params_key(p) for p in out}
        for _ in range(50 * n):
            if len(out) >= n:
                break
            params = {nm: sample_value(d, rng) for nm, d in distributions.items()}
            key = params_key(params)
            if key not in keys and self._valid(params):
                keys.add(key)
                self.explanations[key] = "random sample (no parent to mutate)"
                out.append(params)
        return out

    # ------------------------------------------------------------------ source proposals
    def propose_source(self, request: SourceRequest) -> SourceCandidate | None:
        """The best predicted, not yet seen code edit of ``request.source``; ``None`` when none is left."""
        key = source_digest(request.source)
        queue = self._source_queues.get(key)
        if queue is None:
            queue = self._screen_edits(request)
            self._source_queues[key] = queue
        while queue:
            candidate = queue.pop(0)
            if candidate.digest not in request.seen:
                return candidate
        return None

    def _screen_edits(self, request: SourceRequest) -> list[SourceCandidate]:
        edits = generate_edits(request.source, request.line_relevance, max_edits=self.max_source_edits)
        if not edits:
            return []
        sandbox = request.sandbox or self.sandbox
        if sandbox is None:
            from nasassist_plugins.mutation.sandbox import Sandbox

            sandbox = self.sandbox = Sandbox()
        constraints = request.constraints
        results = sandbox.check_many([e.source for e in edits], constraints.input_shape,
                                     entries=[request.entry] * len(edits), trusted=request.trusted_source)
        low, high = constraints.param_range
        kept: list[tuple[Any, Any, ComputationalGraph]] = []
        for edit, result in zip(edits, results):
            if not result.ok or tuple(result.output_shape or ()) != tuple(constraints.output_shape):
                continue
            if result.num_params is None or not low <= result.num_params <= high:
                continue
            kept.append((edit, result, result.graph()))
        if not kept:
            return []
        predictor = request.predictor if request.predictor is not None else self.predictor
        self.predictor_calls += 1
        mean, _ = predict_sandboxed(predictor, [g for _, _, g in kept], [r.extra.get("suite") for _, r, _ in kept])
        candidates = [
            SourceCandidate(edit.source, edit.explanation, f"offline:{edit.rule}", sandbox_result=result,
                            predicted=float(m), info={"rule": edit.rule, "line": edit.line})
            for (edit, result, _), m in zip(kept, np.asarray(mean, dtype=float).reshape(-1))
        ]
        candidates.sort(key=lambda c: -(c.predicted if c.predicted is not None else -np.inf))
        return candidates
