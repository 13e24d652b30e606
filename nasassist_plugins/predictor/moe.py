"""Mixture-of-experts regressor gated by the GMM soft clusters, with uncertainty.

Experts share a trunk and differ by their heads (weight sharing limits over-fitting,
which matters for zero-shot use). The gate is not learned: it is the GMM membership of
the embedding (thesis section 2.1.4). Embeddings far from every cluster are routed
through an attention path instead: the embedding attends over learned cluster
memories and a larger MLP predicts from the result; a novelty score from the GMM
blends the two paths. Several such regressors form an ensemble; the spread of the
ensemble plus the disagreement of the experts is the uncertainty the samplers need.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class MoEHead(nn.Module):
    """One ensemble member: shared trunk + K expert heads + attention path for novel inputs."""

    def __init__(self, in_dim: int, num_experts: int, hidden: int = 256, num_heads: int = 4) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, hidden), nn.GELU())
        self.experts = nn.Linear(hidden, num_experts)
        self.query = nn.Linear(in_dim, hidden)
        self.memories = nn.Parameter(torch.randn(num_experts, hidden) * 0.05)
        self.attention = nn.MultiheadAttention(hidden, num_heads, batch_first=True)
        self.far_mlp = nn.Sequential(nn.Linear(2 * hidden, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, 1))

    def forward(self, x: torch.Tensor, gates: torch.Tensor, novelty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction (B,), expert disagreement variance (B,))."""
        expert_out = self.experts(self.trunk(x))  # (B, K)
        near = (gates * expert_out).sum(1)
        disagreement = (gates * (expert_out - near.unsqueeze(1)).pow(2)).sum(1)
        q = self.query(x)  # (B, hidden)
        # Each query attends over the same K memories independently, so the B queries go in
        # as one sequence of length B: the memories' key/value projections are computed once,
        # not once per architecture.
        memories = self.memories.unsqueeze(0)
        attended, _ = self.attention(q.unsqueeze(0), memories, memories, need_weights=False)
        far = self.far_mlp(torch.cat([q, attended.squeeze(0)], dim=1)).squeeze(1)
        w = novelty.squeeze(1)
        return (1 - w) * near + w * far, disagreement

    def widen_inputs(self, extra: int) -> None:
        """Accept ``extra`` more input columns; their weights start at zero (outputs unchanged)."""
        self.trunk[0] = _widened(self.trunk[0], extra)
        self.query = _widened(self.query, extra)


def _widened(layer: nn.Linear, extra: int) -> nn.Linear:
    wider = nn.Linear(layer.in_features + extra, layer.out_features)
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[:, : layer.in_features] = layer.weight
        wider.bias.copy_(layer.bias)
    return wider


class MixtureOfExpertsRegressor(nn.Module):
    """Ensemble of :class:`MoEHead` members; ``forward`` returns (mean, std)."""

    def __init__(self, in_dim: int, num_experts: int, ensemble_size: int = 5, hidden: int = 256) -> None:
        super().__init__()
        self.members = nn.ModuleList(MoEHead(in_dim, num_experts, hidden) for _ in range(ensemble_size))

    def widen_inputs(self, extra: int) -> None:
        """Accept ``extra`` more input columns in every member (see :meth:`MoEHead.widen_inputs`)."""
        for member in self.members:
            member.widen_inputs(extra)

    def member_outputs(self, x: torch.Tensor, gates: torch.Tensor, novelty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stacked predictions (M, B) and disagreement variances (M, B) of all members."""
        preds, disagreements = zip(*(m(x, gates, novelty) for m in self.members))
        return torch.stack(preds), torch.stack(disagreements)

    def forward(self, x: torch.Tensor, gates: torch.Tensor, novelty: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        preds, disagreements = self.member_outputs(x, gates, novelty)
        mean = preds.mean(0)
        var = preds.var(0, unbiased=False) + disagreements.mean(0)
        return mean, var.clamp_min(1e-12).sqrt()
