"""Layer relevance by masking (predictor-driven) and data-driven saliency; see the package docstring."""

from __future__ import annotations

import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import numpy as np
import torch
import torch.nn as nn

from nasassist_plugins.errors import RelevanceError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.coarsen import (
    block_key,
    folded_blocks,
    keep_block_apart,
)
from nasassist_plugins.relevance.masking import (
    Layer,
    graph_layers,
    masked_variants,
)

__all__ = [
    "NORMALISATION",
    "RelevanceRow",
    "RelevanceTable",
    "SaliencyRow",
    "SaliencyTable",
    "data_driven_relevance",
    "layer_relevance",
    "normalise_contributions",
]

#: One-line description of the normalisation, stored in every JSON report.
NORMALISATION = (
    "weight = max(delta, 0) / sum(max(delta, 0)) (0 for all when no delta is positive); "
    "signed_weight = delta / sum(|delta|)"
)



class _Predicts(Protocol):
    def predict(self, items: Sequence[Any], example_input: Any = None) -> tuple[np.ndarray, np.ndarray]: ...


# ----------------------------------------------------------------------------- normalisation
def normalise_contributions(values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(weights, signed_weights)`` of raw contributions (see the module docstring).

    Non-finite inputs are handled as limits: ``nan`` counts as 0; when some values are
    ``+inf`` (SynFlow overflowing), they share the whole weight equally and every
    finite value gets 0.
    """
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=np.inf, neginf=-np.inf)
    if v.size == 0:
        return np.zeros(0), np.zeros(0)
    if np.isinf(v).any():
        signed = np.where(np.isinf(v), np.sign(v), 0.0)
        signed = signed / np.abs(signed).sum()
        positive = np.isposinf(v)
        weights = positive / positive.sum() if positive.any() else np.zeros_like(v)
        return weights.astype(np.float64), signed
    positive = np.clip(v, 0.0, None)
    total = positive.sum()
    weights = positive / total if total > 0 else np.zeros_like(v)
    magnitude = np.abs(v).sum()
    signed = v / magnitude if magnitude > 0 else np.zeros_like(v)
    return weights, signed


def _ranks(values: np.ndarray) -> np.ndarray:
    """1 for the largest value, 2 for the next, ...; ties keep their input order."""
    order = np.argsort(-values, kind="stable")
    ranks = np.empty(len(values), dtype=int)
    ranks[order] = np.arange(1, len(values) + 1)
    return ranks


# ----------------------------------------------------------------------------- predictor-driven
@dataclass(frozen=True)
class RelevanceRow:
    """One layer's relevance.

    Attributes:
        key: qualified module name (``layer1.0.conv2``), or the node name of a functional op.
        module: the module name, ``None`` for a functional op.
        op_types: op type of each of the layer's nodes.
        num_params: parameters removed by masking the layer.
        masked_mean, masked_std: the prediction with the layer masked.
        reference_mean: the unmasked prediction the drop is measured from: the baseline,
            or the baseline with the layer's block kept out of repeat folding (module docstring).
        delta: ``reference_mean - masked_mean`` (positive: the layer helps).
        weight: normalised non-negative contribution (sums to 1 over the table).
        signed_weight: ``delta / sum(|delta|)``.
        rank: 1 for the largest drop.
        order: position of the layer in the breadth-first traversal (0-based).
    """

    key: str
    module: str | None
    op_types: tuple[str, ...]
    num_params: int
    masked_mean: float
    masked_std: float
    reference_mean: float
    delta: float
    weight: float
    signed_weight: float
    rank: int
    order: int

    @property
    def op_summary(self) -> str:
        """Compact op list, e.g. ``conv2d`` or ``relu×3``."""
        return Layer(self.key, self.module, (), self.op_types, self.num_params).op_summary


@dataclass
class RelevanceTable:
    """Per-layer relevance of one graph, in breadth-first layer order."""

    rows: list[RelevanceRow]
    baseline_mean: float
    baseline_std: float
    graph_name: str = "graph"
    target_description: str = ""
    normalisation: str = NORMALISATION

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[RelevanceRow]:
        return iter(self.rows)

    def __getitem__(self, key: str) -> RelevanceRow:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"no layer {key!r} in the relevance table of {self.graph_name!r}")

    @property
    def weights(self) -> dict[str, float]:
        """``{layer key: normalised weight}``."""
        return {r.key: r.weight for r in self.rows}

    @property
    def deltas(self) -> dict[str, float]:
        """``{layer key: raw drop}``."""
        return {r.key: r.delta for r in self.rows}

    def ranked(self) -> list[RelevanceRow]:
        """Rows from the most to the least relevant."""
        return sorted(self.rows, key=lambda r: r.rank)

    def top(self, n: int | None) -> list[RelevanceRow]:
        """The ``n`` rows with the largest ``|delta|``, kept in traversal order (all when ``None``)."""
        if n is None or n >= len(self.rows):
            return list(self.rows)
        keep = sorted(self.rows, key=lambda r: -abs(r.delta))[: max(n, 0)]
        return sorted(keep, key=lambda r: r.order)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (baseline, normalisation, one entry per layer)."""
        return {
            "graph": self.graph_name,
            "baseline": {"mean": self.baseline_mean, "std": self.baseline_std},
            "target_description": self.target_description,
            "normalisation": self.normalisation,
            "layers": [{**asdict(r), "op_types": list(r.op_types)} for r in self.rows],
        }

    def to_markdown(self, top: int | None = None) -> str:
        """A Markdown table (module, ops, params, drop, weight, signed weight, rank)."""
        lines = [
            f"Layer relevance of `{self.graph_name}` — baseline prediction "
            f"{self.baseline_mean:.4f} ± {self.baseline_std:.4f}",
            "",
            "| module | ops | params | predicted drop | weight | signed weight | rank |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in self.top(top):
            lines.append(
                f"| `{r.key}` | {r.op_summary} | {r.num_params:,} | {r.delta:+.4g} | {r.weight:.4f} "
                f"| {r.signed_weight:+.4f} | {r.rank} |"
            )
        return "\n".join(lines)


def layer_relevance(
    predictor: _Predicts,
    model_or_graph: nn.Module | ComputationalGraph,
    example_input: Any = None,
    *,
    batch_size: int = 512,
) -> RelevanceTable:
    """Relevance of every layer of a model by masking it and re-predicting.

    The graph's layers (see :func:`~.masking.graph_layers`) are visited breadth-first;
    each masked variant, the unmasked baseline and the references of layers inside
    folded repeated blocks (module docstring) are scored in one batched
    ``predictor.predict`` call.

    Args:
        predictor: a :class:`~nasassist_plugins.predictor.Predictor` (anything with
            ``predict(graphs) -> (mean, std)`` works).
        model_or_graph: an ``nn.Module`` (traced with ``example_input``) or a graph. For a
            module and a predictor with a fused score, every masked variant is also run by
            the training-free suite (the layer's module replaced by its input, or zeros when
            the shapes differ), so relevance follows the fused score; a graph gets the
            learned part only.
        example_input: tensor or shape to trace a module with.
        batch_size: graphs per encoder batch (passed to ``predict`` when it accepts it).

    Raises:
        RelevanceError: no example input for a module, a graph without maskable layers,
            or a predictor that returns the wrong number of predictions.
        AdapterError: the module cannot be traced (e.g. it fails on the input).
    """
    graph = _as_graph(model_or_graph, example_input)
    layers = graph_layers(graph)
    if not layers:
        raise RelevanceError(f"graph {graph.name!r} has no layers to mask (only input/output nodes)")
    variants = masked_variants(graph, layers)
    references, reference_of = _references(graph, layers)
    suite = None
    if isinstance(model_or_graph, nn.Module) and getattr(predictor, "has_fusion", False) \
            and not getattr(predictor, "is_surrogate", False):
        suite = _masked_suites(model_or_graph, layers, example_input, len(references))
    mean, std = _predict_all(predictor, [graph, *variants, *references], batch_size, suite)
    reference_mean = np.array([mean[0] if r is None else mean[1 + len(variants) + r] for r in reference_of])
    deltas = reference_mean - mean[1 : 1 + len(variants)]
    weights, signed = normalise_contributions(deltas)
    ranks = _ranks(deltas)
    rows = [
        RelevanceRow(
            key=layer.key,
            module=layer.module,
            op_types=layer.op_types,
            num_params=layer.num_params,
            masked_mean=float(mean[k + 1]),
            masked_std=float(std[k + 1]),
            reference_mean=float(reference_mean[k]),
            delta=float(deltas[k]),
            weight=float(weights[k]),
            signed_weight=float(signed[k]),
            rank=int(ranks[k]),
            order=k,
        )
        for k, layer in enumerate(layers)
    ]
    return RelevanceTable(
        rows=rows,
        baseline_mean=float(mean[0]),
        baseline_std=float(std[0]),
        graph_name=graph.name,
        target_description=str(getattr(predictor, "target_description", "")),
    )


def _references(graph: ComputationalGraph, layers: Sequence[Layer]) -> tuple[list[ComputationalGraph], list[int | None]]:
    """Reference graphs for layers inside folded repeated blocks.

    Returns one graph per such block (the baseline with the block kept apart from its
    identical siblings) and, per layer, the index of its reference (``None``: the baseline).
    """
    folded = folded_blocks(graph)
    index: dict[tuple[str, int], int] = {}
    references: list[ComputationalGraph] = []
    reference_of: list[int | None] = []
    for layer in layers:
        block = block_key(layer.module)
        if block is None or block not in folded:
            reference_of.append(None)
            continue
        if block not in index:
            index[block] = len(references)
            references.append(keep_block_apart(graph, block))
        reference_of.append(index[block])
    return references, reference_of


def _as_graph(model_or_graph: nn.Module | ComputationalGraph, example_input: Any) -> ComputationalGraph:
    """The graph itself, or the module traced on ``example_input``."""
    if isinstance(model_or_graph, ComputationalGraph):
        return model_or_graph.validate()
    if isinstance(model_or_graph, nn.Module):
        if example_input is None:
            raise RelevanceError(
                f"layer_relevance got a {type(model_or_graph).__name__} module without example_input: "
                "pass a tensor or an input shape such as (1, 3, 32, 32) to trace it"
            )
        from nasassist_plugins.adapters.torch_adapter import from_torch

        return from_torch(model_or_graph, example_input)
    raise RelevanceError(
        f"layer_relevance takes an nn.Module or a ComputationalGraph, got {type(model_or_graph).__name__}"
    )


def _masked_suites(model: nn.Module, layers: Sequence[Layer], example_input: Any, references: int) -> list[Any]:
    """Suite signals of the model, of each layer-masked model, and (the model's) for each reference.

    A module layer is masked in the model the way the graph is masked: its operation is
    removed (its output is its input when the shapes agree, zeros of its output's shape
    otherwise). A functional layer (no module) keeps the model's signals.
    """
    from nasassist_plugins.proxies.suite import compute_suite

    baseline = compute_suite(model, example_input=example_input)
    rows: list[Any] = [baseline]
    for layer in layers:
        module = _submodule(model, layer.module)
        if module is None:
            rows.append(baseline)
            continue
        handle = module.register_forward_hook(_mask_output)
        try:
            rows.append(compute_suite(model, example_input=example_input))
        finally:
            handle.remove()
    return rows + [baseline] * references


def _submodule(model: nn.Module, name: str | None) -> nn.Module | None:
    if not name:
        return None
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def _mask_output(module: nn.Module, args: tuple, output: Any) -> Any:
    if not isinstance(output, torch.Tensor):
        return output
    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
    if x is not None and x.shape == output.shape:
        return x
    return torch.zeros_like(output)


def _predict_all(predictor: _Predicts, graphs: list[ComputationalGraph], batch_size: int,
                 suite: list[Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One batched prediction of all graphs (fused, each placed against the reference, when
    ``suite`` holds their signals), checked for shape."""
    kwargs: dict[str, Any] = {}
    if _accepts_batch_size(predictor.predict):
        kwargs["batch_size"] = batch_size
    if suite is not None:
        kwargs.update(suite=suite, population="reference")
    if kwargs:
        mean, std = predictor.predict(graphs, **kwargs)  # type: ignore[call-arg]
    else:
        mean, std = predictor.predict(graphs)
    mean = np.asarray(mean, dtype=np.float64).reshape(-1)
    std = np.asarray(std, dtype=np.float64).reshape(-1)
    if mean.shape[0] != len(graphs) or std.shape[0] != len(graphs):
        raise RelevanceError(
            f"the predictor returned {mean.shape[0]} predictions for {len(graphs)} graphs "
            "(baseline, masked layers and references)"
        )
    return mean, std


def _accepts_batch_size(function: Any) -> bool:
    """Whether ``function`` takes a ``batch_size`` keyword (duck-typed predictors may not)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "batch_size" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


# ----------------------------------------------------------------------------- data-driven
@dataclass(frozen=True)
class SaliencyRow:
    """One parameterised module's data-driven saliency (raw, normalised, rank)."""

    key: str
    num_params: int
    saliency: float
    weight: float
    rank: int


@dataclass
class SaliencyTable:
    """Per-module saliency (SynFlow or SNIP), in the model's module order."""

    method: str
    rows: list[SaliencyRow] = field(default_factory=list)
    normalisation: str = "weight = saliency / sum(saliency) (saliencies are non-negative)"

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[SaliencyRow]:
        return iter(self.rows)

    def __getitem__(self, key: str) -> SaliencyRow:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"no module {key!r} in the {self.method} saliency table")

    @property
    def weights(self) -> dict[str, float]:
        """``{module name: normalised weight}``."""
        return {r.key: r.weight for r in self.rows}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return {"method": self.method, "normalisation": self.normalisation, "modules": [asdict(r) for r in self.rows]}

    def to_markdown(self) -> str:
        """A Markdown table (module, params, raw saliency, weight, rank)."""
        lines = [
            f"Data-driven relevance ({self.method})",
            "",
            "| module | params | saliency | weight | rank |",
            "|---|---:|---:|---:|---:|",
        ]
        lines += [f"| `{r.key}` | {r.num_params:,} | {r.saliency:.4g} | {r.weight:.4f} | {r.rank} |" for r in self.rows]
        return "\n".join(lines)


def data_driven_relevance(
    model: nn.Module,
    inputs: torch.Tensor | Sequence[int],
    method: str = "synflow",
    *,
    targets: torch.Tensor | None = None,
    seed: int = 0,
) -> SaliencyTable:
    """Training-free relevance of each module that owns parameters.

    Sums SynFlow or SNIP per-parameter saliency over each module's own parameters
    (:func:`~nasassist_plugins.proxies.module_saliency`) and normalises as
    :func:`normalise_contributions`. Keys are the qualified module names that
    :func:`layer_relevance` uses for the same layers; parameter-free modules (ReLU,
    pooling) have no saliency and are not listed. A layer whose output never reaches
    the network's output scores exactly 0.

    Args:
        model: the network (never changed).
        inputs: a batch, or its shape including the batch dimension.
        method: ``"synflow"`` or ``"snip"``.
        targets: labels for SNIP (random classes when ``None``).
        seed: seeds synthetic data.

    Raises:
        RelevanceError: an unknown method, or ``model`` is not an ``nn.Module``.
        ProxyInputError: the model fails on the batch (e.g. wrong input shape).
    """
    from nasassist_plugins.proxies import SALIENCY_METHODS, module_saliency

    if method not in SALIENCY_METHODS:
        raise RelevanceError(f"unknown data-driven relevance method {method!r}; choose from {', '.join(SALIENCY_METHODS)}")
    if not isinstance(model, nn.Module):
        raise RelevanceError(f"data_driven_relevance needs a torch.nn.Module, got {type(model).__name__}")
    saliency = module_saliency(model, inputs, targets, method=method, seed=seed)
    params = _own_parameter_counts(model)
    keys = list(saliency)
    values = np.array([saliency[k] for k in keys], dtype=np.float64)
    weights, _ = normalise_contributions(values)
    ranks = _ranks(np.nan_to_num(values, nan=-math.inf))
    rows = [
        SaliencyRow(key=k, num_params=params.get(k, 0), saliency=float(values[i]), weight=float(weights[i]), rank=int(ranks[i]))
        for i, k in enumerate(keys)
    ]
    return SaliencyTable(method=method, rows=rows)


def _own_parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters each module owns directly (not through its children)."""
    return {
        name: sum(p.numel() for p in module._parameters.values() if p is not None)
        for name, module in model.named_modules()
    }
