"""Tables and figures for layer relevance and embedding maps (rich + matplotlib, Agg).

* :func:`relevance_rich_table` / :func:`plot_relevance` — the terminal table (in the
  spirit of the thesis's annotated-layer listing) and a horizontal bar chart of a
  :class:`~nasassist_plugins.relevance.RelevanceTable`, optionally beside a
  data-driven :class:`~nasassist_plugins.relevance.SaliencyTable`; both sort and
  normalise layers one way (:data:`RELEVANCE_ORDER`);
* :func:`embedding_map` — 2-D maps (t-SNE and PCA) of predictor embeddings, shaded by
  rank-normalised accuracy and by GMM cluster (2 × 2 panels), with an optional search
  path drawn on top as a line of arrows.

Figures are written with matplotlib's non-interactive Agg backend, so they work on
headless machines and never open windows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nasassist_plugins.errors import ReportError
from nasassist_plugins.graph import ComputationalGraph

__all__ = [
    "RELEVANCE_ORDER",
    "EmbeddingMap",
    "ReportError",
    "embedding_map",
    "plot_relevance",
    "rank_normalise_per_label",
    "relevance_rich_table",
    "relevance_rows",
]

_BAR_WIDTH = 16
_POSITIVE = "#2a9d8f"
_NEGATIVE = "#e63946"
_DATA_DRIVEN = "#8d99ae"
_MAX_PATH_LABEL = 24  # longer step names (SPEC strings) are shown as their number only
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")



def _pyplot():
    """matplotlib.pyplot on the Agg backend (headless, no windows)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _checked_png(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ReportError(f"figures are written as PNG: the output must end in .png, got {out}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create the folder of {out}: {exc.strerror or exc}") from exc
    return out


def _save(fig: Any, out: Path, **kwargs: Any) -> None:
    """``fig.savefig`` with an unwritable path reported as a :class:`ReportError`."""
    try:
        fig.savefig(out, **kwargs)
    except OSError as exc:
        raise ReportError(f"cannot write {out}: {exc.strerror or exc}") from exc


# ----------------------------------------------------------------------------- relevance
#: How the relevance table and chart order and normalise layers (one way for both).
RELEVANCE_ORDER = (
    "share = predicted drop / sum of |predicted drop| over all layers (the table's share and the "
    "chart's bar; negative: masking raises the prediction); layers sorted by share, largest first, "
    "ties in graph order; # = the layer's position in graph order"
)


def relevance_rows(table: Any, top: int | None = None) -> list:
    """The rows the table and the chart show: the ``top`` layers with the largest
    ``|predicted drop|`` (all when ``None``), sorted by share, largest first, ties in
    graph order (see :data:`RELEVANCE_ORDER`)."""
    return sorted(table.top(top), key=lambda r: (-r.signed_weight, r.order))


def relevance_rich_table(table: Any, data_driven: Any = None, top: int | None = None):
    """A ``rich.table.Table`` of a relevance table (and a saliency table beside it).

    Rows are sorted as :func:`relevance_rows` says. Columns: position in graph order,
    module, ops, parameters, predicted drop, share (the drop over the sum of all
    absolute drops: the same number as the chart's bar), the data-driven share when
    given (saliency over the sum of all saliencies; "–" for modules without
    parameters), and a bar of the share (green ``█``: the layer helps; red ``░``:
    masking it raises the prediction; the glyphs differ so it reads without colour).
    """
    from rich.table import Table
    from rich.text import Text

    title = (
        f"Layer relevance of {table.graph_name}: baseline {table.baseline_mean:.4f} ± {table.baseline_std:.4f}"
        + (f" ({table.target_description})" if table.target_description else "")
    )
    rows = relevance_rows(table, top)
    shown = "" if len(rows) == len(table) else f"{len(rows)} of {len(table)} layers (largest |drop|); "
    caption = shown + "sorted by share, largest first; share = drop / Σ|drop|; # = position in graph order"
    out = Table(title=title, caption=caption)
    out.add_column("#", justify="right", style="dim")
    out.add_column("module")
    out.add_column("ops")
    out.add_column("params", justify="right")
    out.add_column("predicted drop", justify="right")
    out.add_column("share", justify="right")
    saliency = data_driven.weights if data_driven is not None else None
    if saliency is not None:
        out.add_column(f"{data_driven.method} share", justify="right")
    out.add_column("relevance", no_wrap=True)
    scale = max((abs(r.signed_weight) for r in table.rows), default=0.0) or 1.0
    for r in rows:
        cells: list[Any] = [
            str(r.order + 1),
            r.key,
            r.op_summary,
            f"{r.num_params:,}",
            f"{r.delta:+.4g}",
            f"{r.signed_weight:+.4f}",
        ]
        if saliency is not None:
            cells.append(f"{saliency[r.key]:.4f}" if r.key in saliency else "–")
        n = int(round(_BAR_WIDTH * abs(r.signed_weight) / scale))
        cells.append(Text("█" * n, style="green") if r.signed_weight >= 0 else Text("░" * n, style="red"))
        out.add_row(*cells)
    return out


def plot_relevance(
    table: Any,
    out: str | Path,
    data_driven: Any = None,
    top: int | None = None,
    title: str | None = None,
) -> Path:
    """Horizontal bar chart of per-layer relevance, in the table's order (largest share on top).

    Bars show each layer's share (predicted drop over the sum of all absolute drops;
    negative in red), the same number as the table's share column. With ``data_driven``,
    a second, grey bar per layer shows the module's saliency share (saliency over the sum
    of all saliencies), on the same "share of the total" scale.
    """
    out = _checked_png(out)
    rows = relevance_rows(table, top)
    if not rows:
        raise ReportError("the relevance table has no layers to plot")
    plt = _pyplot()
    labels = [f"#{r.order + 1} {r.key}  ({r.op_summary})" for r in rows]
    y = np.arange(len(rows))
    values = np.array([r.signed_weight for r in rows])
    colours = [_POSITIVE if v >= 0 else _NEGATIVE for v in values]
    height = max(3.0, 0.32 * len(rows) + 2.0)
    fig, ax = plt.subplots(figsize=(9, height))
    try:
        from matplotlib.patches import Patch

        handles = [Patch(color=_POSITIVE, label="predictor: masking lowers the score"),
                   Patch(color=_NEGATIVE, label="predictor: masking raises the score")]
        if data_driven is not None:
            saliency = data_driven.weights
            dd = np.array([saliency.get(r.key, 0.0) for r in rows])
            ax.barh(y - 0.2, values, height=0.4, color=colours)
            ax.barh(y + 0.2, dd, height=0.4, color=_DATA_DRIVEN)
            handles.append(Patch(color=_DATA_DRIVEN, label=f"data-driven ({data_driven.method} saliency)"))
        else:
            ax.barh(y, values, height=0.6, color=colours)
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("share: predicted drop when masked / Σ|drop|"
                      + ("; saliency / Σ saliency" if data_driven is not None else "")
                      + "  (sorted, largest first; # = graph order)")
        ax.set_title(
            title
            or f"Layer relevance of {table.graph_name} (baseline {table.baseline_mean:.3f} ± {table.baseline_std:.3f})",
            fontsize=10,
        )
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout(rect=(0, 0.45 / height, 1, 1))
        _save(fig, out, dpi=120, bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


# ----------------------------------------------------------------------------- embedding map
@dataclass
class EmbeddingMap:
    """What :func:`embedding_map` drew: 2-D coordinates, shading and the figure's path.

    ``tsne``/``pca`` are (n, 2) coordinates of the benchmark points, ``path_tsne``/
    ``path_pca`` (m, 2) those of the search path (m = 0 without one).
    """

    out: Path
    tsne: np.ndarray
    pca: np.ndarray
    scores: np.ndarray
    clusters: np.ndarray
    labels: list[str]
    path_tsne: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    path_pca: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    path_names: list[str] = field(default_factory=list)
    explained_variance: tuple[float, float] = (0.0, 0.0)


def rank_normalise_per_label(values: Sequence[float], labels: Sequence[str]) -> np.ndarray:
    """Rank-normalise values to [0, 1] within each label (task), so tasks with different
    metrics and scales share one colour scale (0: worst of its task, 1: best)."""
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(list(labels), dtype=object)
    out = np.full(len(values), 0.5)
    for label in dict.fromkeys(labels.tolist()):
        idx = np.flatnonzero(labels == label)
        if len(idx) > 1:
            out[idx] = (rankdata(values[idx]) - 1) / (len(idx) - 1)
    return out


def embedding_map(
    predictor: Any,
    graphs: Sequence[ComputationalGraph],
    values: Sequence[float],
    labels: Sequence[str] | str,
    out: str | Path,
    *,
    path_graphs: Sequence[ComputationalGraph] = (),
    path_names: Sequence[str] | None = None,
    seed: int = 0,
    title: str | None = None,
) -> EmbeddingMap:
    """Draw predictor embeddings of architectures as a 2 × 2 figure.

    Rows: t-SNE and PCA of the 512-d embeddings; columns: points shaded by accuracy
    (rank-normalised per label, see :func:`rank_normalise_per_label`) and by GMM
    cluster (argmax of the predictor's soft memberships). Each label (task/family) gets
    its own marker. ``path_graphs`` (a search trajectory) are embedded with the points
    and drawn in every panel as a black line with arrows from the first to the last.

    Args:
        predictor: a :class:`~nasassist_plugins.predictor.Predictor` (needs ``embed`` and
            a ``clusterer`` or ``cluster_memberships``).
        graphs, values: the architectures and their measured accuracy (larger is better).
        labels: one label per graph, or a single label for all.
        out: the PNG to write.
        path_graphs, path_names: the search path and a name per step.
        seed: seed of t-SNE.
        title: figure title.
    """
    out = _checked_png(out)
    graphs = list(graphs)
    path_graphs = list(path_graphs)
    labels = [labels] * len(graphs) if isinstance(labels, str) else [str(l) for l in labels]
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(graphs) < 2:
        raise ReportError(f"an embedding map needs at least 2 architectures, got {len(graphs)}")
    if len(values) != len(graphs) or len(labels) != len(graphs):
        raise ReportError(f"got {len(graphs)} graphs, {len(values)} values and {len(labels)} labels")
    names = list(path_names) if path_names is not None else [f"step {k}" for k in range(len(path_graphs))]
    if len(names) != len(path_graphs):
        raise ReportError(f"got {len(path_graphs)} path graphs but {len(names)} path names")
    z = np.asarray(predictor.embed(graphs + path_graphs), dtype=np.float64)
    clusters = _cluster_ids(predictor, z[: len(graphs)], graphs)
    pca, variance = _pca_2d(z)
    tsne = _tsne_2d(z, seed)
    n = len(graphs)
    result = EmbeddingMap(
        out=out,
        tsne=tsne[:n],
        pca=pca[:n],
        scores=rank_normalise_per_label(values, labels),
        clusters=clusters,
        labels=labels,
        path_tsne=tsne[n:],
        path_pca=pca[n:],
        path_names=names,
        explained_variance=variance,
    )
    _draw_embedding_map(result, title)
    return result


def _cluster_ids(predictor: Any, z: np.ndarray, graphs: Sequence[ComputationalGraph]) -> np.ndarray:
    """Argmax GMM membership of each embedding (re-embeds only without a clusterer)."""
    clusterer = getattr(predictor, "clusterer", None)
    if clusterer is not None and hasattr(clusterer, "memberships"):
        import torch

        with torch.no_grad():
            memberships = clusterer.memberships(torch.as_tensor(z, dtype=torch.float32)).numpy()
    else:
        memberships = np.asarray(predictor.cluster_memberships(graphs))
    return memberships.argmax(axis=1).astype(int)


def _pca_2d(z: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """First two principal components (zeros for a missing one) and their variance ratios."""
    from sklearn.decomposition import PCA

    k = min(2, z.shape[0], z.shape[1])
    pca = PCA(n_components=k, random_state=0)
    coords = pca.fit_transform(z)
    ratios = list(np.nan_to_num(pca.explained_variance_ratio_)) + [0.0] * (2 - k)
    if k < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - k))])
    return coords, (float(ratios[0]), float(ratios[1]))


def _tsne_2d(z: np.ndarray, seed: int) -> np.ndarray:
    """t-SNE of the embeddings (after PCA to at most 50 dimensions, as is customary).

    Perplexity is capped at a third of the points so small sets work; with fewer than
    4 points t-SNE is meaningless and the PCA coordinates are returned instead.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = z.shape[0]
    if n < 4:
        return _pca_2d(z)[0]
    reduced = PCA(n_components=min(50, n, z.shape[1]), random_state=seed).fit_transform(z) if z.shape[1] > 50 else z
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(reduced)


def _draw_embedding_map(result: EmbeddingMap, title: str | None) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(13, 11))
    try:
        unique_labels = list(dict.fromkeys(result.labels))
        panels = (
            ("t-SNE", result.tsne, result.path_tsne, ("t-SNE 1", "t-SNE 2")),
            (
                "PCA",
                result.pca,
                result.path_pca,
                (f"PC 1 ({100 * result.explained_variance[0]:.0f}% var.)",
                 f"PC 2 ({100 * result.explained_variance[1]:.0f}% var.)"),
            ),
        )
        for row, (method, coords, path, axis_labels) in enumerate(panels):
            scatter = _scatter_by_label(axes[row, 0], coords, result.scores, result.labels, unique_labels,
                                        cmap="viridis", vmin=0.0, vmax=1.0)
            fig.colorbar(scatter, ax=axes[row, 0], label="accuracy (rank-normalised per task)")
            axes[row, 0].set_title(f"{method}: shaded by accuracy")
            _scatter_clusters(axes[row, 1], coords, result.clusters, result.labels, unique_labels)
            single = len(set(result.clusters.tolist())) == 1
            axes[row, 1].set_title(f"{method}: shaded by GMM cluster (argmax membership)"
                                   + ("\nall points in one cluster (single-component or unfitted gate)" if single else ""))
            for ax in axes[row]:
                ax.set_xlabel(axis_labels[0])
                ax.set_ylabel(axis_labels[1])
                _draw_path(ax, path, result.path_names)
        if len(unique_labels) > 1:
            handles = [
                plt.Line2D([], [], marker=_MARKERS[k % len(_MARKERS)], linestyle="", color="grey", label=label)
                for k, label in enumerate(unique_labels)
            ]
            axes[0, 0].legend(handles=handles, loc="best", fontsize=8, title="task")
        fig.suptitle(title or f"Predictor embedding space ({len(result.labels)} architectures)", fontsize=13)
        fig.tight_layout()
        _save(fig, result.out, dpi=110)
    finally:
        plt.close(fig)


def _marker_size(n: int) -> float:
    """Marker area shrinking with the number of points (large for tens, small for thousands)."""
    return float(np.clip(3000.0 / max(n, 1), 5.0, 40.0))


def _scatter_by_label(ax, coords, colour_values, labels, unique_labels, **kwargs):
    """Scatter with one marker per label; returns the last collection (for a colour bar)."""
    labels = np.asarray(labels, dtype=object)
    size = _marker_size(len(labels))
    collection = None
    for k, label in enumerate(unique_labels):
        idx = labels == label
        collection = ax.scatter(coords[idx, 0], coords[idx, 1], c=colour_values[idx], s=size, alpha=0.8,
                                marker=_MARKERS[k % len(_MARKERS)], linewidths=0, **kwargs)
    return collection


def _scatter_clusters(ax, coords, clusters, labels, unique_labels) -> None:
    """Scatter coloured by cluster id (categorical colours) with a legend."""
    import matplotlib

    ids = sorted(set(int(c) for c in clusters))
    cmap = matplotlib.colormaps["tab10" if len(ids) <= 10 else "tab20"]
    colour_of = {c: cmap(k % cmap.N) for k, c in enumerate(ids)}
    labels = np.asarray(labels, dtype=object)
    size = _marker_size(len(labels))
    for k, label in enumerate(unique_labels):
        idx = labels == label
        colours = [colour_of[int(c)] for c in clusters[idx]]
        ax.scatter(coords[idx, 0], coords[idx, 1], c=colours, s=size, alpha=0.8,
                   marker=_MARKERS[k % len(_MARKERS)], linewidths=0)
    if len(ids) <= 20:
        import matplotlib.pyplot as plt

        handles = [plt.Line2D([], [], marker="o", linestyle="", color=colour_of[c], label=f"cluster {c}") for c in ids]
        ax.legend(handles=handles, loc="best", fontsize=7, ncol=2 if len(ids) > 8 else 1)


def _draw_path(ax, path: np.ndarray, names: Sequence[str]) -> None:
    """A search path: black line, an arrow per step, the start circled, the end starred."""
    if len(path) == 0:
        return
    ax.plot(path[:, 0], path[:, 1], color="black", linewidth=1.2, zorder=4)
    for (x0, y0), (x1, y1) in zip(path[:-1], path[1:]):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=5,
                    arrowprops=dict(arrowstyle="-|>", color="black", lw=1.5, shrinkA=4, shrinkB=4))
    ax.scatter(path[:1, 0], path[:1, 1], s=70, facecolors="white", edgecolors="black", linewidths=1.5, zorder=6)
    ax.scatter(path[-1:, 0], path[-1:, 1], s=160, marker="*", color="black", zorder=6)
    for k, ((x, y), name) in enumerate(zip(path, names)):
        short = len(names) <= 6 and len(name) <= _MAX_PATH_LABEL
        ax.annotate(f"{k}: {name}" if short else str(k), (x, y), xytext=(5, 5),
                    textcoords="offset points", fontsize=7, zorder=7,
                    bbox=dict(boxstyle="round,pad=0.15", facecolor="white", edgecolor="none", alpha=0.7))
