"""Graph encoder: per-attribute node embeddings -> 6 GIN layers -> transformer readouts -> 512-d.

Layout follows the thesis (section 2.1.2): every node attribute has its own embedding
table; a stack of graph-isomorphism (GIN) layers propagates along the data flow; a
transformer layer with four heads relates distant nodes, and learned queries
cross-attend to the node states. Two 256-d readouts (pooled GIN states, and the
cross-attention summary) are concatenated into the 512-d graph embedding.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn as nn
from torch_geometric.nn import (
    GINConv,
    global_add_pool,
    global_max_pool,
    global_mean_pool,
)
from torch_geometric.utils import to_dense_batch, to_torch_csr_tensor

from nasassist_plugins.predictor.features import (
    ATTRIBUTE_SIZES,
    NUM_OP_IDS,
    UNKNOWN_OP_ID,
)
from nasassist_plugins.predictor.op_text import TEXT_EMBEDDING_DIM

EMBEDDING_DIM = 512
READOUT_DIM = EMBEDDING_DIM // 2


def _mlp(sizes: list[int], final_activation: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if k < len(sizes) - 2 or final_activation:
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


class NodeEmbedding(nn.Module):
    """Sum of one embedding per attribute, the op id, the op's text embedding and its depth.

    ``text_table`` holds one row per op id: the vocabulary, the generic unknown row, and
    rows appended later for unseen ops whose names were embedded. Ops with ids past the
    learned table share the unknown op's learned vector and differ by their text row.
    """

    def __init__(self, dim: int, text_table: torch.Tensor | None = None) -> None:
        super().__init__()
        if text_table is None:
            text_table = torch.zeros(NUM_OP_IDS, TEXT_EMBEDDING_DIM)
        self.op = nn.Embedding(NUM_OP_IDS, dim)
        self.register_buffer("text_table", text_table.float().clone())
        self.text = nn.Linear(TEXT_EMBEDDING_DIM, dim, bias=False)
        self.attributes = nn.ModuleList(nn.Embedding(n, dim) for n in ATTRIBUTE_SIZES.values())
        self.depth = nn.Linear(1, dim)
        self.norm = nn.LayerNorm(dim)

    def extend_text_table(self, rows: torch.Tensor) -> int:
        """Append text rows for new ops; return the id of the first new row."""
        first = self.text_table.shape[0]
        self.text_table = torch.cat([self.text_table, rows.to(self.text_table)], dim=0)
        return first

    def forward(self, op: torch.Tensor, attr: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        h = self.op(op.clamp(max=UNKNOWN_OP_ID)) + self.text(self.text_table)[op] + self.depth(depth)
        for k, table in enumerate(self.attributes):
            h = h + table(attr[:, k])
        return self.norm(h)


class GINLayer(nn.Module):
    """Direction-aware GIN layer with a residual connection and LayerNorm.

    Data-flow direction matters (a skip into an add differs from one out of it), so the
    GIN convolution aggregates a node's producers, and a separate linear map brings in
    what its consumers hold. Aggregation runs as sparse matrix products over CSR
    adjacencies, several times faster on CPU than edge-wise scatter.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = GINConv(_mlp([dim, dim, dim]), train_eps=True)
        self.consumers = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: torch.Tensor, adj_in: torch.Tensor, adj_out: torch.Tensor) -> torch.Tensor:
        update = self.conv(h, adj_in) + self.consumers(torch.sparse.mm(adj_out, h))
        return self.norm(h + torch.relu(update))


class GraphEncoder(nn.Module):
    """Computational graph batch -> 512-d embedding (see module docstring)."""

    def __init__(
        self,
        hidden_dim: int = 96,
        num_gin_layers: int = 6,
        num_heads: int = 4,
        num_queries: int = 4,
        text_table: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        self.hidden_dim = hidden_dim
        self.nodes = NodeEmbedding(hidden_dim, text_table)
        self.gin = nn.ModuleList(GINLayer(hidden_dim) for _ in range(num_gin_layers))
        self.transformer = nn.TransformerEncoderLayer(
            hidden_dim, num_heads, 2 * hidden_dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.queries = nn.Parameter(torch.randn(num_queries, hidden_dim) / math.sqrt(hidden_dim))
        self.cross_attention = nn.MultiheadAttention(hidden_dim, num_heads, batch_first=True)
        self.pooled_readout = _mlp([3 * hidden_dim * 2 + 1, 2 * READOUT_DIM, READOUT_DIM])
        self.attention_readout = _mlp([num_queries * hidden_dim, 2 * READOUT_DIM, READOUT_DIM])

    def node_states(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Input node embeddings and node states after the GIN stack."""
        h0 = self.nodes(batch.op, batch.attr, batch.depth)
        n = h0.shape[0]
        ones = torch.ones(batch.edge_index.shape[1], dtype=h0.dtype, device=h0.device)
        # rows = the node that aggregates: producers -> consumer (adj_in), consumers -> producer (adj_out)
        with warnings.catch_warnings():  # torch flags CSR support as beta on every construction
            warnings.simplefilter("ignore", UserWarning)
            adj_in = to_torch_csr_tensor(batch.edge_index.flip(0), ones, size=(n, n))
            adj_out = to_torch_csr_tensor(batch.edge_index, ones, size=(n, n))
        h = h0
        for layer in self.gin:
            h = layer(h, adj_in, adj_out)
        return h0, h

    def forward(self, batch) -> torch.Tensor:
        return self.encode(batch)[0]

    def encode(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(graph embeddings (B, 512), input node embeddings (N, hidden)) of a PyG batch."""
        h0, h = self.node_states(batch)
        index = batch.batch
        sizes = torch.bincount(index, minlength=int(batch.num_graphs)).float().unsqueeze(1)
        pooled = torch.cat(
            [
                global_mean_pool(h, index),
                global_max_pool(h, index),
                global_add_pool(h, index) / 64.0,
                global_mean_pool(h0, index),
                global_max_pool(h0, index),
                global_add_pool(h0, index) / 64.0,
                torch.log1p(sizes),
            ],
            dim=1,
        )
        dense, mask = to_dense_batch(h, index)
        dense = self.transformer(dense, src_key_padding_mask=~mask)
        queries = self.queries.unsqueeze(0).expand(dense.shape[0], -1, -1)
        attended, _ = self.cross_attention(queries, dense, dense, key_padding_mask=~mask, need_weights=False)
        embedding = torch.cat(
            [self.pooled_readout(pooled), self.attention_readout(attended.reshape(dense.shape[0], -1))], dim=1
        )
        return embedding, h0
