"""Pruning benchmark on real learning curves, replayed through real Optuna studies.

    python benchmarks/optuna_pruning.py --seeds 20 --trials 100 --workers 2 --out-dir benchmarks/results

**Digits (main part).** The curves are the project's own: 320 distinct narrow NB201 cell networks
trained for 40 epochs on scikit-learn digits (``nasassist_plugins.data.load_digits_curves``, made by
``benchmarks/generate_digits_curves.py``). For every seed, a random permutation of the pool gives the
architectures of the study's ``--trials`` trials, enqueued in that order for every pruner (same
architectures, same order, only the pruner differs). A trial builds nothing and trains nothing: it
replays its architecture's recorded curve, ``trial.report(val_acc[epoch], step=epoch)`` with
0-based steps (Optuna's idiom), asks ``trial.should_prune()`` after every epoch but the last (and
once before the first epoch, where only a zero-shot rule can act), and returns the final-epoch
validation accuracy. Cost = epochs replayed (a trial pruned at step 0 costs 0).

Regret (percentage points, pp), per study:

* ``regret_pool`` = best final accuracy of the whole pool (320 archs) − best final accuracy among
  the study's COMPLETE trials (a pruned trial's architecture does not count: it was not finished).
  NopPruner has a non-zero pool regret too, because a study sees only ``--trials`` archs.
* ``regret_sample`` = best final accuracy among the archs this study sampled (what NopPruner finds)
  − the same best-complete value: the regret caused by pruning alone.

Methods: NopPruner, MedianPruner, PercentilePruner(25), SuccessiveHalving, HyperbandPruner
(min_resource=1, max_resource=n_epochs, reduction factor 3; also 2 and 4 for the Pareto plot),
WilcoxonPruner (applied to epochs; see the note in the report), and NASAssistPruner: learning-curve
extrapolation only, with step-0 zero-shot pruning (the score comes from ``report_model`` on the real
cell network, default predictor unless ``--weights``), zero-shot only, and LCE wrapping Hyperband.
Quantiles/thresholds are fixed before the run (defaults of the pruner, zero-shot quantile 0.25;
0.5 as a sensitivity row); nothing is tuned on the results.

**NB101 multi-fidelity check.** NAS-Bench-101 gives CIFAR-10 validation accuracy after 4, 12, 36 and
108 epochs (separate training runs; ../shared/data/nb101/nb101_30k_with_arch.csv). Studies replay
those four values at steps 4/12/36/108 with the same pruners (Hyperband min_resource=4,
max_resource=108, factor 3 = exactly NB101's budget ladder; NASAssistPruner with min_resource=3, so
its extrapolation decides once, at step 36, from 3 points, with 2-parameter families only). Cost
counts the last budget reached (one run checkpointed at 4/12/36/108) and, for reference, the sum
of the budgets run (NB101's separate runs). Also reported: how well the value at 4/12/36 epochs
and the LCE forecast from (4, 12, 36) rank the 108-epoch accuracy, and how often a pruned trial
would have been better than the study's result.

Curve-fit memoisation: ``should_stop`` fits a seeded extrapolator (``random_state=0``), so a fit is a
pure function of (configuration, steps, values). The same architecture prefix recurs across
seeds and methods, so the benchmark memoises ``LearningCurveExtrapolator.fit`` on exactly that key
(``--no-fit-cache`` disables it) and re-checks a sample of cached decisions against fresh fits at
the end. The decisions are those of the unmodified pruner; only repeated work is skipped.

Outputs: ``optuna_pruning.md`` (tables), ``optuna_pruning.json`` (per-seed records, config,
timings), ``optuna_pruning.png`` (epochs vs regret per method, digits and NB101).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NB101 = REPO.parent / "shared" / "data" / "nb101" / "nb101_30k_with_arch.csv"
NB101_BUDGETS = (4, 12, 36, 108)


# ---------------------------------------------------------------------------- fit memoisation
_FIT_CACHE: dict[tuple, Any] = {}
_FIT_STATS = {"hits": 0, "misses": 0, "fit_seconds": 0.0}
_STATE_KEYS = ("_curve", "_x_scale", "_constant", "_fits", "_samples", "_cache", "_rng")


def install_fit_cache() -> None:
    """Memoise ``LearningCurveExtrapolator.fit`` on (configuration, steps, values)."""
    from nasassist_plugins.curves import extrapolation as ex

    original = ex.LearningCurveExtrapolator.fit
    if getattr(original, "_memoised", False):
        return

    def fit(self, steps, values):
        if not isinstance(self.random_state, (int, np.integer)):
            return original(self, steps, values)  # unseeded fits are not reproducible: never cache
        key = (
            tuple(m.name for m in self.models), self.min_points, self.n_samples, int(self.random_state),
            self.direction, self.lower_bound, self.upper_bound, self.weighting, self.timeout, self.maxfev,
            np.asarray(steps, dtype=float).tobytes(), np.asarray(values, dtype=float).tobytes(),
        )
        hit = _FIT_CACHE.get(key)
        if hit is None:
            _FIT_STATS["misses"] += 1
            t0 = time.perf_counter()
            try:
                original(self, steps, values)
                hit = ("ok", {k: self.__dict__[k] for k in _STATE_KEYS})
            except Exception as exc:  # noqa: BLE001  (re-raised identically on every hit)
                hit = ("error", exc)
            _FIT_STATS["fit_seconds"] += time.perf_counter() - t0
            _FIT_CACHE[key] = hit
        else:
            _FIT_STATS["hits"] += 1
        kind, payload = hit
        if kind == "error":
            raise payload
        self.__dict__.update(payload)
        return self

    fit._memoised = True  # type: ignore[attr-defined]
    fit._original = original  # type: ignore[attr-defined]
    ex.LearningCurveExtrapolator.fit = fit


def verify_fit_cache(n: int, rng: np.random.Generator) -> dict:
    """Compare cached fits with fresh ones on ``n`` random cached keys (probability at the target)."""
    from nasassist_plugins.curves import extrapolation as ex

    original = getattr(ex.LearningCurveExtrapolator.fit, "_original", None)
    keys = [k for k, v in _FIT_CACHE.items() if v[0] == "ok"]
    if original is None or not keys:
        return {"checked": 0, "max_abs_diff": None}
    worst = 0.0
    picks = rng.choice(len(keys), size=min(n, len(keys)), replace=False)
    for i in picks:
        key = keys[int(i)]
        models, min_points, n_samples, seed, direction, lo, hi, weighting, timeout, maxfev, sb, vb = key
        steps, values = np.frombuffer(sb), np.frombuffer(vb)
        kw = dict(models=models, min_points=min_points, n_samples=n_samples, random_state=seed,
                  direction=direction, lower_bound=lo, upper_bound=hi, weighting=weighting,
                  timeout=timeout, maxfev=maxfev)
        cached = ex.LearningCurveExtrapolator(**kw)
        cached.__dict__.update(_FIT_CACHE[key][1])
        fresh = ex.LearningCurveExtrapolator(**kw)
        original(fresh, steps, values)
        target = float(steps[-1]) * 2.0
        for threshold in (float(np.max(values)), float(np.mean(values))):
            try:
                a = cached.probability_better(threshold, target)
            except ex.CurveFitError:
                a = math.nan
            try:
                b = fresh.probability_better(threshold, target)
            except ex.CurveFitError:
                b = math.nan
            if math.isnan(a) != math.isnan(b):
                worst = math.inf
            elif not math.isnan(a):
                worst = max(worst, abs(a - b))
    return {"checked": int(len(picks)), "max_abs_diff": worst}


# ---------------------------------------------------------------------------- LCE decision table
# The pruner's learning-curve rule calls ``should_stop(steps + 1, values, best, max_resource + 1, ...)``.
# On the digits pool, ``values`` is always a prefix of one recorded curve and ``best`` (the best
# finished trial's last value) is always one of the pool's final accuracies, so every decision any
# study can ask for is P(arch i's forecast from k epochs beats b) for a finite set of (i, k, b).
# ``--build-lce-table`` computes that set once, in parallel, with the real ``should_stop`` (it needs
# only numpy/scipy and ``nasassist_plugins.curves``, so it runs on a machine without Optuna);
# ``--lce-table`` makes the studies look decisions up there (falling back to ``should_stop`` for
# anything not in the table) and re-checks a sample of entries against fresh local calls.
LCE_TABLE_CONFIG = {"min_points": 5, "lower_bound": 0.0, "upper_bound": 1.0, "direction": "maximize"}


def _table_row(job: tuple) -> tuple:
    from nasassist_plugins.curves import should_stop

    i, curve, bests, n_epochs, min_points = job
    install_fit_cache()  # one fit per prefix, reused for every b
    probs = np.full((n_epochs, len(bests)), np.nan)
    preds = np.full((n_epochs, 2), np.nan)
    for k in range(min_points, n_epochs):  # k values reported (steps 0..k-1); the pruner never fits at the last step
        for j, b in enumerate(bests):
            d = should_stop(np.arange(k, dtype=float) + 1.0, [float(x) for x in curve[:k]], float(b), float(n_epochs),
                            threshold_probability=0.05, **LCE_TABLE_CONFIG)
            probs[k, j] = d.probability
        preds[k] = d.prediction
    _FIT_CACHE.clear()
    return i, probs, preds


def build_lce_table(out: Path, workers: int, curves_path: str | None) -> None:
    from nasassist_plugins.data import load_digits_curves

    data = load_digits_curves(curves_path)
    v = data.val_acc
    bests = np.unique(v[:, -1])
    n, n_ep = v.shape
    jobs = [(i, v[i], bests, n_ep, LCE_TABLE_CONFIG["min_points"]) for i in range(n)]
    probs = np.full((n, n_ep, len(bests)), np.nan)
    preds = np.full((n, n_ep, 2), np.nan)
    t0 = time.perf_counter()
    import multiprocessing as mp

    with mp.get_context("fork").Pool(workers) as pool:
        for k, (i, p, q) in enumerate(pool.imap_unordered(_table_row, jobs, chunksize=1)):
            probs[i], preds[i] = p, q
            if (k + 1) % 40 == 0:
                print(f"[{time.perf_counter() - t0:6.1f}s] {k + 1}/{n} archs", flush=True)
    meta = {"config": LCE_TABLE_CONFIG, "max_step": n_ep, "seconds": round(time.perf_counter() - t0, 1),
            "workers": workers, "numpy": np.__version__, "python": platform.python_version(),
            "curves": data.metadata.get("generation_command", "")}
    import scipy

    meta["scipy"] = scipy.__version__
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, probs=probs, preds=preds, bests=bests, curves=v, metadata=np.array(json.dumps(meta)))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {meta['seconds']}s")


_TABLE_STATS = {"hits": 0, "misses": 0}


def install_lce_table(path: str) -> None:
    """Answer the pruner's ``should_stop`` calls from a table built by :func:`build_lce_table`."""
    import nasassist_plugins.optuna.pruner as pruner_mod
    from nasassist_plugins.curves import StopDecision, should_stop

    if getattr(pruner_mod.should_stop, "_table", False):
        return
    with np.load(path, allow_pickle=False) as z:
        probs, preds, bests, v = z["probs"], z["preds"], z["bests"], z["curves"]
    index = {}
    for i in range(v.shape[0]):
        for k in range(LCE_TABLE_CONFIG["min_points"], v.shape[1]):
            index[v[i, :k].tobytes()] = (i, k)
    best_index = {float(b): j for j, b in enumerate(bests)}
    n_ep = v.shape[1]

    def lookup(steps, values, best_final_value, max_step, *, threshold_probability=0.05, min_points=5,
               direction="maximize", lower_bound=None, upper_bound=None, extrapolator=None):
        vals = np.asarray(values, dtype=float)
        hit = index.get(vals.tobytes())
        j = best_index.get(float(best_final_value))
        cfg_ok = (extrapolator is None and min_points == LCE_TABLE_CONFIG["min_points"] and direction == "maximize"
                  and lower_bound == 0.0 and upper_bound == 1.0 and float(max_step) == float(n_ep)
                  and np.array_equal(np.asarray(steps, float), np.arange(len(vals)) + 1.0))
        if hit is None or j is None or not cfg_ok:
            _TABLE_STATS["misses"] += 1
            return should_stop(steps, values, best_final_value, max_step, threshold_probability=threshold_probability,
                               min_points=min_points, direction=direction, lower_bound=lower_bound,
                               upper_bound=upper_bound, extrapolator=extrapolator)
        _TABLE_STATS["hits"] += 1
        i, k = hit
        p = float(probs[i, k, j])
        if math.isnan(p):
            return StopDecision(False, math.nan, (math.nan, math.nan))
        return StopDecision(bool(p < threshold_probability), p, (float(preds[i, k, 0]), float(preds[i, k, 1])))

    lookup._table = True  # type: ignore[attr-defined]
    pruner_mod.should_stop = lookup


def check_lce_table(path: str, n: int, rng: np.random.Generator) -> dict:
    """Re-compute ``n`` random table entries locally with the real ``should_stop``."""
    from nasassist_plugins.curves import should_stop

    with np.load(path, allow_pickle=False) as z:
        probs, bests, v = z["probs"], z["bests"], z["curves"]
        meta = json.loads(str(z["metadata"]))
    worst, nan_mismatch = 0.0, 0
    for _ in range(n):
        i = int(rng.integers(v.shape[0]))
        k = int(rng.integers(LCE_TABLE_CONFIG["min_points"], v.shape[1]))
        j = int(rng.integers(len(bests)))
        d = should_stop(np.arange(k, dtype=float) + 1.0, [float(x) for x in v[i, :k]], float(bests[j]),
                        float(v.shape[1]), **LCE_TABLE_CONFIG)
        a, b = probs[i, k, j], d.probability
        if math.isnan(a) or math.isnan(b):
            nan_mismatch += int(math.isnan(a) != math.isnan(b))
        else:
            worst = max(worst, abs(a - b))
    return {"checked": n, "max_abs_probability_diff": worst, "nan_mismatches": nan_mismatch, "table_metadata": meta}


# ---------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    name: str
    label: str
    make: Callable[[dict], Any]  # ctx -> pruner
    zero_shot: bool = False
    note: str = ""
    pareto_only: bool = False  # extra settings shown in the plot, not in the main table


def digits_methods(n_epochs: int, zs_quantile: float) -> list[Method]:
    import optuna
    from nasassist_plugins.optuna import NASAssistPruner

    last = n_epochs - 1  # 0-based steps: the last step a full trial reports
    hb = lambda rf: (lambda ctx: optuna.pruners.HyperbandPruner(  # noqa: E731
        min_resource=1, max_resource=n_epochs, reduction_factor=rf))
    nas = lambda **kw: (lambda ctx: NASAssistPruner(  # noqa: E731
        **{"max_resource": last, "lower_bound": 0.0, "upper_bound": 1.0, **kw}))
    return [
        Method("nop", "NopPruner", lambda ctx: optuna.pruners.NopPruner()),
        Method("median", "MedianPruner (5 startup trials)", lambda ctx: optuna.pruners.MedianPruner(n_startup_trials=5)),
        Method("percentile25", "PercentilePruner(25) (keeps the top 25 %)", lambda ctx: optuna.pruners.PercentilePruner(25.0, n_startup_trials=5)),
        Method("sha", "SuccessiveHalvingPruner (rf 3)", lambda ctx: optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=3)),
        Method("hyperband", "HyperbandPruner (1..40, rf 3)", hb(3)),
        Method("hyperband_rf2", "HyperbandPruner (rf 2)", hb(2), pareto_only=True),
        Method("hyperband_rf4", "HyperbandPruner (rf 4)", hb(4), pareto_only=True),
        Method("wilcoxon", "WilcoxonPruner (p 0.1, epochs as instances)", lambda ctx: optuna.pruners.WilcoxonPruner(
            p_threshold=0.1), note="steps are epochs, not i.i.d. instances: outside its design"),
        Method("nas_lce", "NASAssistPruner LCE", nas()),
        Method("nas_lce_zs", f"NASAssistPruner LCE + zero-shot q{zs_quantile:g}", nas(zero_shot_quantile=zs_quantile),
               zero_shot=True),
        Method("nas_lce_zs50", "NASAssistPruner LCE + zero-shot q0.5", nas(zero_shot_quantile=0.5), zero_shot=True),
        Method("nas_zs_only", f"NASAssistPruner zero-shot only q{zs_quantile:g}",
               nas(zero_shot_quantile=zs_quantile, max_resource=None), zero_shot=True),
        Method("nas_lce_hb", "NASAssistPruner LCE wrapping Hyperband", lambda ctx: NASAssistPruner(
            max_resource=last, lower_bound=0.0, upper_bound=1.0, wrapped_pruner=hb(3)(ctx))),
        Method("nas_lce_p01", "NASAssistPruner LCE threshold 0.01", nas(threshold_probability=0.01), pareto_only=True),
        Method("nas_lce_p20", "NASAssistPruner LCE threshold 0.2", nas(threshold_probability=0.2), pareto_only=True),
    ]


def nb101_methods() -> list[Method]:
    import optuna
    from nasassist_plugins.optuna import NASAssistPruner

    return [
        Method("nop", "NopPruner", lambda ctx: optuna.pruners.NopPruner()),
        Method("median", "MedianPruner (5 startup trials)", lambda ctx: optuna.pruners.MedianPruner(n_startup_trials=5)),
        Method("hyperband", "HyperbandPruner (4..108, rf 3)", lambda ctx: optuna.pruners.HyperbandPruner(
            min_resource=4, max_resource=108, reduction_factor=3)),
        Method("nas_lce", "NASAssistPruner LCE (min_resource 3)", lambda ctx: NASAssistPruner(
            max_resource=108, min_resource=3, lower_bound=0.0, upper_bound=1.0)),
        Method("nas_lce_hb", "NASAssistPruner LCE wrapping Hyperband", lambda ctx: NASAssistPruner(
            max_resource=108, min_resource=3, lower_bound=0.0, upper_bound=1.0,
            wrapped_pruner=optuna.pruners.HyperbandPruner(min_resource=4, max_resource=108, reduction_factor=3))),
    ]


# ---------------------------------------------------------------------------- one study
def run_study(method: Method, seed: int, order: np.ndarray, curves: np.ndarray, steps: np.ndarray,
              final: np.ndarray, ctx: dict) -> dict:
    """Replay ``curves[order]`` through one Optuna study with ``method``'s pruner."""
    import optuna

    n_steps = curves.shape[1]
    pruner = method.make(ctx)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=pruner, study_name=f"{method.name}-seed{seed}")
    for idx in order:
        study.enqueue_trial({"arch": int(idx)})
    spent: dict[int, int] = {}
    prune_seconds = [0.0]

    def should_prune(trial) -> bool:
        t0 = time.perf_counter()
        out = trial.should_prune()
        prune_seconds[0] += time.perf_counter() - t0
        return out

    def objective(trial):
        idx = trial.suggest_int("arch", 0, len(final) - 1)
        spent[trial.number] = 0
        if method.zero_shot:
            from nasassist_plugins.optuna import report_model

            report_model(trial, ctx["build_model"](idx), ctx["example_input"], ctx["predictor"])
        if should_prune(trial):  # step 0: before any training (only a zero-shot rule can fire)
            raise optuna.TrialPruned()
        for k in range(n_steps):
            spent[trial.number] = int(steps[k]) + ctx["step_offset"]
            trial.report(float(curves[idx, k]), int(steps[k]))
            if k < n_steps - 1 and should_prune(trial):
                raise optuna.TrialPruned()
        return float(curves[idx, -1])

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=len(order))
    wall = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max((t.value for t in complete), default=float("nan"))
    sampled_best = float(final[order].max())
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    by_rule: dict[str, int] = {}
    for t in pruned:
        rule = t.system_attrs.get("nasassist:pruned_by", "optuna")
        by_rule[rule] = by_rule.get(rule, 0) + 1
    # pruned trials whose finished value would have beaten (or tied) the study's result
    wrongly = sum(1 for t in pruned if final[t.params["arch"]] >= best) if complete else len(pruned)
    budget_sum = None
    if ctx.get("restart_cost"):
        budget_sum = int(sum(sum(int(s) for s in steps[: len(t.intermediate_values)]) for t in trials))
    return {
        "method": method.name,
        "seed": seed,
        "epochs": int(sum(spent.values())),
        "epochs_restart_view": budget_sum,
        "n_complete": len(complete),
        "n_pruned": len(pruned),
        "n_pruned_step0": sum(1 for t in pruned if not t.intermediate_values),
        "pruned_by": by_rule,
        "pruned_would_beat_result": int(wrongly),
        "best_value": best,
        "best_arch": (max(complete, key=lambda t: t.value).params["arch"] if complete else None),
        "regret_pool_pp": 100.0 * (ctx["pool_best"] - (best if complete else 0.0)),
        "regret_sample_pp": 100.0 * (sampled_best - (best if complete else 0.0)),
        "prune_seconds": prune_seconds[0],
        "wall_seconds": wall,
    }


def run_seeds(task: tuple) -> list[dict]:
    """Some methods on some seeds, in one worker process (seeds in sequence, so that the fit cache
    of this process is shared by every study it runs)."""
    part, seeds, method_names, opts = task
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if opts["fit_cache"]:
        install_fit_cache()
    if opts.get("lce_table") and part == "digits":
        install_lce_table(opts["lce_table"])
    ctx, methods, curves, steps, final = _setup(part, opts)
    out = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(final))[: opts["trials"]]
        for m in methods:
            if m.name in method_names:
                rec = run_study(m, seed, order, curves, steps, final, ctx)
                rec["part"] = part
                out.append(rec)
    out.append({"part": part, "seeds": list(seeds), "fit_stats": dict(_FIT_STATS), "table_stats": dict(_TABLE_STATS)})
    return out


def make_tasks(part: str, names: list[str], n_seeds: int, wilcoxon_seeds: int, opts: dict) -> list[tuple]:
    """Group the work: every LCE method of all seeds in one task (they share curve fits), the
    WilcoxonPruner (slow: scipy's permutation test) on its own seeds, the cheap pruners per seed."""
    lce = [n for n in names if n.startswith("nas_lce")]
    wil = [n for n in names if n == "wilcoxon"]
    cheap = [n for n in names if n not in lce and n not in wil]
    tasks = []
    if lce and opts.get("lce_table") and part == "digits":
        tasks += [(part, [s], lce, opts) for s in range(n_seeds)]  # decisions come from the table: no fits to share
    elif lce:
        tasks.append((part, list(range(n_seeds)), lce, opts))
    if wil:
        tasks += [(part, [s], wil, opts) for s in range(min(wilcoxon_seeds, n_seeds))]
    if cheap:
        tasks += [(part, [s], cheap, opts) for s in range(n_seeds)]
    return tasks


_SETUP_CACHE: dict = {}


def _setup(part: str, opts: dict):
    if part in _SETUP_CACHE:
        return _SETUP_CACHE[part]
    if part == "digits":
        from nasassist_plugins.adapters.cells import nb201_network
        from nasassist_plugins.data import load_digits_curves

        data = load_digits_curves(opts.get("curves"))
        curves = data.val_acc
        steps = np.arange(curves.shape[1])
        ctx = {"pool_best": float(curves[:, -1].max()), "step_offset": 1, "restart_cost": False}
        methods = digits_methods(curves.shape[1], opts["zs_quantile"])
        if any(m.zero_shot and m.name in opts["methods"] for m in methods):
            import torch

            from nasassist_plugins.predictor import Predictor

            ctx["predictor"] = Predictor.load(opts["weights"]) if opts["weights"] else Predictor.load_default()
            ch, cps = _net_kwargs(data.metadata)
            ctx["build_model"] = lambda i: nb201_network(data.arch_strs[i], channels=ch, cells_per_stage=cps,
                                                         num_classes=10, in_channels=1)
            ctx["example_input"] = torch.zeros(1, 1, 8, 8)
    else:
        curves = load_nb101(opts["nb101_csv"])
        steps = np.array(NB101_BUDGETS)
        ctx = {"pool_best": float(curves[:, -1].max()), "step_offset": 0, "restart_cost": True}
        methods = nb101_methods()
    _SETUP_CACHE[part] = (ctx, methods, curves, steps, curves[:, -1])
    return _SETUP_CACHE[part]


def _net_kwargs(metadata: dict) -> tuple[int, int]:
    import re

    text = metadata.get("network", "")
    ch = re.search(r"channels=(\d+)", text)
    cps = re.search(r"cells_per_stage=(\d+)", text)
    return (int(ch.group(1)) if ch else 8), (int(cps.group(1)) if cps else 1)


def load_nb101(path: Path) -> np.ndarray:
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return np.array([[float(r[f"val_acc_{b}"]) for b in NB101_BUDGETS] for r in rows])


# ---------------------------------------------------------------------------- diagnostics
def digits_diagnostics(opts: dict) -> dict:
    """How well can the pool's final accuracy be ranked from the first k epochs?"""
    from scipy.stats import spearmanr

    from nasassist_plugins.curves import LearningCurveExtrapolator, CurveFitError
    from nasassist_plugins.data import load_digits_curves

    data = load_digits_curves(opts.get("curves"))
    v = data.val_acc
    final = v[:, -1]
    n_ep = v.shape[1]
    out: dict[str, Any] = {
        "n_archs": int(v.shape[0]), "n_epochs": int(n_ep),
        "final_acc": {"max": float(final.max()), "median": float(np.median(final)), "min": float(final.min()),
                      "top10_min": float(np.sort(final)[-10]), "n_within_0.5pp_of_best": int((final >= final.max() - 0.005).sum())},
        "epoch_noise_pp": float(100 * np.std(np.diff(v[:, -10:], axis=1))),
        "last_vs_best_epoch_pp": float(100 * np.mean(v.max(1) - final)),
        "rank_from_first_k_epochs": {},
    }
    for k in opts["diag_epochs"]:
        last = v[:, k - 1]
        rec = {"spearman_last_value": float(spearmanr(last, final)[0])}
        if opts.get("lce_table"):
            with np.load(opts["lce_table"], allow_pickle=False) as z:
                table_preds = z["preds"][:, k, 0]
            preds = np.where(np.isnan(table_preds), last, table_preds)
            rec["spearman_lce_forecast"] = float(spearmanr(preds, final)[0])
            rec["lce_mean_abs_error_pp"] = float(100 * np.mean(np.abs(preds - final)))
            rec["lce_mean_error_pp"] = float(100 * np.mean(preds - final))
            rec["lce_no_forecast"] = int(np.isnan(table_preds).sum())
        elif opts["diag_lce"]:
            preds = []
            for i in range(v.shape[0]):
                lce = LearningCurveExtrapolator(min_points=5, random_state=0, lower_bound=0.0, upper_bound=1.0)
                try:
                    lce.fit(np.arange(1, k + 1), v[i, :k])
                    preds.append(lce.predict(float(n_ep))[0])
                except (CurveFitError, ValueError):
                    preds.append(float(last[i]))
            preds = np.asarray(preds)
            rec["spearman_lce_forecast"] = float(spearmanr(preds, final)[0])
            rec["lce_mean_abs_error_pp"] = float(100 * np.mean(np.abs(preds - final)))
            rec["lce_mean_error_pp"] = float(100 * np.mean(preds - final))
        out["rank_from_first_k_epochs"][str(k)] = rec
    if opts.get("zero_shot_scores") is not None:
        zs = opts["zero_shot_scores"]
        out["zero_shot_spearman_final"] = float(spearmanr(zs, final)[0])
    out["params_spearman_final"] = float(spearmanr(data.n_params, final)[0])
    return out


def nb101_diagnostics(opts: dict) -> dict:
    from scipy.stats import spearmanr

    from nasassist_plugins.curves import LearningCurveExtrapolator, CurveFitError

    c = load_nb101(opts["nb101_csv"])
    final = c[:, -1]
    top = final >= np.quantile(final, 0.99)
    out: dict[str, Any] = {"n_archs": int(len(c)), "budget_rank": {}}
    for j, b in enumerate(NB101_BUDGETS[:-1]):
        sel = c[:, j] >= np.quantile(c[:, j], 0.99)
        out["budget_rank"][str(b)] = {"spearman_vs_108": float(spearmanr(c[:, j], final)[0]),
                                      "top1pct_overlap": float((sel & top).sum() / top.sum())}
    rng = np.random.default_rng(0)
    sub = rng.choice(len(c), size=min(opts["nb101_lce_n"], len(c)), replace=False)
    preds, fails = [], 0
    for i in sub:
        lce = LearningCurveExtrapolator(min_points=3, random_state=0, lower_bound=0.0, upper_bound=1.0)
        try:
            lce.fit(np.array(NB101_BUDGETS[:3], float) + 1.0, c[i, :3])
            preds.append(lce.predict(109.0)[0])
        except (CurveFitError, ValueError):
            preds.append(c[i, 2])
            fails += 1
    preds = np.asarray(preds)
    out["lce_from_4_12_36"] = {
        "n": int(len(sub)), "fit_failures_fallback_to_last": fails,
        "spearman_forecast_vs_108": float(spearmanr(preds, final[sub])[0]),
        "spearman_acc36_same_subset": float(spearmanr(c[sub, 2], final[sub])[0]),
        "mean_abs_error_pp": float(100 * np.mean(np.abs(preds - final[sub]))),
        "mean_error_pp": float(100 * np.mean(preds - final[sub])),
    }
    return out


# ---------------------------------------------------------------------------- summary & report
def summarise(records: list[dict], methods: list[Method]) -> list[dict]:
    rows = []
    nop = [r for r in records if r["method"] == "nop"]
    nop_epochs = np.mean([r["epochs"] for r in nop]) if nop else float("nan")
    max_seeds = max((sum(1 for r in records if r["method"] == m.name) for m in methods), default=0)
    for m in methods:
        rs = [r for r in records if r["method"] == m.name]
        if not rs:
            continue
        ep = np.array([r["epochs"] for r in rs], float)
        rp = np.array([r["regret_pool_pp"] for r in rs])
        rsmp = np.array([r["regret_sample_pp"] for r in rs])
        row = {
            "method": m.name, "label": m.label, "pareto_only": m.pareto_only, "note": m.note, "n_seeds": len(rs),
            "epochs_mean": float(ep.mean()), "epochs_sem": float(ep.std(ddof=1) / math.sqrt(len(ep))) if len(ep) > 1 else 0.0,
            "epochs_ratio_vs_nop": float(nop_epochs / ep.mean()) if ep.mean() > 0 else float("inf"),
            "regret_pool_pp_mean": float(rp.mean()),
            "regret_pool_pp_sem": float(rp.std(ddof=1) / math.sqrt(len(rp))) if len(rp) > 1 else 0.0,
            "regret_pool_pp_median": float(np.median(rp)),
            "regret_sample_pp_mean": float(rsmp.mean()),
            "regret_sample_pp_max": float(rsmp.max()),
            "seeds_sample_regret_le_0.5pp": int((rsmp <= 0.5 + 1e-9).sum()),
            "pruned_mean": float(np.mean([r["n_pruned"] for r in rs])),
            "pruned_step0_mean": float(np.mean([r["n_pruned_step0"] for r in rs])),
            "pruned_would_beat_result_mean": float(np.mean([r["pruned_would_beat_result"] for r in rs])),
            "prune_seconds_per_study": float(np.mean([r["prune_seconds"] for r in rs])),
        }
        rules: dict[str, float] = {}
        for r in rs:
            for rule, n in r["pruned_by"].items():
                rules[rule] = rules.get(rule, 0.0) + n / len(rs)
        row["pruned_by_mean"] = rules
        if len(rs) < max_seeds:
            row["label"] += f" ({len(rs)} seeds)"
        if rs[0].get("epochs_restart_view") is not None:
            row["epochs_restart_view_mean"] = float(np.mean([r["epochs_restart_view"] for r in rs]))
        rows.append(row)
    return rows


def targets(rows: list[dict]) -> dict:
    by = {r["method"]: r for r in rows}
    out = {}
    hb = by.get("hyperband")
    for name in ("nas_lce", "nas_lce_zs", "nas_lce_zs50", "nas_lce_hb"):
        r = by.get(name)
        if r is None:
            continue
        t = {
            "ratio_vs_nop": r["epochs_ratio_vs_nop"],
            "regret_pool_pp": r["regret_pool_pp_mean"],
            "target_3x_at_0.5pp": bool(r["epochs_ratio_vs_nop"] >= 3.0 and r["regret_pool_pp_mean"] <= 0.5),
        }
        comps = []
        for h in (by.get(n) for n in ("hyperband_rf2", "hyperband", "hyperband_rf4")):
            if h is None:
                continue
            tol = math.hypot(r["regret_pool_pp_sem"], h["regret_pool_pp_sem"])
            comps.append({"hyperband": h["method"], "epochs": h["epochs_mean"], "regret_pool_pp": h["regret_pool_pp_mean"],
                          "equal_regret": bool(abs(r["regret_pool_pp_mean"] - h["regret_pool_pp_mean"]) <= tol),
                          "fewer_epochs": bool(r["epochs_mean"] < h["epochs_mean"])})
        t["vs_hyperband_settings"] = comps
        if hb is not None:
            # "at equal regret": regret not worse than Hyperband's beyond one standard error of the difference
            tol = math.hypot(r["regret_pool_pp_sem"], hb["regret_pool_pp_sem"])
            t["hyperband_epochs"] = hb["epochs_mean"]
            t["hyperband_regret_pool_pp"] = hb["regret_pool_pp_mean"]
            t["regret_not_worse_than_hyperband"] = bool(r["regret_pool_pp_mean"] <= hb["regret_pool_pp_mean"] + tol)
            t["fewer_epochs_than_hyperband"] = bool(r["epochs_mean"] < hb["epochs_mean"])
            t["target_beats_hyperband"] = bool(t["regret_not_worse_than_hyperband"] and t["fewer_epochs_than_hyperband"])
        out[name] = t
    return out


def table_md(rows: list[dict], restart: bool = False) -> str:
    head = ("| method | epochs (mean ± sem) | × fewer than Nop | pool regret pp (mean ± sem) | pruning regret pp "
            "(mean / max) | seeds ≤ 0.5 pp | pruned (step 0) | pruned that would beat result | pruner s/study |")
    if restart:
        head = head.replace("| pool regret", "| epochs, restart view | pool regret")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [r["label"] + (" (Pareto extra)" if r["pareto_only"] else ""),
                 f"{r['epochs_mean']:.0f} ± {r['epochs_sem']:.0f}", f"{r['epochs_ratio_vs_nop']:.2f}"]
        if restart:
            cells.append(f"{r.get('epochs_restart_view_mean', float('nan')):.0f}")
        cells += [f"{r['regret_pool_pp_mean']:.3f} ± {r['regret_pool_pp_sem']:.3f}",
                  f"{r['regret_sample_pp_mean']:.3f} / {r['regret_sample_pp_max']:.2f}",
                  f"{r['seeds_sample_regret_le_0.5pp']}/{r['n_seeds']}",
                  f"{r['pruned_mean']:.1f} ({r['pruned_step0_mean']:.1f})",
                  f"{r['pruned_would_beat_result_mean']:.2f}", f"{r['prune_seconds_per_study']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    parts = [p for p in ("digits", "nb101") if p in results]
    fig, axes = plt.subplots(1, len(parts), figsize=(7.2 * len(parts), 5.4), squeeze=False)
    colors = {"nop": "black", "median": "tab:orange", "percentile25": "tab:olive", "sha": "tab:pink",
              "hyperband": "tab:blue", "hyperband_rf2": "tab:blue", "hyperband_rf4": "tab:blue",
              "wilcoxon": "tab:brown", "nas_lce": "tab:red", "nas_lce_zs": "tab:purple",
              "nas_lce_zs50": "tab:purple", "nas_zs_only": "tab:gray", "nas_lce_hb": "tab:green",
              "nas_lce_p01": "tab:red", "nas_lce_p20": "tab:red"}
    markers = {"hyperband_rf2": "v", "hyperband_rf4": "^", "nas_lce_p01": "v", "nas_lce_p20": "^", "nas_lce_zs50": "s"}
    for ax, part in zip(axes[0], parts):
        rows, recs = results[part]["summary"], results[part]["records"]
        for r in rows:
            c = colors.get(r["method"], "tab:cyan")
            pts = [(x["epochs"], x["regret_pool_pp"]) for x in recs if x.get("method") == r["method"]]
            ax.scatter(*zip(*pts), s=8, alpha=0.18, color=c)
            ax.errorbar(r["epochs_mean"], r["regret_pool_pp_mean"], xerr=r["epochs_sem"], yerr=r["regret_pool_pp_sem"],
                        fmt=markers.get(r["method"], "o"), ms=8, color=c, mec="black", capsize=3, label=r["label"])
        # Pareto front of the method means
        pts = sorted((r["epochs_mean"], r["regret_pool_pp_mean"]) for r in rows)
        front, best = [], math.inf
        for x, y in pts:
            if y < best:
                front.append((x, y))
                best = y
        ax.step(*zip(*front), where="post", color="gray", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("total epochs per study (log)")
        ax.set_ylabel("regret vs pool best (pp)")
        ax.axhline(0.5, color="gray", lw=0.6, ls=":")
        ax.set_title({"digits": "digits NB201 curves (40 epochs)", "nb101": "NB101 budgets 4/12/36/108"}[part]
                     + f", {results[part]['config']['seeds']} seeds")
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--nb101-trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=max(1, min(4, (os.cpu_count() or 2))))
    ap.add_argument("--parts", default="digits,nb101")
    ap.add_argument("--methods", default="", help="comma-separated method names (default: all)")
    ap.add_argument("--wilcoxon-seeds", type=int, default=3,
                    help="seeds for WilcoxonPruner (its scipy permutation tests take seconds per call)")
    ap.add_argument("--zero-shot-quantile", type=float, default=0.25)
    ap.add_argument("--weights", type=Path, default=None, help="predictor weights (default: shipped weights)")
    ap.add_argument("--curves", type=Path, default=None, help="curves .npz (default: packaged digits curves)")
    ap.add_argument("--nb101-csv", type=Path, default=DEFAULT_NB101)
    ap.add_argument("--nb101-lce-n", type=int, default=2000, help="archs for the NB101 LCE ranking check")
    ap.add_argument("--diag-epochs", default="5,10,20")
    ap.add_argument("--no-diag-lce", action="store_true")
    ap.add_argument("--no-fit-cache", action="store_true")
    ap.add_argument("--build-lce-table", type=Path, default=None, metavar="NPZ",
                    help="only build the digits LCE decision table (numpy/scipy only; no Optuna needed)")
    ap.add_argument("--lce-table", type=Path, default=None, metavar="NPZ",
                    help="answer the pruner's learning-curve decisions on digits from this table")
    ap.add_argument("--merge", type=Path, action="append", default=[], metavar="JSON",
                    help="take the records of the methods in this JSON (same trials per study) from it, replacing this "
                         "run's records of those methods")
    ap.add_argument("--from-json", type=Path, default=None, metavar="JSON",
                    help="no new studies: re-summarise this run's JSON (plus --merge files) and rewrite md/json/png")
    ap.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--name", default="optuna_pruning")
    args = ap.parse_args(argv)
    if args.build_lce_table is not None:
        build_lce_table(args.build_lce_table, args.workers, str(args.curves) if args.curves else None)
        return 0

    if args.from_json is not None:
        return rewrite_report(args)

    import optuna

    parts = [p for p in args.parts.split(",") if p]
    if not args.nb101_csv.is_file() and "nb101" in parts:
        print(f"NB101 table {args.nb101_csv} not found: skipping the NB101 part", file=sys.stderr)
        parts.remove("nb101")
    method_lists = {"digits": digits_methods(40, args.zero_shot_quantile), "nb101": nb101_methods()}
    wanted = set(args.methods.split(",")) if args.methods else None
    opts = {
        "trials": args.trials, "zs_quantile": args.zero_shot_quantile,
        "weights": str(args.weights) if args.weights else None,
        "curves": str(args.curves) if args.curves else None, "nb101_csv": str(args.nb101_csv),
        "fit_cache": not args.no_fit_cache, "diag_epochs": [int(k) for k in args.diag_epochs.split(",") if k],
        "diag_lce": not args.no_diag_lce, "nb101_lce_n": args.nb101_lce_n,
        "lce_table": str(args.lce_table) if args.lce_table else None,
        "methods": sorted({m.name for ms in method_lists.values() for m in ms if wanted is None or m.name in wanted}),
    }
    t_all = time.perf_counter()
    results: dict[str, Any] = {}
    if opts["fit_cache"]:
        install_fit_cache()
    for part in parts:
        names = [m.name for m in method_lists[part] if wanted is None or m.name in wanted]
        popts = dict(opts, trials=args.trials if part == "digits" else args.nb101_trials)
        tasks = make_tasks(part, names, args.seeds, args.wilcoxon_seeds, popts)
        t0 = time.perf_counter()
        records: list[dict] = []
        if args.workers > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(args.workers) as pool:
                for k, out in enumerate(pool.imap_unordered(run_seeds, tasks)):
                    records.extend(out)
                    print(f"[{time.perf_counter() - t0:7.1f}s] {part}: task {k + 1}/{len(tasks)} done "
                          f"({out[-1]['seeds']}, {sorted({r['method'] for r in out if 'method' in r})})", flush=True)
        else:
            for k, task in enumerate(tasks):
                records.extend(run_seeds(task))
                print(f"[{time.perf_counter() - t0:7.1f}s] {part}: task {k + 1}/{len(tasks)} done", flush=True)
        stats_recs = [r for r in records if "fit_stats" in r]
        fit_stats = [r["fit_stats"] for r in stats_recs]
        records = sorted((r for r in records if "fit_stats" not in r), key=lambda r: (r["method"], r["seed"]))
        merged_from = []
        for extra in args.merge:
            other = json.loads(Path(extra).read_text()).get(part)
            if not other or other["config"]["trials"] != popts["trials"]:
                continue
            add = [r for r in other["records"] if r["seed"] < args.seeds]
            replaced = {r["method"] for r in add}
            records = [r for r in records if r["method"] not in replaced] + add
            names += sorted({r["method"] for r in add} - set(names))
            merged_from.append({"file": str(extra), "methods": sorted({r["method"] for r in add}),
                                "command": json.loads(Path(extra).read_text())["env"]["command"]})
        methods = [m for m in method_lists[part] if m.name in names]
        rows = summarise(records, methods)
        results[part] = {
            "config": {"seeds": args.seeds, "trials": popts["trials"], "methods": names,
                       "zero_shot_quantile": args.zero_shot_quantile,
                       "predictor_weights": opts["weights"] or "default (Predictor.load_default)"},
            "summary": rows, "targets": targets(rows), "records": records, "merged_from": merged_from,
            "seconds": round(time.perf_counter() - t0, 1),
            "lce_table_lookups": {k: int(sum(r.get("table_stats", {}).get(k, 0) for r in stats_recs)) for k in ("hits", "misses")},
            "fit_cache": {"misses": int(sum(f["misses"] for f in fit_stats)), "hits": int(sum(f["hits"] for f in fit_stats)),
                          "fit_seconds": round(sum(f["fit_seconds"] for f in fit_stats), 1)},
        }
        print(table_md(rows, restart=(part == "nb101")), flush=True)
    # diagnostics (in the parent process)
    t0 = time.perf_counter()
    if "digits" in results:
        dopts = dict(opts)
        if any(m.zero_shot for m in method_lists["digits"] if m.name in results["digits"]["config"]["methods"]):
            import torch

            from nasassist_plugins.adapters.cells import nb201_network
            from nasassist_plugins.data import load_digits_curves
            from nasassist_plugins.predictor import Predictor

            data = load_digits_curves(opts["curves"])
            pred = Predictor.load(args.weights) if args.weights else Predictor.load_default()
            ch, cps = _net_kwargs(data.metadata)
            models = [nb201_network(a, channels=ch, cells_per_stage=cps, num_classes=10, in_channels=1)
                      for a in data.arch_strs]
            dopts["zero_shot_scores"] = pred.predict(models, torch.zeros(1, 1, 8, 8))[0]
        results["digits"]["diagnostics"] = digits_diagnostics(dopts)
    if "nb101" in results:
        results["nb101"]["diagnostics"] = nb101_diagnostics(opts)
    if args.lce_table and "digits" in results:
        results["digits"]["lce_table_check"] = check_lce_table(str(args.lce_table), 30, np.random.default_rng(1))
    if opts["fit_cache"]:
        # children's caches are gone: verify on the parent's (diagnostic fits are cached too)
        install_fit_cache()
        results["fit_cache_check"] = verify_fit_cache(10, np.random.default_rng(0))
    diag_seconds = time.perf_counter() - t0

    import scipy
    import torch

    env = {"python": platform.python_version(), "optuna": optuna.__version__, "torch": torch.__version__,
           "numpy": np.__version__, "scipy": scipy.__version__, "cpus": os.cpu_count(), "workers": args.workers,
           "command": "python benchmarks/optuna_pruning.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "total_seconds": round(time.perf_counter() - t_all, 1), "diagnostics_seconds": round(diag_seconds, 1)}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"env": env, **results}
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    (args.out_dir / f"{args.name}.md").write_text(report_md(payload))
    plot(results, args.out_dir / f"{args.name}.png")
    print(f"wrote {args.out_dir}/{args.name}.{{md,json,png}} in {env['total_seconds']}s")
    return 0


def rewrite_report(args: argparse.Namespace) -> int:
    payload = json.loads(args.from_json.read_text())
    method_lists = {"digits": digits_methods(40, args.zero_shot_quantile), "nb101": nb101_methods()}
    for part in ("digits", "nb101"):
        res = payload.get(part)
        if not res:
            continue
        records = res["records"]
        names = list(res["config"]["methods"])
        for extra in args.merge:
            other_payload = json.loads(Path(extra).read_text())
            other = other_payload.get(part)
            if not other or other["config"]["trials"] != res["config"]["trials"]:
                continue
            add = [r for r in other["records"] if r["seed"] < res["config"]["seeds"]]
            if not add:
                continue
            replaced = {r["method"] for r in add}
            records = [r for r in records if r["method"] not in replaced] + add
            names += sorted({r["method"] for r in add} - set(names))
            res.setdefault("merged_from", []).append({
                "file": str(extra), "methods": sorted({r["method"] for r in add}),
                "command": other_payload["env"]["command"], "seconds": other_payload["env"]["total_seconds"]})
        records.sort(key=lambda r: (r["method"], r["seed"]))
        res["config"]["methods"] = names
        res["records"] = records
        res["summary"] = summarise(records, [m for m in method_lists[part] if m.name in names])
        res["targets"] = targets(res["summary"])
        print(table_md(res["summary"], restart=(part == "nb101")))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    (args.out_dir / f"{args.name}.md").write_text(report_md(payload))
    plot({p: payload[p] for p in ("digits", "nb101") if p in payload}, args.out_dir / f"{args.name}.png")
    print(f"wrote {args.out_dir}/{args.name}.{{md,json,png}}")
    return 0


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def report_md(payload: dict) -> str:
    env = payload["env"]
    out = ["# Pruning on real learning curves (Optuna)", "",
           f"Command: `{env['command']}` — {env['total_seconds']} s on {env['cpus']} CPUs "
           f"({env['workers']} workers); optuna {env['optuna']}, torch {env['torch']}, scipy {env['scipy']}.", "",
           "Reproduce (every row, one command; the optional table only replaces live curve fits by look-ups of the "
           "same `should_stop` results):", "", "```bash",
           "python benchmarks/optuna_pruning.py --build-lce-table build/bench/digits_lce_table.npz --workers 15  "
           "# optional, numpy/scipy only",
           "python benchmarks/optuna_pruning.py --seeds 20 --trials 100 --workers 2 "
           "--lce-table build/bench/digits_lce_table.npz", "```", ""]
    if "digits" in payload:
        d = payload["digits"]
        cfg, diag = d["config"], d.get("diagnostics", {})
        out += ["## Digits: 320 narrow NB201 networks × 40 epochs (scikit-learn digits)", "",
                f"{cfg['seeds']} seeds × {cfg['trials']} trials per study; the same architectures in the same order "
                "for every pruner within a seed. Epochs = epochs replayed per study (NopPruner = trials × 40). "
                "Pool regret = best final val accuracy of the 320 archs − best final accuracy among the study's "
                "completed trials; pruning regret = best final accuracy among the study's sampled archs (what "
                "NopPruner finds) − the same. Zero-shot predictor: "
                f"{cfg['predictor_weights']} (trained on CIFAR-scale benchmark families, not on digits).", "",
                table_md(d["summary"]), ""]
        for mf in d.get("merged_from", []):
            out += [f"Rows {', '.join(mf['methods'])} come from a separate run with the same seeds and trials: "
                    f"`{mf['command']}`" + (f" ({mf['seconds']} s)." if mf.get("seconds") else "."), ""]
        if diag:
            fa = diag["final_acc"]
            out += [f"Pool: final val accuracy max {100 * fa['max']:.2f} %, 10th best {100 * fa['top10_min']:.2f} %, "
                    f"median {100 * fa['median']:.2f} %, min {100 * fa['min']:.2f} %; {fa['n_within_0.5pp_of_best']} archs "
                    f"within 0.5 pp of the best. Epoch-to-epoch noise over the last 10 epochs: "
                    f"{diag['epoch_noise_pp']:.2f} pp (sd of differences).", ""]
            rk = diag["rank_from_first_k_epochs"]
            out += ["| first k epochs | Spearman(acc at k, final) | Spearman(LCE forecast, final) | LCE mean error pp (signed / abs) |",
                    "|---|---|---|---|"]
            for k, r in rk.items():
                out.append(f"| {k} | {r['spearman_last_value']:.3f} | {r.get('spearman_lce_forecast', float('nan')):.3f} | "
                           f"{r.get('lce_mean_error_pp', float('nan')):+.2f} / {r.get('lce_mean_abs_error_pp', float('nan')):.2f} |")
            if "zero_shot_spearman_final" in diag:
                out += ["", f"Zero-shot score vs final accuracy on the pool: Spearman {diag['zero_shot_spearman_final']:.3f} "
                        f"(#params: {diag['params_spearman_final']:.3f})."]
            out.append("")
        out += ["Targets (issue 5): " + "; ".join(
            f"{k}: {v['ratio_vs_nop']:.2f}× fewer epochs than Nop at {v['regret_pool_pp']:.3f} pp "
            f"(≥3× at ≤0.5 pp: {'yes' if v['target_3x_at_0.5pp'] else 'NO'}; fewer epochs than Hyperband "
            f"({v.get('hyperband_epochs', float('nan')):.0f}) at regret not worse: "
            f"{'yes' if v.get('target_beats_hyperband') else 'NO'}; Hyperband settings at equal regret (within one "
            f"combined sem): " + (", ".join(f"{c['hyperband']} {c['epochs']:.0f} epochs at {c['regret_pool_pp']:.3f} pp"
                                            for c in v.get("vs_hyperband_settings", []) if c["equal_regret"]) or "none")
            + ")" for k, v in d["targets"].items()), "",
                "WilcoxonPruner is designed for per-instance evaluations (step = problem instance, objective = mean over "
                "instances). Applied to epochs it tests paired per-epoch differences against the best trial's curve, "
                "which are neither independent nor exchangeable; it runs, but it is outside its design.", ""]
    if "nb101" in payload:
        d = payload["nb101"]
        cfg, diag = d["config"], d.get("diagnostics", {})
        out += ["## NB101 multi-fidelity check (validation accuracy at 4/12/36/108 epochs)", "",
                f"{cfg['seeds']} seeds × {cfg['trials']} trials drawn from the 30,001-arch table; steps 4/12/36/108. "
                "Epochs = last budget reached (one run checkpointed at 4/12/36/108); restart view = sum of the "
                "budgets run (NB101's values come from separate runs).", "", table_md(d["summary"], restart=True), ""]
        if diag:
            out += ["| budget | Spearman vs 108-epoch accuracy | top-1 % overlap with 108 |", "|---|---|---|"]
            for b, r in diag["budget_rank"].items():
                out.append(f"| {b} | {r['spearman_vs_108']:.3f} | {r['top1pct_overlap']:.2f} |")
            l = diag["lce_from_4_12_36"]
            out += ["", f"LCE forecast of the 108-epoch accuracy from (4, 12, 36) on {l['n']} archs: Spearman "
                    f"{l['spearman_forecast_vs_108']:.3f} (accuracy at 36 alone: {l['spearman_acc36_same_subset']:.3f}); "
                    f"mean error {l['mean_error_pp']:+.2f} pp, abs {l['mean_abs_error_pp']:.2f} pp; "
                    f"{l['fit_failures_fallback_to_last']} fits fell back to the last value.", ""]
    if "digits" in payload and "lce_table_check" in payload["digits"]:
        tc = payload["digits"]["lce_table_check"]
        lk = payload["digits"].get("lce_table_lookups", {})
        tm = tc["table_metadata"]
        out += [f"LCE decisions on digits were looked up in a table of every (architecture, epochs seen, best "
                f"finished value) the pruner can ask about, built with the real `should_stop` by "
                f"`--build-lce-table` ({tm['seconds']} s, {tm['workers']} workers, numpy {tm['numpy']}, scipy "
                f"{tm.get('scipy')}); lookups {lk.get('hits')} hits / {lk.get('misses')} fallbacks to a live fit. "
                f"Re-checked locally: {tc['checked']} random entries, max |Δ probability| = "
                f"{tc['max_abs_probability_diff']:.2e}, NaN mismatches {tc['nan_mismatches']}. With the table, the "
                f"'pruner s/study' of the NASAssist rows is look-up time; live, the pruner fits the eleven curve "
                f"families at every should_prune() from min_resource on (≈0.2 s per call).", ""]
    if "fit_cache_check" in payload:
        fc = payload["fit_cache_check"]
        out += [f"Fit memoisation check: {fc['checked']} cached fits re-fitted fresh, max |Δ probability| = "
                f"{fc['max_abs_diff']}.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    raise SystemExit(main())
