"""Check the curve PFN's prior against the real curve sets, and the raw PFN's calibration on them.

    python benchmarks/curve_prior_check.py --out-dir benchmarks/results

For every real set (the three shipped digits sets and NB101's 4/12/36/108 epochs when
``../shared/data`` is there) and for the prior observed on the same report grid, at several
cut-offs (fraction of the run seen) it compares the distribution of the quantity the PFN
predicts, ``z = asinh((final - last) / s)`` (``last`` = last observed value, ``s`` = the PFN's
scale of the prefix, see :func:`nasassist_plugins.curves.pfn.prefix_scale`): its 10/50/90 %
quantiles in the prior and in the set. Where the set's quantiles fall outside the prior's bulk,
the prior does not describe that set. It also reports the raw (uncalibrated) PFN's probability
integral transform on every set (a calibrated forecaster gives uniform PITs: 10 % in each decile)
and its 80 % interval coverage. Outputs ``curve_prior_check.{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from pruning_curve_sets import DEFAULT_NB101, DIGITS_SETS, load_table  # noqa: E402


def z_targets(t: np.ndarray, y: np.ndarray, k: int, upper: float | None) -> float:
    from nasassist_plugins.curves.pfn import prefix_scale

    m, s = prefix_scale(y[:k], upper)
    return float(np.arcsinh((y[-1] - m) / s))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-prior", type=int, default=4000)
    ap.add_argument("--nb101-csv", type=Path, default=DEFAULT_NB101)
    ap.add_argument("--max-runs", type=int, default=1000, help="runs per set (NB101 has 30k)")
    ap.add_argument("--sets", default=",".join((*DIGITS_SETS, "nb101")))
    ap.add_argument("--out-dir", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    from nasassist_plugins.curves.pfn_extrapolator import PFNExtrapolator
    from nasassist_plugins.curves.prior import sample_curves

    t_start = time.perf_counter()
    rng = np.random.default_rng(0)
    results = {}
    pit_hist = {}
    for name in args.sets.split(","):
        try:
            tab = load_table(name, args.nb101_csv)
        except FileNotFoundError as exc:
            print(f"{name}: {exc}", flush=True)
            continue
        if tab is None:
            continue
        values = tab.values[rng.permutation(len(tab.values))[: args.max_runs]]
        max_res = float(tab.cost[-1])
        t = tab.cost / max_res
        n = len(t)
        prior = sample_curves(np.random.default_rng(1), args.n_prior, t=np.tile(t, (args.n_prior, 1)),
                              length=np.full(args.n_prior, n))
        cut_fracs = (0.1, 0.25, 0.5) if name != "nb101" else (0.12, 0.34)
        rows = {}
        pits_all = []
        for frac in cut_fracs:
            k = max(2, int(np.searchsorted(t, frac + 1e-9, side="right")))
            if k >= n:
                continue
            real_z = np.array([z_targets(t, v, k, 1.0) for v in values])
            prior_z = np.array([z_targets(t, v, k, 1.0) for v in prior.y])
            pits, hits = [], []
            for v in values[:400]:
                f = PFNExtrapolator(max_step=max_res, upper_bound=1.0, lower_bound=0.0).fit(tab.cost[:k], v[:k])
                fc = f.forecast(max_res)
                pits.append(fc.cdf(float(v[-1])))
                hits.append(fc.quantile(0.1) <= v[-1] <= fc.quantile(0.9))
            pits_all += pits
            rows[f"{tab.cost[k - 1]:g}"] = {
                "fraction_seen": float(t[k - 1]),
                "real_z_q10_50_90": np.quantile(real_z, [0.1, 0.5, 0.9]).round(3).tolist(),
                "prior_z_q10_50_90": np.quantile(prior_z, [0.1, 0.5, 0.9]).round(3).tolist(),
                "real_z_percentile_in_prior_q10_50_90": [float(np.mean(prior_z <= q)) for q in
                                                          np.quantile(real_z, [0.1, 0.5, 0.9])],
                "raw_pfn_pit_mean": float(np.mean(pits)),
                "raw_pfn_80_coverage": float(np.mean(hits)),
            }
        results[name] = rows
        pit_hist[name] = np.histogram(pits_all, bins=10, range=(0, 1))[0].tolist()
        print(name, json.dumps(rows), flush=True)
    payload = {"command": "python benchmarks/curve_prior_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "seconds": round(time.perf_counter() - t_start, 1), "sets": results, "pit_histograms": pit_hist}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "curve_prior_check.json").write_text(json.dumps(payload, indent=1))
    lines = ["# The curve PFN's prior against the real curve sets", "", f"Command: `{payload['command']}` "
             f"({payload['seconds']} s).", "",
             "z = asinh((final − last observed) / s): the quantity the PFN predicts. 'Real in prior' = where the "
             "set's 10/50/90 % quantiles of z fall in the prior's distribution (0.1 / 0.5 / 0.9 would be a perfect "
             "match). Raw PFN = the network alone, before the decision rule's calibration on the study.", "",
             "| set | seen | real z q10 / q50 / q90 | prior z q10 / q50 / q90 | real in prior | raw PFN mean PIT | "
             "raw PFN 80 % coverage |", "|---|---|---|---|---|---|---|"]
    for name, rows in results.items():
        for k, r in rows.items():
            lines.append(f"| {name} | {k} ({r['fraction_seen']:.2f}) | "
                         f"{' / '.join(f'{x:.2f}' for x in r['real_z_q10_50_90'])} | "
                         f"{' / '.join(f'{x:.2f}' for x in r['prior_z_q10_50_90'])} | "
                         f"{' / '.join(f'{x:.2f}' for x in r['real_z_percentile_in_prior_q10_50_90'])} | "
                         f"{r['raw_pfn_pit_mean']:.2f} | {r['raw_pfn_80_coverage']:.2f} |")
    lines += ["", "Raw PFN PIT histograms (10 bins, counts; uniform = calibrated):", ""]
    for name, h in pit_hist.items():
        lines.append(f"- {name}: {h}")
    (args.out_dir / "curve_prior_check.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(pit_hist), figsize=(4 * len(pit_hist), 3.2), squeeze=False)
    for ax, (name, h) in zip(axes[0], pit_hist.items()):
        ax.bar(np.arange(10) / 10 + 0.05, np.asarray(h) / max(1, sum(h)), width=0.09)
        ax.axhline(0.1, color="k", lw=0.8, ls="--")
        ax.set_title(f"raw PFN PIT: {name}")
        ax.set_xlabel("PIT of the final value")
    fig.tight_layout()
    fig.savefig(args.out_dir / "curve_prior_check.png", dpi=100)
    print(f"wrote {args.out_dir}/curve_prior_check.{{md,json,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
