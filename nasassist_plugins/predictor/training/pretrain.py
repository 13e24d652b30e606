"""Unsupervised pre-training of the graph encoder (thesis section 2.1.2).

Loss = beta0 * soft-label contrastive loss + beta1 * reconstruction loss:

* **contrastive** — each graph is encoded twice under node-dropout augmentation; a
  projection head maps embeddings to a unit sphere; instead of one positive per anchor,
  every other graph in the batch is a soft positive, weighted by how close the two
  graphs' normalised-Laplacian spectra (first 21 eigenvalues) are. The temperature
  decays linearly from 0.35 to 0.05 over training;
* **reconstruction** — an MLP reconstructs each node's input embedding from the graph
  embedding (plus the node's depth); the loss is one minus their cosine similarity.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.data import Data

from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.encoder import EMBEDDING_DIM, GraphEncoder
from nasassist_plugins.predictor.features import UNKNOWN_OP_ID, collate

SPECTRUM_SIZE = 21


def laplacian_spectrum(graph: ComputationalGraph, k: int = SPECTRUM_SIZE) -> np.ndarray:
    """Smallest ``k`` eigenvalues of the normalised Laplacian of the undirected graph (padded with 1)."""
    n = graph.num_nodes
    a = np.zeros((n, n))
    for s, t in graph.edges:
        a[s, t] = a[t, s] = 1.0
    degree = a.sum(1)
    inv_sqrt = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0)
    laplacian = np.eye(n) - inv_sqrt[:, None] * a * inv_sqrt[None, :]
    values = np.linalg.eigvalsh(laplacian)[:k]
    return np.pad(values, (0, max(0, k - len(values))), constant_values=1.0).astype(np.float32)


def _drop_nodes(batch, rate: float, generator: torch.Generator):
    """Node-dropout augmentation: a random fraction of nodes lose their op and attributes."""
    out = batch.clone()
    mask = torch.rand(out.op.shape[0], generator=generator) < rate
    out.op = out.op.masked_fill(mask, UNKNOWN_OP_ID)
    out.attr = out.attr.masked_fill(mask.unsqueeze(1), 0)
    return out


class PretrainHeads(nn.Module):
    """Projection head (contrastive) and node-embedding decoder (reconstruction)."""

    def __init__(self, hidden_dim: int, projection_dim: int = 128) -> None:
        super().__init__()
        self.projection = nn.Sequential(nn.Linear(EMBEDDING_DIM, 256), nn.GELU(), nn.Linear(256, projection_dim))
        self.depth = nn.Linear(1, 64)
        self.decoder = nn.Sequential(nn.Linear(EMBEDDING_DIM + 64, 256), nn.GELU(), nn.Linear(256, hidden_dim))


def soft_contrastive_loss(projected: torch.Tensor, spectra: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss over 2B projected views with spectral soft labels.

    ``projected`` stacks view 1 then view 2 of B graphs; ``spectra`` (B, 21) gives the soft
    labels: alpha_il = softmax_l(-d(i, l) / s), with d the spectral distance (0 for the
    other view of the same graph) and s the batch's median distance.
    """
    n = projected.shape[0]
    b = n // 2
    x = F.normalize(projected, dim=1)
    logits = x @ x.t() / temperature
    eye = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(eye, -1e9)
    spec = torch.cat([spectra, spectra])
    dist = torch.cdist(spec, spec)
    scale = dist[dist > 0].median() if (dist > 0).any() else torch.tensor(1.0)
    soft = (-dist / (0.25 * scale + 1e-8)).masked_fill(eye, -1e9)
    alpha = torch.softmax(soft, dim=1)
    return -(alpha * torch.log_softmax(logits, dim=1)).sum(1).mean() / math.log(max(b, 2))


def pretrain_encoder(
    encoder: GraphEncoder,
    datas: Sequence[Data],
    *,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    betas: tuple[float, float] = (1.0, 0.5),
    temperatures: tuple[float, float] = (0.35, 0.05),
    node_dropout: float = 0.15,
    seed: int = 0,
    max_seconds: float | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Pre-train ``encoder`` in place on unlabelled graphs (each Data needs a ``spectrum``).

    Returns the per-epoch mean losses.
    """
    from tqdm.auto import tqdm

    if not datas:
        raise ValueError("pretrain_encoder needs at least one graph")
    generator = torch.Generator().manual_seed(seed)
    heads = PretrainHeads(encoder.hidden_dim)
    params = list(encoder.parameters()) + list(heads.parameters())
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(datas) / batch_size))
    total = epochs * steps_per_epoch
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    encoder.train()
    step = 0
    bar = tqdm(total=total, desc="pre-training encoder", disable=not progress)
    for _ in range(epochs):
        order = torch.randperm(len(datas), generator=generator).tolist()
        sums = {"contrastive": 0.0, "reconstruction": 0.0}
        for start in range(0, len(order), batch_size):
            chunk = [datas[i] for i in order[start : start + batch_size]]
            if len(chunk) < 2:
                continue
            batch = collate(chunk)
            tau = temperatures[0] + (temperatures[1] - temperatures[0]) * step / max(total - 1, 1)
            z1, _ = encoder.encode(_drop_nodes(batch, node_dropout, generator))
            z2, _ = encoder.encode(_drop_nodes(batch, node_dropout, generator))
            l_con = soft_contrastive_loss(heads.projection(torch.cat([z1, z2])), batch.spectrum, tau)
            target = encoder.nodes(batch.op, batch.attr, batch.depth).detach()
            decoded = heads.decoder(torch.cat([z1[batch.batch], heads.depth(batch.depth)], dim=1))
            l_rec = (1 - F.cosine_similarity(decoded, target, dim=1)).mean()
            loss = betas[0] * l_con + betas[1] * l_rec
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            optimizer.step()
            sums["contrastive"] += l_con.item()
            sums["reconstruction"] += l_rec.item()
            step += 1
            bar.update(1)
            bar.set_postfix(con=f"{l_con.item():.3f}", rec=f"{l_rec.item():.3f}", tau=f"{tau:.2f}")
            if max_seconds is not None and time.perf_counter() - started > max_seconds:
                break
        history.append({k: v / max(steps_per_epoch, 1) for k, v in sums.items()})
        if max_seconds is not None and time.perf_counter() - started > max_seconds:
            break
    bar.close()
    encoder.eval()
    return history
