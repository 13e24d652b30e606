"""Draw a :class:`ComputationalGraph` as a PNG that shows its skips, branches and downsampling.

Two engines give the same picture language:

* ``"dot"`` — graphviz's layered layout (Debian package ``graphviz``), used when the
  ``dot`` program is on ``PATH``;
* ``"matplotlib"`` — a layered layout of our own (no binary needed): nodes sit in layers
  by their longest distance from an input; an edge that spans several layers gets a
  waypoint in each layer it crosses, so a residual or skip edge runs in its own lane
  beside the branch it bypasses instead of behind it; the order inside each layer is
  chosen by barycentre sweeps to keep crossings few.

Weighted nodes (conv, linear, norms) are filled blue, regular nodes grey, ops outside the
shared vocabulary red. A node that downsamples (a stride above 1, or an output smaller in
space than its input) gets a thick orange border and a ``↓2`` (or ``↓`` ×factor) mark;
edges that skip layers are drawn in orange.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path
from typing import Iterable

from nasassist_plugins.errors import GraphError
from nasassist_plugins.graph.computational_graph import ComputationalGraph, Node

logger = logging.getLogger(__name__)

__all__ = ["ENGINES", "downsampling_factor", "draw_graph", "graphviz_available", "layer_of_nodes", "to_dot"]

#: Accepted values of ``draw_graph(engine=...)``.
ENGINES = ("auto", "dot", "matplotlib")

_WEIGHTED_COLOR = "#4C72B0"
_REGULAR_COLOR = "#DDDDDD"
_UNKNOWN_COLOR = "#D65F5F"
_DOWNSAMPLE_COLOR = "#E07B00"
_EDGE_COLOR = "#555555"
_SKIP_COLOR = "#E07B00"
_SWEEPS = 8
_DOT_TIMEOUT_S = 120
_DOT_KEY = "blue: weighted op, grey: parameter-free op\norange border: downsampling (↓ factor), orange edge: skips layers"


def layer_of_nodes(graph: ComputationalGraph) -> list[int]:
    """Longest-path depth of every node from the graph's sources."""
    depth = [0] * graph.num_nodes
    preds: dict[int, list[int]] = {}
    for s, t in graph.edges:
        preds.setdefault(t, []).append(s)
    for i in graph.topological_order():
        depth[i] = max((depth[p] + 1 for p in preds.get(i, [])), default=0)
    return depth


def downsampling_factor(graph: ComputationalGraph, index: int) -> int:
    """How many times node ``index`` shrinks the spatial size of its input (1: it does not).

    Read from the node's ``stride`` attribute when above 1, otherwise from its output
    shape against its first predecessor's (spatial dimensions: all after batch and
    channels). Only a consistent whole-number shrink counts.
    """
    node = graph.nodes[index]
    stride = node.attrs.get("stride")
    strides = [int(s) for s in (stride if isinstance(stride, (tuple, list)) else [stride]) if isinstance(s, int)]
    if strides and max(strides) > 1:
        return max(strides)
    out_shape = node.attrs.get("output_shape")
    preds = graph.predecessors(index)
    if not preds or not _is_shape(out_shape):
        return 1
    in_shape = graph.nodes[preds[0]].attrs.get("output_shape")
    if not _is_shape(in_shape) or len(in_shape) != len(out_shape) or len(out_shape) < 3:
        return 1
    ratios = {a // b for a, b in zip(in_shape[2:], out_shape[2:]) if b and a > b and a % b == 0}
    shrinks = [a > b for a, b in zip(in_shape[2:], out_shape[2:])]
    return ratios.pop() if len(ratios) == 1 and all(shrinks) else 1


def graphviz_available() -> bool:
    """Whether graphviz's ``dot`` program is on ``PATH``."""
    return shutil.which("dot") is not None


def draw_graph(
    graph: ComputationalGraph,
    path: str | Path,
    *,
    title: str | None = None,
    dpi: int = 110,
    engine: str = "auto",
) -> Path:
    """Render ``graph`` to ``path`` (PNG) and return the path.

    Args:
        graph: the graph to draw.
        path: the PNG to write (its folder is created).
        title: the figure's title (default: the graph's name, node and parameter counts).
        dpi: resolution (default 110).
        engine: ``"auto"`` (default: graphviz ``dot`` when installed, else matplotlib),
            ``"dot"`` (graphviz; an error when it is missing) or ``"matplotlib"``.

    Example:
        >>> from nasassist_plugins.graph import ComputationalGraph
        >>> g = ComputationalGraph(name="tiny")
        >>> a, b = g.add_node("input"), g.add_node("relu")
        >>> g.add_edge(a, b)
        >>> draw_graph(g, "tiny.png", engine="matplotlib")  # doctest: +SKIP
        PosixPath('tiny.png')
    """
    if engine not in ENGINES:
        raise GraphError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if graph.num_nodes == 0:
        raise GraphError("cannot draw an empty graph")
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise GraphError(f"graph drawings are PNG files: the path must end in .png, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    title = title or _default_title(graph)
    if engine == "dot" or (engine == "auto" and graphviz_available()):
        try:
            return _draw_with_dot(graph, out, title, dpi)
        except GraphError as exc:
            if engine == "dot":
                raise
            logger.warning("graphviz could not draw %s (%s); using the matplotlib layout", graph.name, exc)
    return _draw_with_matplotlib(graph, out, title, dpi)


# ----------------------------------------------------------------------------- labels
def _is_shape(value: object) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value)


def _default_title(graph: ComputationalGraph) -> str:
    summary = graph.summary()
    return f"{graph.name}: {summary.num_nodes} nodes, {summary.num_parameters:,} params"


def _label(node: Node, factor: int) -> str:
    label = node.op_type
    kernel = node.attrs.get("kernel_size")
    if kernel:
        label += f" {'x'.join(str(k) for k in kernel)}" if isinstance(kernel, (tuple, list)) else f" {kernel}"
    if factor > 1:
        label += f" ↓{factor}"
    if node.attrs.get("out_channels"):
        label += f"\n{node.attrs['out_channels']}ch"
    return label


def _colours(node: Node) -> tuple[str, str]:
    """(fill, text) colours of a node."""
    if not node.known:
        return _UNKNOWN_COLOR, "white"
    if node.weighted:
        return _WEIGHTED_COLOR, "white"
    return _REGULAR_COLOR, "black"


def _legend_entries(has_downsampling: bool, has_skips: bool) -> list[tuple[str, str, str]]:
    """(kind, colour, text) of each legend entry the picture needs."""
    entries = [("box", _WEIGHTED_COLOR, "weighted op"), ("box", _REGULAR_COLOR, "parameter-free op")]
    if has_downsampling:
        entries.append(("border", _DOWNSAMPLE_COLOR, "downsampling (↓ factor)"))
    if has_skips:
        entries.append(("edge", _SKIP_COLOR, "edge skipping layers"))
    return entries


# ----------------------------------------------------------------------------- graphviz
def to_dot(graph: ComputationalGraph, *, title: str | None = None) -> str:
    """The graph in graphviz's DOT language, styled like the PNG drawings."""
    depth = layer_of_nodes(graph)
    lines = [
        "digraph G {",
        "  rankdir=TB; nodesep=0.25; ranksep=0.3; labelloc=t; fontname=Helvetica; fontsize=14;",
        f"  label={_dot_quote((title or _default_title(graph)) + chr(10) + _DOT_KEY)};",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10, penwidth=0.8, color="#333333"];',
        f'  edge [color="{_EDGE_COLOR}", arrowsize=0.6, penwidth=0.8];',
    ]
    for i, node in enumerate(graph.nodes):
        factor = downsampling_factor(graph, i)
        fill, text = _colours(node)
        extra = f', color="{_DOWNSAMPLE_COLOR}", penwidth=3' if factor > 1 else ""
        lines.append(f'  n{i} [label={_dot_quote(_label(node, factor))}, fillcolor="{fill}", fontcolor="{text}"{extra}];')
    for s, t in graph.edges:
        skip = depth[t] - depth[s] > 1
        lines.append(f"  n{s} -> n{t}" + (f' [color="{_SKIP_COLOR}", penwidth=1.4]' if skip else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _draw_with_dot(graph: ComputationalGraph, out: Path, title: str, dpi: int) -> Path:
    dot = shutil.which("dot")
    if dot is None:
        raise GraphError("graphviz's `dot` is not installed (Debian: apt-get install graphviz)")
    try:
        result = subprocess.run(
            [dot, "-Tpng", f"-Gdpi={int(dpi)}", "-o", str(out)],
            input=to_dot(graph, title=title).encode(),
            capture_output=True,
            timeout=_DOT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise GraphError(f"graphviz took more than {_DOT_TIMEOUT_S} s") from exc
    if result.returncode != 0 or not out.is_file():
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise GraphError(f"graphviz failed: {message[-1] if message else f'exit status {result.returncode}'}")
    return out


# ----------------------------------------------------------------------------- matplotlib
def _layered_layout(graph: ComputationalGraph) -> tuple[dict[int, tuple[float, float]], list[list[int]]]:
    """Positions of real nodes (ids ``0..n-1``) and waypoints (ids ``>= n``), and each
    edge's path through them. Layers go top (0) to bottom; x is a slot coordinate."""
    n = graph.num_nodes
    depth = layer_of_nodes(graph)
    layer: dict[int, int] = dict(enumerate(depth))
    paths: list[list[int]] = []
    up: dict[int, list[int]] = {}
    down: dict[int, list[int]] = {}
    next_id = n
    for s, t in graph.edges:
        chain = [s]
        for d in range(depth[s] + 1, depth[t]):
            layer[next_id] = d
            chain.append(next_id)
            next_id += 1
        chain.append(t)
        paths.append(chain)
        for a, b in zip(chain, chain[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    layers: list[list[int]] = [[] for _ in range(max(depth) + 1)]
    for v in sorted(layer):  # graph order first: a stable start for the sweeps
        layers[layer[v]].append(v)
    _order_by_barycentre(layers, up, down)
    x = _place(layers, up, down)
    pos = {v: (x[v], -float(layer[v])) for v in layer}
    return pos, paths


def _order_by_barycentre(layers: list[list[int]], up: dict[int, list[int]], down: dict[int, list[int]]) -> None:
    """Reorder each layer by the mean slot of its neighbours (alternating down/up sweeps)."""
    for sweep in range(_SWEEPS):
        rows: Iterable[int] = range(1, len(layers)) if sweep % 2 == 0 else range(len(layers) - 2, -1, -1)
        neighbours = up if sweep % 2 == 0 else down
        for d in rows:
            ref = layers[d - 1] if sweep % 2 == 0 else layers[d + 1]
            slot = {v: k for k, v in enumerate(ref)}
            keyed = []
            for k, v in enumerate(layers[d]):
                near = [slot[u] for u in neighbours.get(v, []) if u in slot]
                keyed.append((sum(near) / len(near) if near else float(k), k, v))
            layers[d] = [v for _, _, v in sorted(keyed)]


def _place(layers: list[list[int]], up: dict[int, list[int]], down: dict[int, list[int]]) -> dict[int, float]:
    """x of each vertex: neighbours' mean, kept in layer order at least one slot apart."""
    x = {v: k - (len(row) - 1) / 2 for row in layers for k, v in enumerate(row)}
    for sweep in range(_SWEEPS):
        rows = range(len(layers)) if sweep % 2 == 0 else range(len(layers) - 1, -1, -1)
        for d in rows:
            row = layers[d]
            wanted = []
            for v in row:
                near = [x[u] for u in up.get(v, []) + down.get(v, [])]
                wanted.append(sum(near) / len(near) if near else x[v])
            placed = _separate(wanted)
            for v, value in zip(row, placed):
                x[v] = value
    shift = min(x.values())
    return {v: value - shift for v, value in x.items()}


def _separate(wanted: list[float], gap: float = 1.0) -> list[float]:
    """Positions as close to ``wanted`` as the order and a minimum ``gap`` allow."""
    placed = list(wanted)
    for k in range(1, len(placed)):
        placed[k] = max(placed[k], placed[k - 1] + gap)
    # centre the block on the wanted positions so it does not drift right
    offset = (sum(wanted) - sum(placed)) / len(placed) if placed else 0.0
    return [p + offset for p in placed]


def _draw_with_matplotlib(graph: ComputationalGraph, out: Path, title: str, dpi: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, Patch

    pos, paths = _layered_layout(graph)
    n = graph.num_nodes
    depth = layer_of_nodes(graph)
    xs = [p[0] for p in pos.values()]
    width = max(xs) - min(xs) + 1
    height = max(depth) + 1
    x_unit, y_unit = 1.7, 0.62
    fig_w = min(max(4.5, 1.0 + x_unit * width), 60.0)
    fig_h = min(1.6 + y_unit * height, 400.0)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    factors = [downsampling_factor(graph, i) for i in range(n)]
    has_skip = False
    try:
        for chain in paths:
            skip = len(chain) > 2
            has_skip |= skip
            colour, lw = (_SKIP_COLOR, 1.2) if skip else (_EDGE_COLOR, 0.8)
            pts = [pos[v] for v in chain]
            if len(pts) > 2:  # through the waypoints, the last leg drawn as the arrow
                ax.plot([p[0] for p in pts[:-1]], [p[1] for p in pts[:-1]], color=colour, lw=lw, zorder=1,
                        solid_capstyle="round")
            (x0, y0), (x1, y1) = pts[-2], pts[-1]
            ax.add_patch(FancyArrowPatch((x0, y0 - (0.2 if chain[-2] < n else 0.0)), (x1, y1 + 0.22),
                                         arrowstyle="-|>", mutation_scale=9, color=colour, lw=lw, zorder=1))
        for i, node in enumerate(graph.nodes):
            fill, text = _colours(node)
            edge, lw = (_DOWNSAMPLE_COLOR, 2.6) if factors[i] > 1 else ("#333333", 0.6)
            x, y = pos[i]
            ax.text(x, y, _label(node, factors[i]), ha="center", va="center", fontsize=7, color=text, zorder=3,
                    bbox={"boxstyle": "round,pad=0.3", "fc": fill, "ec": edge, "lw": lw})
        ax.set_xlim(min(xs) - 0.9, max(xs) + 0.9)
        ax.set_ylim(-max(depth) - 0.7, 0.7)
        ax.axis("off")
        handles = []
        for kind, colour, text in _legend_entries(any(f > 1 for f in factors), has_skip):
            if kind == "box":
                handles.append(Patch(facecolor=colour, edgecolor="#333333", label=text))
            elif kind == "border":
                handles.append(Patch(facecolor="white", edgecolor=colour, linewidth=2.6, label=text))
            else:
                handles.append(Line2D([], [], color=colour, lw=1.4, label=text))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7, frameon=False)
        ax.set_title(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(out, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out
