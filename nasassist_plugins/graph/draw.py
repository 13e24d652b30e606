"""Draw a :class:`ComputationalGraph` as a PNG with matplotlib (no graphviz binary needed).

Nodes are placed in layers by their longest distance from an input, so data flows
top to bottom; weighted nodes (conv, linear, norms) are filled, regular nodes are
outlined, and ops outside the shared vocabulary are drawn in red.
"""

from __future__ import annotations

from pathlib import Path

from nasassist_plugins.graph.computational_graph import ComputationalGraph

_WEIGHTED_COLOR = "#4C72B0"
_REGULAR_COLOR = "#DDDDDD"
_UNKNOWN_COLOR = "#D65F5F"


def layer_of_nodes(graph: ComputationalGraph) -> list[int]:
    """Longest-path depth of every node from the graph's sources."""
    depth = [0] * graph.num_nodes
    preds: dict[int, list[int]] = {}
    for s, t in graph.edges:
        preds.setdefault(t, []).append(s)
    for i in graph.topological_order():
        depth[i] = max((depth[p] + 1 for p in preds.get(i, [])), default=0)
    return depth


def draw_graph(graph: ComputationalGraph, path: str | Path, *, title: str | None = None, dpi: int = 110) -> Path:
    """Render ``graph`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    depth = layer_of_nodes(graph)
    layers: dict[int, list[int]] = {}
    for i, d in enumerate(depth):
        layers.setdefault(d, []).append(i)
    width = max(len(v) for v in layers.values()) if layers else 1
    pos: dict[int, tuple[float, float]] = {}
    for d, members in layers.items():
        for k, i in enumerate(members):
            pos[i] = ((k - (len(members) - 1) / 2) * 1.6, -float(d))
    fig_w = min(4 + 1.5 * width, 40)
    fig_h = min(2 + 0.55 * (max(depth, default=0) + 1), 300)
    fig, ax = plt.subplots(figsize=(fig_w, fig_h))
    for s, t in graph.edges:
        (x0, y0), (x1, y1) = pos[s], pos[t]
        ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                    arrowprops={"arrowstyle": "->", "color": "#666666", "lw": 0.7})
    for i, node in enumerate(graph.nodes):
        color = _UNKNOWN_COLOR if not node.known else (_WEIGHTED_COLOR if node.weighted else _REGULAR_COLOR)
        text_color = "white" if node.weighted or not node.known else "black"
        label = node.op_type
        kernel = node.attrs.get("kernel_size")
        if kernel:
            label += f" {'x'.join(str(k) for k in kernel)}"
        if node.attrs.get("out_channels"):
            label += f"\n{node.attrs['out_channels']}ch"
        x, y = pos[i]
        ax.text(x, y, label, ha="center", va="center", fontsize=7, color=text_color,
                bbox={"boxstyle": "round,pad=0.3", "fc": color, "ec": "#333333", "lw": 0.6})
    xs = [p[0] for p in pos.values()] or [0.0]
    ax.set_xlim(min(xs) - 1.2, max(xs) + 1.2)
    ax.set_ylim(-max(depth, default=0) - 0.8, 0.8)
    ax.axis("off")
    summary = graph.summary()
    ax.set_title(title or f"{graph.name}: {summary.num_nodes} nodes, {summary.num_parameters:,} params", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
