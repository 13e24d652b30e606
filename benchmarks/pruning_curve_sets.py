"""Pruning benchmark on every real learning-curve set, replayed through real Optuna studies.

    python benchmarks/pruning_curve_sets.py --seeds 10 --trials 100 --workers 2 --out-dir benchmarks/results

**Curve sets.** The three shipped sets (:data:`nasassist_plugins.data.CURVE_SETS`: NB201 cells with
SGD + cosine, MLPs with Adam at a constant learning rate, macro CNNs with SGD + warm-up + step
schedule, all on scikit-learn digits) and NAS-Bench-101's validation accuracy after 4/12/36/108
epochs (``../shared/data/nb101/nb101_30k_with_arch.csv``; skipped when absent).

**Protocol.** For every seed a random permutation of the set gives the runs of the study's
``--trials`` trials, enqueued in the same order for every pruner. A trial replays its run's
recorded curve (``trial.report(value, step)``; steps 0..E-1 for the digits sets, 4/12/36/108 for
NB101), asks ``trial.should_prune()`` after every report but the last, and returns the final value.
Cost = epochs replayed (the last budget reached for NB101, one run checkpointed at 4/12/36/108; the
sum of the budgets run is reported too). Regret, in percentage points: **pruning regret** = best
final value among the study's runs (what NopPruner finds) − best final value among its COMPLETE
trials (the regret caused by pruning alone; the targets use this one), and pool regret = best
final value of the whole set − the same.

**Methods** (no setting is tuned on these results; ``--methods`` selects rows): NopPruner,
MedianPruner(5 startup trials), HyperbandPruner(min_resource=1, max_resource=epochs, rf 3; NB101:
4..108, rf 3 = NB101's own ladder), NASAssistPruner defaults (learned extrapolator, study
calibration, rungs x2 from step 0, threshold 0.05, top-1 reference), NASAssistPruner with
``top_k=3``, and NASAssistPruner with the parametric ensemble (``--methods nas_parametric``; slow).

**Calibration.** For every set, half the runs (random, seeded) play the finished trials and the
other half are held out: from each held-out prefix at 10/25/50/75 % of the budget the rule's
calibrated 80 % and 50 % intervals of the final value are checked for coverage, next to the raw
(uncalibrated) learned extrapolator's.

**Decision cost.** Wall time of every ``should_prune()`` call in which NASAssistPruner computed a
forecast (median and 90th percentile, ms), on this machine while the benchmark runs.

Outputs: ``pruning_curve_sets.{md,json,png}`` in ``--out-dir``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NB101 = REPO.parent / "shared" / "data" / "nb101" / "nb101_30k_with_arch.csv"
NB101_BUDGETS = (4, 12, 36, 108)
DIGITS_SETS = ("digits_nb201", "digits_mlp", "digits_cnn")


@dataclass(frozen=True)
class CurveTable:
    """One set's runs: ``values[i, k]`` reported at ``steps[k]``; ``cost[k]`` epochs spent by then."""

    name: str
    values: np.ndarray
    steps: np.ndarray
    cost: np.ndarray
    description: str

    @property
    def final(self) -> np.ndarray:
        return self.values[:, -1]


def load_table(name: str, nb101_csv: Path) -> CurveTable | None:
    if name == "nb101":
        if not nb101_csv.is_file():
            print(f"NB101 table not found at {nb101_csv}: skipping the NB101 part", flush=True)
            return None
        with open(nb101_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        values = np.array([[float(r[f"val_acc_{b}"]) for b in NB101_BUDGETS] for r in rows])
        return CurveTable(name, values, np.array(NB101_BUDGETS), np.array(NB101_BUDGETS, dtype=float),
                          f"NAS-Bench-101 CIFAR-10 validation accuracy after 4/12/36/108 epochs ({len(rows)} cells)")
    from nasassist_plugins.data import load_curve_set

    data = load_curve_set(name)
    n_ep = data.n_epochs
    return CurveTable(name, data.val_acc, np.arange(n_ep), np.arange(1, n_ep + 1, dtype=float),
                      f"{data.n_runs} runs x {n_ep} epochs; {data.metadata.get('optimiser', '')}")


# ---------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    name: str
    label: str
    make: Callable[[CurveTable], Any]
    nasassist: bool = False
    zero_shot: bool = False


def methods() -> list[Method]:
    import optuna

    from nasassist_plugins.optuna import NASAssistPruner

    def last_step(tab: CurveTable) -> int:
        return int(tab.steps[-1])

    def hyperband(tab: CurveTable):
        if tab.name == "nb101":
            return optuna.pruners.HyperbandPruner(min_resource=4, max_resource=108, reduction_factor=3)
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=len(tab.steps), reduction_factor=3)

    def nas(**kw):
        return lambda tab: NASAssistPruner(max_resource=last_step(tab), lower_bound=0.0, upper_bound=1.0, **kw)

    return [
        Method("nop", "NopPruner", lambda tab: optuna.pruners.NopPruner()),
        Method("median", "MedianPruner (5 startup trials)", lambda tab: optuna.pruners.MedianPruner(n_startup_trials=5)),
        Method("hyperband", "HyperbandPruner (rf 3)", hyperband),
        Method("nas", "NASAssistPruner (defaults: learned extrapolator)", nas(), nasassist=True),
        Method("nas_p10", "NASAssistPruner threshold 0.1", nas(threshold_probability=0.1), nasassist=True),
        Method("nas_p20", "NASAssistPruner threshold 0.2", nas(threshold_probability=0.2), nasassist=True),
        Method("nas_top3", "NASAssistPruner top_k=3", nas(top_k=3), nasassist=True),
        Method("nas_zs", "NASAssistPruner + zero-shot score (weight 1)", nas(), nasassist=True, zero_shot=True),
        Method("nas_parametric", "NASAssistPruner parametric ensemble", nas(extrapolator="parametric"),
               nasassist=True),
    ]


DEFAULT_METHODS = ("nop", "median", "hyperband", "nas", "nas_p10", "nas_p20", "nas_zs")


def zero_shot_scores(name: str) -> np.ndarray | None:
    """The default predictor's zero-shot score of every run's network (digits sets only), in one batch.

    The benchmark stores them in each trial exactly as :func:`nasassist_plugins.optuna.report_model`
    does (the ``nasassist:zero_shot`` system attribute); scoring once per run instead of once per
    trial only saves time.
    """
    if name not in DIGITS_SETS:
        return None
    import torch

    from nasassist_plugins.data import load_curve_set
    from nasassist_plugins.predictor import Predictor

    data = load_curve_set(name)
    if name == "digits_nb201":
        from nasassist_plugins.adapters.cells import nb201_network

        models = [nb201_network(a, channels=8, cells_per_stage=1, num_classes=10, in_channels=1) for a in data.configs]
    else:
        sys.path.insert(0, str(REPO / "benchmarks"))
        module = __import__("generate_mlp_curves" if name == "digits_mlp" else "generate_cnn_curves")
        models = [module.build_model(json.loads(c)) for c in data.configs]
    mean, _ = Predictor.load_default().predict(models, torch.zeros(1, 1, 8, 8))
    return np.asarray(mean, dtype=float)


# ---------------------------------------------------------------------------- one study
def run_study(method: Method, tab: CurveTable, seed: int, order: np.ndarray, scores: np.ndarray | None = None) -> dict:
    import optuna

    from nasassist_plugins.optuna import _attrs

    pruner = method.make(tab)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed),
                                pruner=pruner, study_name=f"{tab.name}-{method.name}-{seed}")
    for idx in order:
        study.enqueue_trial({"run": int(idx)})
    spent: dict[int, float] = {}
    restart: dict[int, float] = {}
    decision_ms: list[float] = []
    n_steps = len(tab.steps)

    def objective(trial):
        idx = trial.suggest_int("run", 0, len(tab.values) - 1)
        if method.zero_shot:
            trial.storage.set_trial_system_attr(trial._trial_id, _attrs.ZERO_SHOT, float(scores[idx]))
        for k in range(n_steps):
            spent[trial.number] = float(tab.cost[k])
            restart[trial.number] = float(tab.cost[: k + 1].sum())
            trial.report(float(tab.values[idx, k]), int(tab.steps[k]))
            if k < n_steps - 1:
                before = getattr(pruner, "last_decision", None)
                t0 = time.perf_counter()
                prune = trial.should_prune()
                dt = time.perf_counter() - t0
                after = getattr(pruner, "last_decision", None)
                if method.nasassist and after is not before and after is not None and after.reason == "forecast":
                    decision_ms.append(1000.0 * dt)
                if prune:
                    raise optuna.TrialPruned()
        return float(tab.values[idx, -1])

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=len(order))
    wall = time.perf_counter() - t0
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    best = max((t.value for t in complete), default=0.0)
    sampled_best = float(tab.final[order].max())
    return {
        "set": tab.name, "method": method.name, "seed": seed,
        "epochs": float(sum(spent.values())), "epochs_restart_view": float(sum(restart.values())),
        "n_complete": len(complete), "n_pruned": len(pruned),
        "pruned_would_beat_result": int(sum(1 for t in pruned if tab.final[t.params["run"]] >= best)),
        "regret_pp": 100.0 * (sampled_best - best), "regret_pool_pp": 100.0 * (float(tab.final.max()) - best),
        "decision_ms": decision_ms, "wall_seconds": wall,
    }


def run_task(task: tuple) -> list[dict]:
    name, seeds, method_names, opts = task
    import optuna
    import torch

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    tab = load_table(name, Path(opts["nb101_csv"]))
    out = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(len(tab.values))[: opts["trials"]]
        for m in methods():
            if m.name in method_names and (not m.zero_shot or opts.get("scores") is not None):
                out.append(run_study(m, tab, seed, order, opts.get("scores")))
    return out


# ---------------------------------------------------------------------------- calibration
def calibration(tab: CurveTable, seed: int = 0, n_max: int = 400) -> dict:
    """Coverage of the rule's calibrated and raw intervals on held-out runs of ``tab``."""
    from nasassist_plugins.curves import ObservedRun, StopRule

    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(tab.values))[: 2 * (min(n_max, len(tab.values)) // 2)]
    half = len(idx) // 2
    calib, held = idx[:half], idx[half:]
    max_res = float(tab.cost[-1])
    resources = tab.cost
    finished = [ObservedRun.from_reports(int(i), resources, tab.values[i], float(tab.final[i])) for i in calib]
    rule = StopRule(max_resource=max_res, upper_bound=1.0, lower_bound=0.0)
    out = {}
    fractions = (0.1, 0.25, 0.5, 0.75) if tab.name != "nb101" else (4 / 108, 12 / 108, 36 / 108)
    for frac in fractions:
        k = int(np.searchsorted(resources, frac * max_res + 1e-9, side="right"))
        if k < 2 or k >= len(resources):
            continue
        hits = {"cal80": [], "cal50": [], "raw80": [], "raw50": []}
        widths = []
        for i in held:
            run = ObservedRun.from_reports(int(i), resources[:k], tab.values[i, :k])
            cal = rule.predictive(run, max_res, finished)
            raw = rule.predictive(run, max_res)
            y = float(tab.final[i])
            for kind, pred in (("cal", cal), ("raw", raw)):
                for level, (lo_q, hi_q) in ((80, (0.1, 0.9)), (50, (0.25, 0.75))):
                    lo, hi = pred.quantile(lo_q), pred.quantile(hi_q)
                    hits[f"{kind}{level}"].append(lo <= y <= hi)
            widths.append(cal.quantile(0.9) - cal.quantile(0.1))
        out[f"{resources[k - 1]:g}"] = {
            "fraction": float(resources[k - 1] / max_res), "n_heldout": int(len(held)),
            **{key: float(np.mean(v)) for key, v in hits.items()},
            "cal80_median_width_pp": float(100 * np.median(widths)),
        }
    return out


# ---------------------------------------------------------------------------- summary
def summarise(records: list[dict], names: list[str]) -> list[dict]:
    rows = []
    nop = [r["epochs"] for r in records if r["method"] == "nop"]
    nop_epochs = float(np.mean(nop)) if nop else math.nan
    label = {m.name: m.label for m in methods()}
    for name in names:
        rs = [r for r in records if r["method"] == name]
        if not rs:
            continue
        ep = np.array([r["epochs"] for r in rs])
        rg = np.array([r["regret_pp"] for r in rs])
        ms = [x for r in rs for x in r["decision_ms"]]
        sem = lambda a: float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else 0.0  # noqa: E731
        rows.append({
            "method": name, "label": label[name], "n_seeds": len(rs),
            "epochs_mean": float(ep.mean()), "epochs_sem": sem(ep), "ratio_vs_nop": nop_epochs / float(ep.mean()),
            "epochs_restart_view_mean": float(np.mean([r["epochs_restart_view"] for r in rs])),
            "regret_pp_mean": float(rg.mean()), "regret_pp_sem": sem(rg), "regret_pp_max": float(rg.max()),
            "regret_pool_pp_mean": float(np.mean([r["regret_pool_pp"] for r in rs])),
            "pruned_mean": float(np.mean([r["n_pruned"] for r in rs])),
            "pruned_would_beat_mean": float(np.mean([r["pruned_would_beat_result"] for r in rs])),
            "decision_ms_median": float(np.median(ms)) if ms else None,
            "decision_ms_p90": float(np.quantile(ms, 0.9)) if ms else None,
            "n_decisions": len(ms),
        })
    return rows


def targets(name: str, rows: list[dict]) -> dict:
    by = {r["method"]: r for r in rows}
    nas, hb, med = by.get("nas"), by.get("hyperband"), by.get("median")
    if nas is None:
        return {}
    out = {
        "regret_le_0.2pp": nas["regret_pp_mean"] <= 0.2,
        "fewer_epochs_than_hyperband": hb is not None and nas["epochs_mean"] < hb["epochs_mean"],
        "fewer_epochs_than_median": med is not None and nas["epochs_mean"] < med["epochs_mean"],
        "decision_ms_median_le_5": nas["decision_ms_median"] is not None and nas["decision_ms_median"] <= 5.0,
    }
    out["beats_both_at_0.2pp"] = bool(out["regret_le_0.2pp"] and out["fewer_epochs_than_hyperband"]
                                     and out["fewer_epochs_than_median"])
    if name == "digits_nb201":
        out["5x_at_0.2pp"] = bool(nas["ratio_vs_nop"] >= 5.0 and nas["regret_pp_mean"] <= 0.2)
    if name == "nb101":
        out["3x_at_0.3pp"] = bool(nas["ratio_vs_nop"] >= 3.0 and nas["regret_pp_mean"] <= 0.3)
    return out


def table_md(rows: list[dict]) -> str:
    head = ("| method | epochs (mean ± sem) | × fewer than Nop | pruning regret pp (mean ± sem / max) | pool regret pp "
            "| pruned | pruned that would beat the result | decision ms (median / p90) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        dms = "—" if r["decision_ms_median"] is None else f"{r['decision_ms_median']:.2f} / {r['decision_ms_p90']:.2f}"
        lines.append(f"| {r['label']} | {r['epochs_mean']:.0f} ± {r['epochs_sem']:.0f} | {r['ratio_vs_nop']:.2f} | "
                     f"{r['regret_pp_mean']:.3f} ± {r['regret_pp_sem']:.3f} / {r['regret_pp_max']:.2f} | "
                     f"{r['regret_pool_pp_mean']:.3f} | {r['pruned_mean']:.1f} | {r['pruned_would_beat_mean']:.2f} | "
                     f"{dms} |")
    return "\n".join(lines)


def report_md(payload: dict) -> str:
    env = payload["env"]
    out = ["# Pruning on real learning-curve sets (Optuna)", "",
           f"Command: `{env['command']}` — {env['total_seconds']} s on {env['cpus']} CPUs ({env['workers']} workers); "
           f"optuna {env['optuna']}, numpy {env['numpy']}.", "",
           "Pruning regret = best final value among the study's runs − best final value among its completed trials "
           "(pp); the targets use it. Epochs for NB101 = last budget reached (one run checkpointed at 4/12/36/108).", ""]
    worst = payload.get("worst_case")
    if worst:
        out += ["## Worst case over the sets (NASAssistPruner defaults)", "", worst, ""]
    for name, part in payload["sets"].items():
        ran = f" Run by `{part['command']}`." if part.get("command") else ""
        out += [f"## {name}", "", part["description"] + ran, "",
                f"{part['config']['seeds']} seeds × {part['config']['trials']} trials, same runs in the same order "
                "for every pruner.", "", table_md(part["summary"]), ""]
        if part.get("targets"):
            out.append("Targets (NASAssistPruner defaults): " + ", ".join(
                f"{k}: {'yes' if v else 'NO'}" for k, v in part["targets"].items()))
            out.append("")
        cal = part.get("calibration")
        if cal:
            out += ["Interval coverage on held-out runs (half the set plays the finished trials):", "",
                    "| epochs seen (fraction) | calibrated 80 % | calibrated 50 % | raw PFN 80 % | raw PFN 50 % | "
                    "calibrated 80 % width pp (median) |", "|---|---|---|---|---|---|"]
            for k, c in cal.items():
                out.append(f"| {k} ({c['fraction']:.2f}) | {c['cal80']:.2f} | {c['cal50']:.2f} | {c['raw80']:.2f} | "
                           f"{c['raw50']:.2f} | {c['cal80_median_width_pp']:.2f} |")
            out.append("")
    return "\n".join(out)


def worst_case(sets: dict) -> str:
    """One row per set for the default NASAssistPruner, worst first (fewest targets met, then highest regret)."""
    lines = ["| set | NASAssist epochs | × fewer than Nop | regret pp | Hyperband epochs (regret) | Median epochs (regret) "
             "| fewer epochs than both at ≤ 0.2 pp |", "|---|---|---|---|---|---|---|"]
    rows = []
    for name, part in sets.items():
        by = {r["method"]: r for r in part["summary"]}
        if "nas" in by:
            met = sum(bool(v) for v in part.get("targets", {}).values())
            rows.append((met, -by["nas"]["regret_pp_mean"], name, by["nas"], by.get("hyperband"), by.get("median"),
                         part.get("targets", {})))
    fmt = lambda r: "—" if r is None else f"{r['epochs_mean']:.0f} ({r['regret_pp_mean']:.3f})"  # noqa: E731
    for _, _, name, n, h, m, t in sorted(rows, key=lambda r: (r[0], r[1])):
        lines.append(f"| {name} | {n['epochs_mean']:.0f} | {n['ratio_vs_nop']:.2f} | {n['regret_pp_mean']:.3f} | "
                     f"{fmt(h)} | {fmt(m)} | {'yes' if t.get('beats_both_at_0.2pp') else 'NO'} |")
    return "\n".join(lines)


def plot(sets: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(sets)
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 4.4), squeeze=False)
    colours = {"nop": "black", "median": "tab:orange", "hyperband": "tab:blue", "nas": "tab:red",
               "nas_top3": "tab:purple", "nas_parametric": "tab:green", "nas_zs": "tab:brown",
               "nas_p10": "salmon", "nas_p20": "darkred"}
    for ax, name in zip(axes[0], names):
        for r in sets[name]["summary"]:
            ax.errorbar(r["epochs_mean"], r["regret_pp_mean"], xerr=r["epochs_sem"], yerr=r["regret_pp_sem"],
                        fmt="o", color=colours.get(r["method"], "grey"), label=r["label"], capsize=3)
        ax.axhline(0.2, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("epochs per study (log)")
        ax.set_ylabel("pruning regret (pp)")
        ax.set_title(name)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join((*DIGITS_SETS, "nb101")))
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nb101-csv", type=Path, default=DEFAULT_NB101)
    ap.add_argument("--no-calibration", action="store_true")
    ap.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--name", default="pruning_curve_sets")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="JSON outputs of earlier runs whose sets (not run again here) join this report")
    args = ap.parse_args(argv)
    import optuna

    names = [m for m in args.methods.split(",") if m]
    known = {m.name for m in methods()}
    if set(names) - known:
        ap.error(f"unknown methods {sorted(set(names) - known)}; choose from {sorted(known)}")
    opts = {"trials": args.trials, "nb101_csv": str(args.nb101_csv)}
    t_all = time.perf_counter()
    sets: dict[str, Any] = {}
    for name in [s for s in args.sets.split(",") if s]:
        tab = load_table(name, args.nb101_csv)
        if tab is None:
            continue
        set_opts = dict(opts)
        if any(m.zero_shot and m.name in names for m in methods()):
            set_opts["scores"] = zero_shot_scores(name)
        tasks = [(name, [s], [m], set_opts) for s in range(args.seeds) for m in names]
        records: list[dict] = []
        t0 = time.perf_counter()
        if args.workers > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(args.workers) as pool:
                for k, out in enumerate(pool.imap_unordered(run_task, tasks)):
                    records.extend(out)
                    if (k + 1) % max(1, len(tasks) // 10) == 0 or k + 1 == len(tasks):
                        print(f"[{time.perf_counter() - t0:7.1f}s] {name}: {k + 1}/{len(tasks)} studies", flush=True)
        else:
            for k, task in enumerate(tasks):
                records.extend(run_task(task))
                print(f"[{time.perf_counter() - t0:7.1f}s] {name}: {k + 1}/{len(tasks)} studies", flush=True)
        records.sort(key=lambda r: (r["method"], r["seed"]))
        rows = summarise(records, names)
        part = {"description": tab.description, "config": {"seeds": args.seeds, "trials": args.trials, "methods": names},
                "summary": rows, "targets": targets(name, rows), "records": records,
                "seconds": round(time.perf_counter() - t0, 1)}
        if not args.no_calibration:
            part["calibration"] = calibration(tab)
        sets[name] = part
        print(f"## {name}\n{table_md(rows)}\n{json.dumps(part['targets'])}", flush=True)
        if part.get("calibration"):
            print(json.dumps(part["calibration"], indent=1), flush=True)
    merged = []
    for extra in args.merge:
        other = json.loads(extra.read_text())
        for name, part in other["sets"].items():
            if name not in sets:
                part["command"] = other["env"]["command"]
                sets[name] = part
                merged.append(name)
    env = {"python": platform.python_version(), "optuna": optuna.__version__, "numpy": np.__version__,
           "cpus": os.cpu_count(), "workers": args.workers,
           "command": "python benchmarks/pruning_curve_sets.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "total_seconds": round(time.perf_counter() - t_all, 1), "merged_sets": merged}
    payload = {"env": env, "worst_case": worst_case(sets), "sets": sets}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(payload, indent=1))
    (args.out_dir / f"{args.name}.md").write_text(report_md(payload))
    plot(sets, args.out_dir / f"{args.name}.png")
    print(payload["worst_case"])
    print(f"wrote {args.out_dir}/{args.name}.{{md,json,png}} in {env['total_seconds']}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
