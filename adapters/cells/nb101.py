"""NAS-Bench-101 cells as real PyTorch networks.

Reproduces the benchmark's network (Ying et al., 2019): a 3x3 conv-BN-ReLU stem with
128 channels, 3 stacks of 3 identical cells, a 2x2 max-pool and channel doubling before
stacks 2 and 3, global average pooling and a linear classifier.

Inside a cell, vertex widths follow the benchmark's rule: the cell's output width is split
as evenly as possible among the vertices that feed the output (their outputs are
concatenated), and every other vertex takes the largest width among its successors. A
vertex sums its inputs: other vertices' outputs (truncated to its width when wider) and,
when it reads the cell input, a 1x1 conv-BN-ReLU projection of that input. An
``input -> output`` edge adds a projection of the input to the concatenation.

Layers are ``nn.Conv2d`` without bias and ``nn.BatchNorm2d`` with affine parameters, so
the trainable parameter count matches the benchmark's ``trainable_parameters`` exactly.
(Only training hyper-parameters differ from the TensorFlow original: BatchNorm keeps
PyTorch's default momentum and epsilon.)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from nasassist_plugins.adapters.cells._layers import (
    ConvBNReLU,
    check_positive,
    edge_key,
    max_pool_3x3,
    sum_tensors,
)

__all__ = [
    "NB101_OPS",
    "NB101_MAX_EDGES",
    "NB101_MAX_VERTICES",
    "nb101_network",
    "random_nb101_spec",
    "validate_nb101_spec",
]

#: Operations allowed on interior vertices.
NB101_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
NB101_MAX_VERTICES = 7
NB101_MAX_EDGES = 9

_INPUT, _OUTPUT = "input", "output"
_KERNEL = {"conv3x3-bn-relu": 3, "conv1x1-bn-relu": 1}


# ---------------------------------------------------------------------------- specs
def _as_matrix(adjacency: Any) -> np.ndarray:
    """The adjacency as a square 0/1 integer array, or ``ValueError`` saying what is wrong."""
    try:
        matrix = np.asarray(adjacency)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"NB101 adjacency is not a rectangular matrix: {exc}") from exc
    if matrix.dtype == object or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"NB101 adjacency must be a square matrix, got shape {matrix.shape}")
    if matrix.size and not np.isin(matrix, (0, 1)).all():
        bad = sorted({repr(v) for v in matrix.ravel().tolist() if v not in (0, 1)})[:3]
        raise ValueError(f"NB101 adjacency entries must be 0 or 1, found {', '.join(bad)}")
    return matrix.astype(np.int64)


def _prune(matrix: np.ndarray, ops: list[str]) -> tuple[np.ndarray, list[str]] | None:
    """Drop vertices not on a path input -> output (as the benchmark's ``ModelSpec`` does).

    Returns ``None`` when the input does not reach the output at all.
    """
    n = matrix.shape[0]
    from_input = {0}
    frontier = [0]
    while frontier:
        v = frontier.pop()
        for w in np.flatnonzero(matrix[v]).tolist():
            if w not in from_input:
                from_input.add(w)
                frontier.append(w)
    to_output = {n - 1}
    frontier = [n - 1]
    while frontier:
        v = frontier.pop()
        for u in np.flatnonzero(matrix[:, v]).tolist():
            if u not in to_output:
                to_output.add(u)
                frontier.append(u)
    keep = sorted(from_input & to_output)
    if 0 not in keep or n - 1 not in keep:
        return None
    return matrix[np.ix_(keep, keep)], [ops[i] for i in keep]


def validate_nb101_spec(adjacency: Any, ops: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """Check an NB101 cell spec and return its pruned form.

    Checks: the adjacency is a square 0/1 matrix, strictly upper-triangular (edges go from
    a lower to a higher vertex index, so the cell is a DAG in topological order), with at
    most 7 vertices; ``ops`` has one name per vertex, starts with ``input``, ends with
    ``output``, and uses only :data:`NB101_OPS` in between. Vertices that do not lie on a
    path from input to output are then pruned, like the benchmark's ``ModelSpec``; the
    pruned cell must still connect input to output and have at most 9 edges.

    Returns:
        ``(adjacency, ops)`` of the pruned cell as plain lists.

    Raises:
        ValueError: naming the first problem found.
    """
    matrix = _as_matrix(adjacency)
    n = matrix.shape[0]
    if isinstance(ops, str) or not isinstance(ops, Sequence):
        raise ValueError(f"NB101 ops must be a list of op names, got {type(ops).__name__}")
    ops = list(ops)
    if len(ops) != n:
        raise ValueError(f"NB101 ops has {len(ops)} entries but the adjacency has {n} vertices")
    if n < 2:
        raise ValueError(f"NB101 cell has {n} vertices; it needs at least an input and an output vertex")
    if n > NB101_MAX_VERTICES:
        raise ValueError(f"NB101 cell has {n} vertices; NAS-Bench-101 allows at most {NB101_MAX_VERTICES}")
    lower = np.argwhere(np.tril(matrix) != 0)
    if len(lower):
        i, j = lower[0].tolist()
        raise ValueError(
            f"NB101 adjacency must be strictly upper-triangular (edges from lower to higher vertex index); "
            f"entry ({i}, {j}) is set"
        )
    if ops[0] != _INPUT:
        raise ValueError(f"NB101 first op must be 'input', got {ops[0]!r}")
    if ops[-1] != _OUTPUT:
        raise ValueError(f"NB101 last op must be 'output', got {ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in NB101_OPS:
            raise ValueError(f"NB101 vertex {v} has unknown op {op!r}; expected one of {list(NB101_OPS)}")
    pruned = _prune(matrix, ops)
    if pruned is None:
        raise ValueError("NB101 cell is invalid: no path connects the input vertex to the output vertex")
    matrix, ops = pruned
    num_edges = int(matrix.sum())
    if num_edges > NB101_MAX_EDGES:
        raise ValueError(
            f"NB101 cell has {num_edges} edges after pruning; NAS-Bench-101 allows at most {NB101_MAX_EDGES}"
        )
    return matrix.tolist(), ops


def random_nb101_spec(rng) -> tuple[list[list[int]], list[str]]:
    """A random valid NB101 cell, drawn like the benchmark's own sampler.

    Draws a 7x7 strictly upper-triangular matrix with independent fair-coin edges and a
    uniform op per interior vertex, prunes it, and retries until the pruned cell is valid
    (connected, at most 9 edges).

    Args:
        rng: a ``numpy.random.Generator``.

    Returns:
        ``(adjacency, ops)`` of the pruned cell.
    """
    n = NB101_MAX_VERTICES
    while True:
        matrix = np.triu(rng.integers(0, 2, size=(n, n)), k=1)
        picks = rng.integers(0, len(NB101_OPS), size=n - 2)
        ops = [_INPUT] + [NB101_OPS[int(p)] for p in picks] + [_OUTPUT]
        try:
            return validate_nb101_spec(matrix, ops)
        except ValueError:
            continue


# ---------------------------------------------------------------------------- widths
def _vertex_channels(matrix: np.ndarray, in_channels: int, out_channels: int) -> list[int]:
    """Width of every vertex, by the benchmark's rule (see the module docstring)."""
    n = matrix.shape[0]
    channels = [0] * n
    channels[0], channels[-1] = in_channels, out_channels
    if n == 2:
        return channels
    feeds_output = [v for v in range(1, n - 1) if matrix[v, n - 1]]
    share, extra = divmod(out_channels, len(feeds_output))
    if share == 0:
        raise ValueError(
            f"NB101 cell output width {out_channels} is smaller than the {len(feeds_output)} vertices "
            "whose outputs are concatenated"
        )
    for rank, v in enumerate(feeds_output):
        channels[v] = share + (1 if rank < extra else 0)
    # Walk backwards so every successor's width is known before its predecessors'.
    for v in range(n - 3, 0, -1):
        if not matrix[v, n - 1]:
            channels[v] = max((channels[w] for w in range(v + 1, n - 1) if matrix[v, w]), default=0)
        if channels[v] <= 0:
            raise ValueError(f"NB101 vertex {v} gets no channels: it is not connected to the output")
    return channels


def _cell_plan(
    matrix: np.ndarray, ops: Sequence[str], in_channels: int, out_channels: int
) -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int, int]], list[int]]:
    """What one cell instantiates: the single source of truth for building and counting.

    Returns:
        ``(projections, vertex_convs, widths)``: projections of the cell input, keyed
        ``"<vertex><-0"``, and the conv ops of vertices, keyed by vertex index, each as
        ``(in_channels, out_channels, kernel_size)`` of a conv-BN-ReLU; and the widths.
    """
    n = matrix.shape[0]
    widths = _vertex_channels(matrix, in_channels, out_channels)
    projections: dict[str, tuple[int, int, int]] = {}
    vertex_convs: dict[str, tuple[int, int, int]] = {}
    for t in range(1, n):
        if matrix[0, t]:
            projections[edge_key(t, 0)] = (in_channels, widths[t], 1)
        if t < n - 1 and ops[t] in _KERNEL:
            vertex_convs[str(t)] = (widths[t], widths[t], _KERNEL[ops[t]])
    return projections, vertex_convs, widths


def _stack_widths(stem_channels: int, num_stacks: int, modules_per_stack: int) -> list[list[tuple[int, int]]]:
    """``(in_channels, out_channels)`` of every cell, per stack: each later stack doubles the width."""
    stacks = []
    channels = stem_channels
    for stack in range(num_stacks):
        c_in = channels
        if stack > 0:
            channels *= 2
        cells = []
        for _ in range(modules_per_stack):
            cells.append((c_in, channels))
            c_in = channels
        stacks.append(cells)
    return stacks


def _conv_bn_relu_params(cin: int, cout: int, k: int) -> int:
    """Trainable parameters of one conv-BN-ReLU (bias-free conv, affine BN)."""
    return k * k * cin * cout + 2 * cout


def _nb101_param_count(
    adjacency: Any,
    ops: Sequence[str],
    *,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    modules_per_stack: int = 3,
    in_channels: int = 3,
) -> int:
    """Trainable parameters of :func:`nb101_network` with the same arguments, without building it.

    Uses the same :func:`_cell_plan` as the builder, so it is exact by construction; the
    tests check it against the benchmark's ``trainable_parameters`` column.
    """
    check_positive(
        num_classes=num_classes,
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        modules_per_stack=modules_per_stack,
        in_channels=in_channels,
    )
    matrix_list, ops = validate_nb101_spec(adjacency, ops)
    matrix = np.asarray(matrix_list, dtype=np.int64)
    total = _conv_bn_relu_params(in_channels, stem_channels, 3)
    stacks = _stack_widths(stem_channels, num_stacks, modules_per_stack)
    for cells in stacks:
        for cell_in, cell_out in cells:
            projections, vertex_convs, _ = _cell_plan(matrix, ops, cell_in, cell_out)
            total += sum(_conv_bn_relu_params(*spec) for spec in projections.values())
            total += sum(_conv_bn_relu_params(*spec) for spec in vertex_convs.values())
    channels = stacks[-1][-1][1]
    return total + channels * num_classes + num_classes


# ---------------------------------------------------------------------------- modules
class NB101Cell(nn.Module):
    """One NAS-Bench-101 cell ("module") with fixed widths.

    Children: ``proj`` (1x1 conv-BN-ReLU projections of the cell input, keyed
    ``"<vertex><-0"``) and ``vertices`` (the op of each interior vertex, keyed by its index).
    """

    def __init__(self, matrix: np.ndarray, ops: Sequence[str], in_channels: int, out_channels: int) -> None:
        super().__init__()
        n = matrix.shape[0]
        projections, vertex_convs, widths = _cell_plan(matrix, ops, in_channels, out_channels)
        self.proj = nn.ModuleDict({key: ConvBNReLU(*spec) for key, spec in projections.items()})
        self.vertices = nn.ModuleDict()
        for t in range(1, n - 1):
            key = str(t)
            self.vertices[key] = ConvBNReLU(*vertex_convs[key]) if key in vertex_convs else max_pool_3x3()
        # Static forward plan: for each interior vertex, (vertex key, [(src, width or None)], proj key or None).
        self._plan: list[tuple[str, list[tuple[int, int | None]], str | None]] = []
        for t in range(1, n - 1):
            sources = [
                (s, widths[t] if widths[s] > widths[t] else None) for s in range(1, t) if matrix[s, t]
            ]
            proj = edge_key(t, 0) if matrix[0, t] else None
            self._plan.append((str(t), sources, proj))
        self._concat = [t for t in range(1, n - 1) if matrix[t, n - 1]]
        self._output_proj = edge_key(n - 1, 0) if matrix[0, n - 1] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states: list[torch.Tensor] = [x]
        for key, sources, proj in self._plan:
            inputs = [states[s] if width is None else states[s][:, :width] for s, width in sources]
            if proj is not None:
                inputs.append(self.proj[proj](x))
            states.append(self.vertices[key](sum_tensors(inputs)))
        if not self._concat:  # only the input -> output edge is left
            return self.proj[self._output_proj](x)
        parts = [states[t] for t in self._concat]
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self._output_proj is not None:
            out = out + self.proj[self._output_proj](x)
        return out


class NB101Stack(nn.Module):
    """Optional 2x2 max-pool ``downsample`` followed by the stack's ``cells``."""

    def __init__(self, cells: list[NB101Cell], downsample: bool) -> None:
        super().__init__()
        self.downsample = nn.MaxPool2d(2, stride=2, ceil_mode=True) if downsample else None
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for cell in self.cells:
            x = cell(x)
        return x


class NB101Network(nn.Module):
    """The NAS-Bench-101 macro skeleton around one repeated cell (see :func:`nb101_network`)."""

    def __init__(
        self,
        matrix: np.ndarray,
        ops: list[str],
        num_classes: int,
        stem_channels: int,
        num_stacks: int,
        modules_per_stack: int,
        in_channels: int,
    ) -> None:
        super().__init__()
        self.adjacency = matrix.tolist()
        self.ops = list(ops)
        self.stem = ConvBNReLU(in_channels, stem_channels, 3)
        self.stacks = nn.ModuleList()
        stacks = _stack_widths(stem_channels, num_stacks, modules_per_stack)
        for index, cells in enumerate(stacks):
            built = [NB101Cell(matrix, ops, cell_in, cell_out) for cell_in, cell_out in cells]
            # Every stack after the first halves the resolution (its width doubles).
            self.stacks.append(NB101Stack(built, downsample=index > 0))
        channels = stacks[-1][-1][1]
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stack in self.stacks:
            x = stack(x)
        return self.classifier(torch.flatten(self.global_pool(x), 1))


def nb101_network(
    adjacency: Any,
    ops: Sequence[str],
    *,
    num_classes: int = 10,
    stem_channels: int = 128,
    num_stacks: int = 3,
    modules_per_stack: int = 3,
    in_channels: int = 3,
) -> nn.Module:
    """Build the NAS-Bench-101 network of a cell spec.

    Args:
        adjacency: upper-triangular 0/1 matrix (nested lists or numpy array); entry
            ``[i][j]`` is the edge ``i -> j``. Unpruned specs are pruned first.
        ops: one name per vertex: ``input``, then ``conv3x3-bn-relu`` /
            ``conv1x1-bn-relu`` / ``maxpool3x3``, then ``output``.
        num_classes: classifier outputs.
        stem_channels: width of the stem and the first stack (128 in the benchmark).
        num_stacks: number of stacks; every stack after the first halves the resolution
            and doubles the width.
        modules_per_stack: cells per stack.
        in_channels: image channels read by the stem.

    Raises:
        ValueError: for an invalid spec (see :func:`validate_nb101_spec`) or bad sizes.
    """
    matrix_list, ops = validate_nb101_spec(adjacency, ops)
    check_positive(
        num_classes=num_classes,
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        modules_per_stack=modules_per_stack,
        in_channels=in_channels,
    )
    matrix = np.asarray(matrix_list, dtype=np.int64)
    return NB101Network(matrix, ops, num_classes, stem_channels, num_stacks, modules_per_stack, in_channels)
