"""Train the curve PFN on curves drawn from the prior; writes ``weights/curve_pfn.safetensors``.

Command that produced the shipped weights (2-core CPU, one torch thread, ``nice``; it
checkpoints to ``--work-dir`` every few minutes and resumes from there when restarted)::

    OMP_NUM_THREADS=1 nice -n 10 python -m nasassist_plugins.curves.train_pfn \\
        --steps 6500 --max-minutes 58 --work-dir build/curve_pfn \\
        --out nasassist_plugins/curves/weights/curve_pfn.safetensors

Training follows LC-PFN (Adriaensen et al., 2023): every step draws a fresh batch of curves from
:func:`nasassist_plugins.curves.prior.sample_curves`, cuts each at a random number of observed
points (at least two), and minimises the negative log-likelihood of the bar distribution at
the final step (weight 1) and at up to three other unobserved steps (weight 1/4 each). AdamW,
linear warm-up then cosine decay. The bucket borders are quantiles of 200,000 prior targets.
The network (:class:`PFNModule`) is the PyTorch twin of the numpy forward pass in
:mod:`nasassist_plugins.curves.pfn`; ``--check`` verifies that the two agree on random inputs.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from nasassist_plugins.curves.pfn import (
    FORMAT,
    MAX_OBSERVED,
    N_CONTEXT_FEATURES,
    N_OBS_FEATURES,
    N_QUERY_FEATURES,
    encode_prefix,
    expected_shapes,
)
from nasassist_plugins.curves.prior import sample_curves

N_QUERIES = 4  # the final step and up to three others


def build_module(config: dict):
    """The PFN as a ``torch.nn.Module`` (parameter names = the safetensors names)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    d, heads, n_layers, d_ff, k = (int(config[x]) for x in ("d_model", "n_heads", "n_layers", "d_ff", "n_buckets"))

    class Layer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.norm2 = nn.LayerNorm(d)
            self.ff1 = nn.Linear(d, d_ff)
            self.ff2 = nn.Linear(d_ff, d)

        def forward(self, x, n_keys: int, key_padding_mask):
            a = self.norm1(x)
            out, _ = self.attn(a, a[:, :n_keys], a[:, :n_keys], key_padding_mask=key_padding_mask, need_weights=False)
            x = x + out
            return x + self.ff2(F.gelu(self.ff1(self.norm2(x)), approximate="tanh"))

    class PFNModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_context = nn.Linear(N_CONTEXT_FEATURES, d)
            self.embed_obs = nn.Linear(N_OBS_FEATURES, d)
            self.embed_query = nn.Linear(N_QUERY_FEATURES, d)
            self.layers = nn.ModuleList(Layer() for _ in range(n_layers))
            self.norm = nn.LayerNorm(d)
            self.head = nn.Linear(d, k)
            self.register_buffer("borders", torch.zeros(k + 1))

        def forward(self, context, obs, obs_mask, query):
            """``context (B, 5)``, ``obs (B, L, 4)``, ``obs_mask (B, L)`` True = valid, ``query (B, Q, 4)``."""
            x = torch.cat([self.embed_context(context)[:, None], self.embed_obs(obs), self.embed_query(query)], 1)
            n_keys = 1 + obs.shape[1]
            pad = torch.cat([torch.zeros_like(obs_mask[:, :1]), ~obs_mask], 1)
            for layer in self.layers:
                x = layer(x, n_keys, pad)
            return self.head(self.norm(x[:, n_keys:]))

    return PFNModule()


def make_batch(rng: np.random.Generator, batch: int, max_len: int = MAX_OBSERVED, cap: int | None = None) -> dict:
    """One training batch: prefixes, queries and targets ``z`` (numpy arrays).

    ``cap`` limits the number of observed points of every prefix in the batch (padding costs
    as much as real points, so training batches mix short and long prefixes batch by batch).
    """
    curves = sample_curves(rng, batch, max_len)
    ctx = np.zeros((batch, N_CONTEXT_FEATURES))
    obs = np.zeros((batch, max_len, N_OBS_FEATURES))
    mask = np.zeros((batch, max_len), dtype=bool)
    query = np.zeros((batch, N_QUERIES, N_QUERY_FEATURES))
    target = np.zeros((batch, N_QUERIES))
    weight = np.zeros((batch, N_QUERIES))
    for i in range(batch):
        n = int(curves.length[i])
        n_obs = int(rng.integers(2, n if cap is None else max(3, min(n, cap + 1))))
        t, y = curves.t[i, :n], curves.y[i, :n]
        later = np.arange(n_obs, n - 1)
        extra = rng.choice(later, size=min(N_QUERIES - 1, len(later)), replace=False) if len(later) else []
        q_idx = np.concatenate([[n - 1], np.asarray(extra, dtype=int)])
        upper = 1.0 if curves.bounded[i] else None
        c, o, q, m, s = encode_prefix(t[:n_obs], y[:n_obs], upper, t[q_idx])
        ctx[i] = c
        obs[i, :n_obs] = o
        mask[i, :n_obs] = True
        query[i, : len(q_idx)] = q
        target[i, : len(q_idx)] = np.arcsinh((y[q_idx] - m) / s)
        weight[i, 0] = 1.0
        weight[i, 1 : len(q_idx)] = 0.25
    width = int(mask.sum(1).max())  # pad to the longest prefix of the batch only
    return {"context": ctx, "obs": obs[:, :width], "mask": mask[:, :width], "query": query, "target": target,
            "weight": weight}


def bucket_borders(n_buckets: int, seed: int = 12345, n_samples: int = 200_000) -> np.ndarray:
    """Bucket borders: quantiles of prior targets, outer edges just beyond the extremes."""
    rng = np.random.default_rng(seed)
    zs = []
    while sum(len(z) for z in zs) < n_samples:
        b = make_batch(rng, 512)
        zs.append(b["target"][b["weight"] > 0])
    z = np.concatenate(zs)
    inner = np.quantile(z, np.linspace(0, 1, n_buckets + 1)[1:-1])
    lo, hi = float(z.min()) - 1.0, float(z.max()) + 1.0
    borders = np.concatenate([[lo], inner, [hi]])
    # keep borders strictly increasing (ties at a clipped value)
    for j in range(1, len(borders)):
        borders[j] = max(borders[j], borders[j - 1] + 1e-4)
    return borders


def bar_nll(logits, borders, target):
    """Negative log density of ``target`` under the bar distribution (LC-PFN's loss)."""
    import torch

    t = target.clamp(borders[0] + 1e-6, borders[-1] - 1e-6)
    idx = torch.searchsorted(borders, t.contiguous(), right=True) - 1
    idx = idx.clamp(0, len(borders) - 2)
    logp = torch.log_softmax(logits, -1).gather(-1, idx[..., None])[..., 0]
    widths = (borders[1:] - borders[:-1])[idx]
    return -(logp - torch.log(widths))


def _to_torch(batch: dict):
    import torch

    return {k: torch.as_tensor(v, dtype=torch.bool if v.dtype == bool else torch.float32) for k, v in batch.items()}


def evaluate(model, batches: list[dict]) -> float:
    import torch

    model.eval()
    total, weight = 0.0, 0.0
    with torch.no_grad():
        for b in batches:
            tb = _to_torch(b)
            nll = bar_nll(model(tb["context"], tb["obs"], tb["mask"], tb["query"]), model.borders, tb["target"])
            final = tb["weight"][:, 0] > 0
            total += float(nll[:, 0][final].sum())
            weight += float(final.sum())
    model.train()
    return total / weight


def export(model, config: dict, out: Path, info: dict) -> None:
    from safetensors.numpy import save_file

    state = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    expected = expected_shapes(config)
    assert set(state) == set(expected), (sorted(set(state) ^ set(expected)))
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out), metadata={"format": FORMAT, "config": json.dumps(config), "training": json.dumps(info)})


def check_equivalence(model, n: int = 5, seed: int = 0) -> float:
    """Largest |logit difference| between the torch module and the numpy forward pass."""
    import torch

    from nasassist_plugins.curves.pfn import CurvePFN

    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    cfg = {k: model.config[k] for k in model.config}
    numpy_model = CurvePFN(state, cfg)
    rng = np.random.default_rng(seed)
    worst = 0.0
    model.eval()
    for _ in range(n):
        b = make_batch(rng, 1)
        k = int(b["mask"][0].sum())
        with torch.no_grad():
            tb = _to_torch(b)
            ref = model(tb["context"], tb["obs"][:, :k], tb["mask"][:, :k], tb["query"])[0].numpy()
        got = numpy_model.logits(b["context"][0], b["obs"][0, :k], b["query"][0])
        worst = max(worst, float(np.abs(ref - got).max()))
    model.train()
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6500)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--n-heads", type=int, default=4)
    ap.add_argument("--d-ff", type=int, default=128)
    ap.add_argument("--n-buckets", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=60.0,
                    help="stop (and export) after this much CPU time of this process (on a shared machine the wall "
                    "time is longer; both are recorded)")
    ap.add_argument("--work-dir", type=Path, default=Path("build/curve_pfn"))
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "weights" / "curve_pfn.safetensors")
    ap.add_argument("--check", action="store_true", help="only compare torch and numpy forward passes")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = {"d_model": args.d_model, "n_layers": args.n_layers, "n_heads": args.n_heads, "d_ff": args.d_ff,
              "n_buckets": args.n_buckets, "max_observed": MAX_OBSERVED}
    model = build_module(config)
    model.config = config
    if args.check:
        model.borders.copy_(torch.as_tensor(np.linspace(-5, 5, args.n_buckets + 1)))
        print(f"max |torch - numpy| logit difference: {check_equivalence(model):.2e}")
        return 0
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    warmup = max(1, args.steps // 25)

    def lr_at(step: int, minutes: float) -> float:
        """Warm-up, then cosine decay over the steps or the time budget, whichever runs out first."""
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = max((step - warmup) / max(1, args.steps - warmup), minutes / args.max_minutes)
        return args.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    args.work_dir.mkdir(parents=True, exist_ok=True)
    ckpt = args.work_dir / "checkpoint.pt"
    log_path = args.work_dir / "train_log.jsonl"
    step, elapsed = 0, 0.0
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=True)
        if state["config"] == json.dumps(config):  # --steps may change on resume: the schedule follows it
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
            print(f"resumed at step {step} ({elapsed / 60:.1f} CPU minutes trained)", flush=True)
    if step == 0:
        t0 = time.perf_counter()
        model.borders.copy_(torch.as_tensor(bucket_borders(args.n_buckets)))
        print(f"bucket borders from prior targets in {time.perf_counter() - t0:.1f}s", flush=True)
    eval_batches = [make_batch(np.random.default_rng(10_000 + i), 256) for i in range(4)]
    rng = np.random.default_rng(args.seed * 1_000_003 + step)
    start = time.process_time() - elapsed  # CPU time: the budget does not depend on the machine's other load
    wall_start = time.perf_counter()
    last_save = time.perf_counter()
    running = None
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters; {args.steps} steps of {args.batch_size} curves", flush=True)
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, (time.process_time() - start) / 60)
        b = _to_torch(make_batch(rng, args.batch_size, cap=int(rng.choice([6, 12, 24, MAX_OBSERVED]))))
        logits = model(b["context"], b["obs"], b["mask"], b["query"])
        nll = bar_nll(logits, model.borders, b["target"])
        loss = (nll * b["weight"]).sum() / b["weight"].sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        now, cpu = time.perf_counter(), time.process_time()
        if step % 250 == 0 or step == args.steps:
            rec = {"step": step, "cpu_minutes": round((cpu - start) / 60, 2),
                   "wall_minutes_this_session": round((now - wall_start) / 60, 2), "train_nll": round(running, 4),
                   "lr": round(lr_at(step, (cpu - start) / 60), 6)}
            if step % 1000 == 0 or step == args.steps:
                rec["heldout_final_nll"] = round(evaluate(model, eval_batches), 4)
            print(json.dumps(rec), flush=True)
            with log_path.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
        if now - last_save > 120 or step == args.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": cpu - start,
                        "config": json.dumps(config), "total_steps": args.steps}, ckpt)
            last_save = now
        if (cpu - start) / 60 > args.max_minutes:
            print(f"--max-minutes {args.max_minutes} reached at step {step}", flush=True)
            break
    minutes = (time.process_time() - start) / 60
    info = {"steps": step, "planned_steps": args.steps, "batch_size": args.batch_size, "cpu_minutes": round(minutes, 1),
            "wall_minutes_last_session": round((time.perf_counter() - wall_start) / 60, 1),
            "heldout_final_nll": round(evaluate(model, eval_batches), 4), "parameters": int(n_params),
            "torch": torch.__version__, "python": platform.python_version(), "threads": args.threads,
            "machine": f"{platform.machine()} {platform.system()}",
            "command": "python -m nasassist_plugins.curves.train_pfn "
            + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))}
    model.config = config
    info["max_abs_torch_numpy_logit_diff"] = check_equivalence(model)
    export(model, config, args.out, info)
    (args.out.with_suffix(".json")).write_text(json.dumps({"config": config, "training": info}, indent=1) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {json.dumps(info)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
