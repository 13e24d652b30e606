"""Reports and the ``relevance``, ``score`` and ``embed`` commands (untrained predictor)."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from nasassist_plugins.cli import main
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor import Predictor
from nasassist_plugins.relevance import layer_relevance
from nasassist_plugins.relevance.report import (
    ReportError,
    embedding_map,
    plot_relevance,
    rank_normalise_per_label,
    relevance_rows,
)

MODEL_FILE = textwrap.dedent(
    """
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
            self.relu = nn.ReLU()
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            y = y + self.relu(self.conv2(y))
            return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))

    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            raise RuntimeError("this forward always fails")
    """
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A model file and an untrained predictor's weights (never the default weights)."""
    root = tmp_path_factory.mktemp("reports")
    (root / "net.py").write_text(MODEL_FILE)
    Predictor(hidden_dim=32, ensemble_size=2).save(root / "weights.safetensors")
    return root


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_relevance_command_prints_table_and_writes_png_and_json(workdir, tmp_path, capsys, png_content):
    out_dir = tmp_path / "report"
    png, out_json = out_dir / "relevance.png", out_dir / "relevance.json"
    rc, out, err = _run(
        ["relevance", f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16",
         "--weights", str(workdir / "weights.safetensors"), "--data-driven", "synflow", "--out-dir", str(out_dir)],
        capsys,
    )
    assert rc == 0, err
    assert "Layer relevance of Net" in out and "conv2" in out and "synflow share" in out
    assert "sorted by share, largest first" in out
    png_content(png, min_width=400, min_height=200)
    data = json.loads(out_json.read_text())
    keys = [layer["key"] for layer in data["layers"]]
    assert {"conv1", "bn1", "relu", "conv2", "fc"} <= set(keys)
    weights = [layer["weight"] for layer in data["layers"]]
    assert all(w >= 0 for w in weights)
    if any(layer["delta"] > 0 for layer in data["layers"]):
        assert sum(weights) == pytest.approx(1.0)
    assert {m["key"] for m in data["data_driven"]["modules"]} == {"conv1", "bn1", "conv2", "fc"}
    # the table is sorted by share (the chart's signed share), largest first, and prints that share
    printed = [line.split("│") for line in out.splitlines() if line.count("│") >= 8]
    printed_keys = [cells[2].strip() for cells in printed if cells[2].strip() in set(keys)]
    by_share = sorted(data["layers"], key=lambda layer: (-layer["signed_weight"], keys.index(layer["key"])))
    assert printed_keys == [layer["key"] for layer in by_share]
    shares = {cells[2].strip(): float(cells[6]) for cells in printed if cells[2].strip() in set(keys)}
    for layer in data["layers"]:
        assert shares[layer["key"]] == pytest.approx(layer["signed_weight"], abs=1e-4)


def test_relevance_command_writes_nothing_unasked(workdir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(["relevance", f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16",
                         "--weights", str(workdir / "weights.safetensors")], capsys)
    assert rc == 0, err
    assert "nothing written" in out and list(tmp_path.iterdir()) == []
    rc, _, err = _run(["relevance", f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16",
                       "--weights", str(workdir / "weights.safetensors"), "--out", "chart.jpg"], capsys)
    assert rc == 2 and "--out must end in .png" in err


def test_score_command_reports_scale_clusters_and_proxies(workdir, tmp_path, capsys):
    out_json = tmp_path / "score.json"
    rc, out, err = _run(
        ["score", f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16",
         "--weights", str(workdir / "weights.safetensors"), "--proxies", "params,synflow", "--json", str(out_json)],
        capsys,
    )
    assert rc == 0, err
    assert "±" in out and "normalised rank score" in out and "cluster" in out and "synflow" in out
    data = json.loads(out_json.read_text())
    assert len(data["clusters"]) == 3 and data["std"] >= 0
    assert data["proxies"]["params"] == pytest.approx(914.0)  # 224 + 16 + 584 + 90
    assert data["num_parameters"] == data["proxies"]["params"]


def test_graph_summary_and_flops_proxy_print_the_same_figure(workdir, capsys):
    spec = [f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16"]
    rc, printed, err = _run(["graph", *spec], capsys)
    assert rc == 0, err
    row = next(line for line in printed.splitlines() if "FLOPs per sample (conv + matmul)" in line)
    graph_flops = int(row.split("│")[-2].strip().replace(",", ""))
    rc, printed, err = _run(["score", *spec, "--weights", str(workdir / "weights.safetensors"), "--proxies", "flops"],
                            capsys)
    assert rc == 0, err
    proxy_row = next(line for line in printed.splitlines() if "proxy flops" in line)
    # conv1 2*3*9*8*256 + conv2 2*8*9*8*256 + fc 2*8*10: what torch's FlopCounterMode counts
    assert graph_flops == 2 * 3 * 9 * 8 * 256 + 2 * 8 * 9 * 8 * 256 + 2 * 8 * 10
    assert float(proxy_row.split("│")[-2].strip()) == pytest.approx(graph_flops, rel=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input-shape", "1,4", "SPEC=Broken"], "this forward always fails"),
        (["--input-shape", "1,5,16,16", "SPEC=Net"], "channels"),
    ],
)
@pytest.mark.parametrize("command", ["relevance", "score"])
def test_bad_models_and_shapes_give_one_clear_line(workdir, tmp_path, capsys, command, args, message):
    spec = f"{workdir / 'net.py'}:{args[-1].split('=')[1]}"
    rc, _, err = _run([command, spec, *args[:-1], "--weights", str(workdir / "weights.safetensors")], capsys)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"nasassist {command}: error:") and message in err


@pytest.mark.parametrize("command", ["relevance", "score", "embed"])
def test_missing_weights_give_one_clear_line(workdir, tmp_path, capsys, monkeypatch, command):
    import nasassist_plugins.predictor.persistence as predictor_module

    monkeypatch.setattr(predictor_module, "DEFAULT_WEIGHTS", tmp_path / "absent" / "default.safetensors")
    head = (["embed", "--data", str(tmp_path), "--out-dir", str(tmp_path)] if command == "embed"
            else [command, f"{workdir / 'net.py'}:Net", "--input-shape", "1,3,16,16"])
    rc, _, err = _run(head, capsys)
    assert rc == 2 and "no default predictor weights" in err and "--weights" in err and err.count("\n") == 1
    rc, _, err = _run([*head, "--weights", str(tmp_path / "missing.safetensors")], capsys)
    assert rc == 2 and "predictor weights not found" in err and err.count("\n") == 1


def test_embed_command_rejects_unknown_families_and_missing_data(workdir, tmp_path, capsys):
    weights = str(workdir / "weights.safetensors")
    out = ["--out-dir", str(tmp_path / "maps")]
    rc, _, err = _run(["embed", "--data", str(tmp_path), "--families", "nb999", "--weights", weights, *out], capsys)
    assert rc == 2 and "unknown family or task 'nb999'" in err
    rc, _, err = _run(["embed", "--data", str(tmp_path / "nowhere"), "--weights", weights, *out], capsys)
    assert rc == 2 and "not found" in err
    rc, _, err = _run(["embed", "--data", str(tmp_path), "--weights", weights], capsys)
    assert rc == 2 and "--out-dir" in err and err.count("\n") == 1


def _chain(ops: list[str], name: str) -> ComputationalGraph:
    """A hand-made chain graph input -> ops -> output with plausible shapes."""
    graph = ComputationalGraph(name)
    previous = graph.add_node("input", output_shape=(1, 3, 8, 8))
    for k, op in enumerate(ops):
        attrs: dict = {"output_shape": (1, 8, 8, 8)}
        if op == "conv2d":
            attrs.update(in_channels=8, out_channels=8, kernel_size=(3, 3), num_params=576)
        node = graph.add_node(op, module=f"block{k}", **attrs)
        graph.add_edge(previous, node)
        previous = node
    graph.add_edge(previous, graph.add_node("output", output_shape=(1, 8, 8, 8)))
    return graph


def _tiny_benchmark(n: int = 12) -> tuple[list[ComputationalGraph], list[float], list[str]]:
    rng = np.random.default_rng(0)
    blocks = [["conv2d"], ["conv2d", "batchnorm"], ["relu", "conv2d"], ["max_pool"]]
    graphs, values = [], []
    for k in range(n):
        ops = [op for b in rng.integers(0, len(blocks), size=rng.integers(2, 6)) for op in blocks[b]]
        graphs.append(_chain(ops, f"g{k}"))
        values.append(ops.count("conv2d") + 0.1 * rng.normal())
    return graphs, values, ["task-a"] * (n // 2) + ["task-b"] * (n - n // 2)


def test_embedding_map_draws_four_panels_with_a_path(tmp_path, png_content, untrained_predictor):
    graphs, values, labels = _tiny_benchmark()
    predictor = untrained_predictor
    predictor.fit_gate(predictor.embed(graphs), candidates=(2,))
    out = tmp_path / "map.png"
    result = embedding_map(predictor, graphs, values, labels, out, path_graphs=graphs[:3],
                           path_names=["start", "next", "end"])
    png_content(out, min_width=1000, min_height=900)
    assert result.tsne.shape == result.pca.shape == (12, 2)
    assert result.path_tsne.shape == result.path_pca.shape == (3, 2)
    assert result.scores.min() == 0.0 and result.scores.max() == 1.0
    assert result.clusters.shape == (12,) and result.clusters.max() < predictor.clusterer.num_components
    with pytest.raises(ReportError, match="at least 2"):
        embedding_map(predictor, graphs[:1], values[:1], "x", tmp_path / "one.png")
    with pytest.raises(ReportError, match=".png"):
        embedding_map(predictor, graphs, values, labels, tmp_path / "map.jpg")


def test_rank_normalisation_is_per_label():
    scores = rank_normalise_per_label([1.0, 2.0, 3.0, 100.0, 50.0], ["a", "a", "a", "b", "b"])
    assert scores == pytest.approx([0.0, 0.5, 1.0, 1.0, 0.0])


def test_relevance_bar_chart_and_table_share_one_order(tmp_path, png_content):
    graphs, _, _ = _tiny_benchmark(2)

    class Fake:
        target_description = "parameters"

        def predict(self, items):
            return np.array([g.num_parameters for g in items], dtype=float), np.zeros(len(items))

    table = layer_relevance(Fake(), graphs[0])
    out = plot_relevance(table, tmp_path / "bars.png", top=3)
    png_content(out, min_width=400, min_height=150)
    rows = relevance_rows(table, 3)
    assert len(rows) == min(3, len(table))
    assert [r.signed_weight for r in rows] == sorted((r.signed_weight for r in rows), reverse=True)
    assert {r.key for r in rows} == {r.key for r in table.top(3)}


def test_path_file_accepts_graph_files_and_specs(workdir, tmp_path):
    from nasassist_plugins.cli.embed_command import load_path

    _chain(["conv2d", "relu"], "first").to_json(tmp_path / "first.json")
    path_file = tmp_path / "path.json"
    path_file.write_text(json.dumps(["first.json", f"{workdir / 'net.py'}:Net"]))
    graphs, names = load_path(path_file, "1,3,16,16")
    assert names == ["first", f"{workdir / 'net.py'}:Net"]
    assert graphs[0].name == "first" and graphs[1].num_parameters > 0


def test_embed_command_on_real_benchmark_data(workdir, tmp_path, capsys, monkeypatch, shared_data, png_content):
    """A few NB201 architectures from ../shared/data, through a private copy of the graph
    cache (the shared cache is never written by this test)."""
    from nasassist_plugins.families._cache import default_cache_dir

    cache = tmp_path / "cache"
    cache.mkdir()
    for cached in default_cache_dir().glob("nb201-*.npz"):
        shutil.copy(cached, cache / cached.name)
    monkeypatch.setenv("NASASSIST_CACHE", str(cache))
    path_file = tmp_path / "path.json"
    path_file.write_text(json.dumps(["nb201:|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|",
                                     "nb201:|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|"]))
    out = tmp_path / "real_map.png"
    rc, printed, err = _run(["embed", "--data", str(shared_data), "--families", "nb201", "--limit", "12",
                             "--weights", str(workdir / "weights.safetensors"), "--out", str(out),
                             "--path", str(path_file)], capsys)
    assert rc == 0, err
    assert "12 architectures" in printed and "Search path" in printed
    png_content(out, min_width=1000, min_height=900)
