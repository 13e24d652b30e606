"""Improvement-loop benchmark: the thesis's Table 3.6 with tabular ground truth.

For each family (NB201, NB101), 50 seed architectures are drawn uniformly from the
benchmark table. Each seed runs Algorithm 3 (:func:`nasassist_plugins.mutation.improve_params`)
with ``MAX_ITERATION = 10`` on the cell's parameter set, proposals from the offline
:class:`~nasassist_plugins.mutation.RelevanceGuidedMutator` (or an LLM endpoint when
``--llm-model``/``--base-url`` are given). A proposal's *estimated accuracy* is the
predictor's score mapped through the family's accuracy quantiles (the shipped predictor
predicts a per-family rank score in [0, 1]; this is the thesis's ``EstimateAccuracy``), and
the threshold is ``estimated accuracy of the seed + σ/4``, σ the standard deviation of the
family's accuracies. The true accuracy of every returned architecture is looked up in
the table.

Search spaces:

* NB201: 6 categorical parameters (``edge0``..``edge5``, the op of each cell edge, in
  the order of the official cell string); every cell is labelled (12-epoch CIFAR-10
  validation accuracy), graphs come from the family's cache.
* NB101: 21 binary edge parameters (``e_i_j``) and 5 op parameters (``op1``..``op5``)
  of a 7-vertex cell. Only 30,001 of the 423,624 cells carry an accuracy in
  ``../shared/data``, so the space is restricted to those (``is_valid``: the pruned cell's
  NAS-Bench-101 hash is in the table; an architecture already evaluated for the seed is
  not proposed again). Accuracy: 108-epoch validation.

Also run, as a control, plain neighbourhood mutation (same loop, no relevance, no
predictor pre-screening): the difference is what the guidance buys.

Usage::

    python benchmarks/improve_loop.py --data ../shared/data                  # default weights
    python benchmarks/improve_loop.py --data ../shared/data --weights benchmarks/results/predictor_nb101.safetensors \
        --out-prefix benchmarks/results/improve_loop_nb101w

Writes ``<prefix>.md``, ``<prefix>.json`` and ``<prefix>.png``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

THESIS = {"nb101": {"iterations": 4.32, "gain": 0.032, "max_outs": 2}, "nb201": {"iterations": 7.91, "gain": 0.012, "max_outs": 14}}
NB101_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_NB201_SOURCES = (0, 0, 1, 0, 1, 2)


# ----------------------------------------------------------------------------- NB101 hashing
def nb101_hash(matrix: np.ndarray, ops: list[str]) -> str:
    """NAS-Bench-101's isomorphism-invariant module hash of a pruned cell.

    Vertex labels: -1 input, -2 output, else the op's index in (conv3x3, conv1x1, maxpool);
    each vertex starts from md5 of (out-degree, in-degree, label) and is re-hashed with its
    sorted in- and out-neighbour hashes once per vertex; the fingerprint is md5 of the
    sorted vertex hashes.
    """
    n = matrix.shape[0]
    labels = [-1] + [NB101_OPS.index(op) for op in ops[1:-1]] + [-2]
    out_deg, in_deg = matrix.sum(axis=1).tolist(), matrix.sum(axis=0).tolist()
    hashes = [hashlib.md5(str((out_deg[v], in_deg[v], labels[v])).encode()).hexdigest() for v in range(n)]
    for _ in range(n):
        new = []
        for v in range(n):
            ins = "".join(sorted(hashes[w] for w in range(n) if matrix[w, v]))
            outs = "".join(sorted(hashes[w] for w in range(n) if matrix[v, w]))
            new.append(hashlib.md5((ins + "|" + outs + "|" + hashes[v]).encode()).hexdigest())
        hashes = new
    return hashlib.md5(str(sorted(hashes)).encode()).hexdigest()


# ----------------------------------------------------------------------------- families as spaces
class Space:
    """A family as a search space: distributions, seeds, truth lookup, graphs."""

    name: str
    distributions: dict[str, Any]
    accuracies: np.ndarray  # every labelled architecture's accuracy (fraction)

    def key(self, params: Mapping[str, Any]) -> str | None: ...
    def truth(self, key: str) -> float: ...
    def graph(self, key: str): ...
    def seed_params(self, index: int) -> dict[str, Any]: ...


class NB201Space(Space):
    def __init__(self, data: Path, target: str) -> None:
        from optuna.distributions import CategoricalDistribution

        from nasassist_plugins.families import load_family

        self.name = "nb201"
        self.family = load_family("nb201", data, progress=False)
        self.accuracies = np.asarray(self.family.target(target), dtype=float) / 100.0
        self.index = {arch: i for i, arch in enumerate(self.family.specs)}
        self.distributions = {f"edge{k}": CategoricalDistribution(NB201_OPS) for k in range(6)}

    def key(self, params: Mapping[str, Any]) -> str | None:
        ops = [params[f"edge{k}"] for k in range(6)]
        s = [f"{op}~{src}" for op, src in zip(ops, _NB201_SOURCES)]
        return f"|{s[0]}|+|{s[1]}|{s[2]}|+|{s[3]}|{s[4]}|{s[5]}|"

    def truth(self, key: str) -> float:
        return float(self.accuracies[self.index[key]])

    def graph(self, key: str):
        return self.family.graphs[self.index[key]]

    def seed_params(self, index: int) -> dict[str, Any]:
        arch = self.family.specs[index]
        ops = [edge.split("~")[0] for node in arch.strip("|").split("|+|") for edge in node.split("|")]
        return {f"edge{k}": op for k, op in enumerate(ops)}

    def __len__(self) -> int:
        return len(self.family.specs)


class NB101Space(Space):
    def __init__(self, data: Path) -> None:
        from optuna.distributions import CategoricalDistribution

        from nasassist_plugins.families._base import get_family_def
        from nasassist_plugins.families._cache import load_store, resolve_cache_dir

        self.name = "nb101"
        rows = list(csv.DictReader(open(data / "nb101" / "nb101_30k_with_arch.csv")))
        self.hashes = [r["hash"] for r in rows]
        self.specs = [(json.loads(r["adjacency"]), json.loads(r["ops"])) for r in rows]
        self.accuracies = np.array([float(r["val_acc_108"]) for r in rows])
        self.by_hash = {h: i for i, h in enumerate(self.hashes)}
        self.distributions: dict[str, Any] = {f"e{i}_{j}": CategoricalDistribution((0, 1)) for i in range(7) for j in range(i + 1, 7)}
        self.distributions.update({f"op{v}": CategoricalDistribution(NB101_OPS) for v in range(1, 6)})
        definition = get_family_def("nb101")
        key_hash, header = definition.cache_identity()
        directory = resolve_cache_dir(None)
        path = directory / f"nb101-{key_hash}.npz" if directory is not None else None
        self.store = load_store(path, header) if path is not None and path.exists() else None
        self.spec_key = definition.spec_to_key
        self._key_cache: dict[str, str | None] = {}
        self._graphs: dict[str, Any] = {}
        self.traced = 0

    def _spec(self, params: Mapping[str, Any]):
        matrix = np.zeros((7, 7), dtype=int)
        for i in range(7):
            for j in range(i + 1, 7):
                matrix[i, j] = int(params[f"e{i}_{j}"])
        ops = ["input"] + [params[f"op{v}"] for v in range(1, 6)] + ["output"]
        return matrix, ops

    def key(self, params: Mapping[str, Any]) -> str | None:
        from nasassist_plugins.adapters.cells import validate_nb101_spec

        matrix, ops = self._spec(params)
        raw = json.dumps([matrix.tolist(), ops])
        if raw not in self._key_cache:
            try:
                adjacency, pruned_ops = validate_nb101_spec(matrix, ops)
                h = nb101_hash(np.asarray(adjacency), pruned_ops)
            except ValueError:
                h = None
            self._key_cache[raw] = h if h in self.by_hash else None
        return self._key_cache[raw]

    def truth(self, key: str) -> float:
        return float(self.accuracies[self.by_hash[key]])

    def graph(self, key: str):
        if key not in self._graphs:
            spec = self.specs[self.by_hash[key]]
            skey = self.spec_key(spec)
            if self.store is not None and skey in self.store:
                self._graphs[key] = self.store.get(skey)
            else:
                from nasassist_plugins.families import spec_graph

                self.traced += 1
                self._graphs[key] = spec_graph("nb101", spec)
        return self._graphs[key]

    def seed_params(self, index: int) -> dict[str, Any]:
        adjacency, ops = self.specs[index]
        n = len(ops)
        # interior vertices keep their order at 1..n-2, the output moves to 6, the rest stay unused
        position = list(range(n - 1)) + [6]
        params = {name: 0 for name in self.distributions if name.startswith("e")}
        for i in range(n):
            for j in range(n):
                if adjacency[i][j]:
                    params[f"e{position[i]}_{position[j]}"] = 1
        for v in range(1, 6):
            params[f"op{v}"] = ops[v] if v < n - 1 else NB101_OPS[0]
        return params

    def __len__(self) -> int:
        return len(self.specs)


# ----------------------------------------------------------------------------- one seed
def run_seed(space: Space, seed_index: int, predictor: Any, proposer_factory: Callable[..., Any], *, max_iter: int,
             sigma: float, rng_seed: int) -> dict[str, Any]:
    from nasassist_plugins.mutation import improve_params

    sorted_acc = np.sort(space.accuracies)
    evaluated: set[str] = set()
    cache: dict[str, float] = {}
    predictions = {"n": 0}

    def estimate(score: float) -> float:
        q = float(np.clip(score, 0.0, 1.0))
        return float(np.quantile(sorted_acc, q))

    def predicted(key: str) -> float:
        if key not in cache:
            mean, _ = predictor.predict([space.graph(key)])
            predictions["n"] += 1
            cache[key] = float(np.asarray(mean).reshape(-1)[0])
        return cache[key]

    def score(params: Mapping[str, Any]) -> float | None:
        key = space.key(params)
        if key is None:
            return None
        evaluated.add(key)
        return estimate(predicted(key))

    def is_valid(params: Mapping[str, Any]) -> bool:
        key = space.key(params)
        return key is not None and key not in evaluated

    def build_graph(params: Mapping[str, Any]):
        key = space.key(params)
        if key is None:
            raise ValueError("not a labelled architecture")
        return space.graph(key)

    seed = space.seed_params(seed_index)
    seed_key = space.key(seed)
    assert seed_key is not None, f"seed {seed_index} of {space.name} does not map back to the table"
    base = score(seed)
    threshold = base + sigma / 4
    proposer = proposer_factory(build_graph=build_graph, is_valid=is_valid)
    started = time.perf_counter()
    result = improve_params(seed, space.distributions, score=score, proposer=proposer, threshold=threshold,
                            max_iterations=max_iter, rng=np.random.RandomState(rng_seed), baseline=base)
    best_key = space.key(result.params)
    extra_predictions = getattr(proposer, "predictions", None)
    return {
        "seed_index": int(seed_index),
        "seed_key": seed_key,
        "best_key": best_key,
        "iterations": result.iterations,
        "converged": result.converged,
        "seed_estimate": base,
        "best_estimate": result.predicted,
        "threshold": threshold,
        "predicted_gain": result.predicted - base,
        "seed_true": space.truth(seed_key),
        "best_true": space.truth(best_key) if best_key else space.truth(seed_key),
        "true_gain": (space.truth(best_key) if best_key else space.truth(seed_key)) - space.truth(seed_key),
        "graphs_scored": predictions["n"] + (len(extra_predictions) if isinstance(extra_predictions, dict) else 0),
        "seconds": time.perf_counter() - started,
        "explanation": result.explanation,
    }


def summarise(rows: list[dict[str, Any]], max_iter: int) -> dict[str, Any]:
    iters = np.array([r["iterations"] if r["converged"] else max_iter for r in rows], dtype=float)
    true_gain = np.array([r["true_gain"] for r in rows])
    return {
        "seeds": len(rows),
        "avg_iterations": float(iters.mean()),
        "max_outs": int(sum(not r["converged"] for r in rows)),
        "avg_predicted_gain": float(np.mean([r["predicted_gain"] for r in rows])),
        "avg_true_gain": float(true_gain.mean()),
        "median_true_gain": float(np.median(true_gain)),
        "pct_true_gain_positive": float(100.0 * np.mean(true_gain > 0)),
        "pct_true_gain_negative": float(100.0 * np.mean(true_gain < 0)),
        "avg_graphs_scored": float(np.mean([r["graphs_scored"] for r in rows])),
        "avg_seconds": float(np.mean([r["seconds"] for r in rows])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--families", default="nb201,nb101")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--max-iter", type=int, default=10)
    parser.add_argument("--weights", type=Path, help="predictor weights (default: the shipped ones)")
    parser.add_argument("--focus", type=float, default=0.5, help="fraction of lowest-relevance parameters moved first")
    parser.add_argument("--risk-aversion", type=float, default=0.0, help="rank moves by mean - this × std")
    parser.add_argument("--nb201-target", default="cifar10_val")
    parser.add_argument("--no-control", action="store_true", help="skip the plain neighbourhood-mutation control")
    parser.add_argument("--llm-model")
    parser.add_argument("--base-url")
    parser.add_argument("--api-key-env", default="NASASSIST_LLM_API_KEY")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-prefix", type=Path, default=ROOT / "benchmarks" / "results" / "improve_loop")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from nasassist_plugins.mutation import LLMConfig, LLMProposer, RelevanceGuidedMutator
    from nasassist_plugins.predictor import Predictor

    predictor = Predictor.load(args.weights) if args.weights else Predictor.load_default()
    weights_note = str(args.weights) if args.weights else "shipped default weights (trained on all families, NB201 and NB101 included: in-sample)"
    methods: dict[str, Callable[..., Any]] = {
        "relevance-guided": lambda **kw: RelevanceGuidedMutator(predictor=predictor, focus=args.focus,
                                                                risk_aversion=args.risk_aversion, **kw),
    }
    if not args.no_control:
        methods["neighbourhood (control)"] = lambda **kw: RelevanceGuidedMutator(is_valid=kw["is_valid"])
    if args.llm_model or args.base_url:
        config = LLMConfig(model=args.llm_model or "", base_url=args.base_url or "", api_key_env=args.api_key_env)
        methods["llm"] = lambda **kw: LLMProposer(config, fallback=RelevanceGuidedMutator(predictor=predictor, focus=args.focus, **kw))

    report: dict[str, Any] = {"weights": weights_note, "max_iter": args.max_iter, "seeds_per_family": args.seeds,
                              "focus": args.focus, "risk_aversion": args.risk_aversion, "families": {}}
    for family in [f.strip() for f in args.families.split(",") if f.strip()]:
        t0 = time.perf_counter()
        space: Space = NB201Space(args.data, args.nb201_target) if family == "nb201" else NB101Space(args.data)
        sigma = float(np.std(space.accuracies))
        rng = np.random.RandomState(args.seed)
        seeds = rng.choice(len(space), size=args.seeds, replace=False)
        fam_report: dict[str, Any] = {"sigma": sigma, "n_table": len(space), "load_s": time.perf_counter() - t0, "methods": {}}
        for method, factory in methods.items():
            rows = []
            for k, index in enumerate(seeds):
                rows.append(run_seed(space, int(index), predictor, factory, max_iter=args.max_iter, sigma=sigma,
                                     rng_seed=args.seed + k))
                print(f"[{family} {method}] seed {k + 1}/{len(seeds)}: iterations {rows[-1]['iterations']} "
                      f"converged {rows[-1]['converged']} true gain {rows[-1]['true_gain']:+.4f}", file=sys.stderr, flush=True)
            fam_report["methods"][method] = {"summary": summarise(rows, args.max_iter), "rows": rows}
        if isinstance(space, NB101Space):
            fam_report["nb101_graphs_traced"] = space.traced
        report["families"][family] = fam_report
        args.out_prefix.parent.mkdir(parents=True, exist_ok=True)
        args.out_prefix.with_suffix(".json").write_text(json.dumps(report, indent=1))
    args.out_prefix.with_suffix(".md").write_text(markdown(report))
    plot(report, args.out_prefix.with_suffix(".png"))
    print(markdown(report))
    return 0


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Improvement loop (Algorithm 3), {report['seeds_per_family']} seeds per family, MAX_ITERATION = "
        f"{report['max_iter']}, threshold = estimated seed accuracy + σ/4; focus {report.get('focus')}, risk aversion "
        f"{report.get('risk_aversion', 0.0)}; predictor: {report['weights']}.",
        "",
        "| family | proposer | avg iterations | max-outs | avg predicted gain | avg true gain | seeds with true gain > 0 "
        "| with true gain < 0 | graphs scored / seed | s / seed | thesis (iterations, gain, max-outs) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for family, fam in report["families"].items():
        thesis = THESIS.get(family, {})
        for method, data in fam["methods"].items():
            s = data["summary"]
            lines.append(
                f"| {family} (σ = {fam['sigma']:.4f}) | {method} | {s['avg_iterations']:.2f} | {s['max_outs']}/{s['seeds']} "
                f"| {s['avg_predicted_gain']:+.4f} | {s['avg_true_gain']:+.4f} | {s['pct_true_gain_positive']:.0f} % "
                f"| {s['pct_true_gain_negative']:.0f} % | {s['avg_graphs_scored']:.0f} | {s['avg_seconds']:.1f} "
                f"| {thesis.get('iterations', '')}, {thesis.get('gain', '')}, {thesis.get('max_outs', '')}/50 |"
            )
    lines += ["", "Gains are accuracy fractions (0.012 = 1.2 points). NB201: 12-epoch CIFAR-10 validation accuracy; "
              "NB101: 108-epoch validation accuracy, space restricted to the 30,001 labelled cells."]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = list(report["families"])
    fig, axes = plt.subplots(1, max(1, len(families)), figsize=(6 * max(1, len(families)), 4), squeeze=False)
    for ax, family in zip(axes[0], families):
        for method, data in report["families"][family]["methods"].items():
            gains = [r["true_gain"] * 100 for r in data["rows"]]
            ax.hist(gains, bins=20, alpha=0.6, label=f"{method} (mean {np.mean(gains):+.2f})")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(f"{family}: true accuracy gain per seed")
        ax.set_xlabel("true gain (accuracy points)")
        ax.set_ylabel("seeds")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
