"""ComputationalGraph: construction, validation, JSON, hashing, PyG export, drawing."""

from __future__ import annotations

import json
import random

import pytest
import torch

from nasassist_plugins.errors import GraphError
from nasassist_plugins.graph import NODE_FEATURES, OP_VOCABULARY, ComputationalGraph, Node


def _small_graph() -> ComputationalGraph:
    g = ComputationalGraph(name="tiny")
    i = g.add_node("input", output_shape=(1, 3, 8, 8))
    c = g.add_node("conv2d", module="conv", in_channels=3, out_channels=4, kernel_size=(3, 3), stride=(1, 1),
                   groups=1, bias=False, weight_shape=(4, 3, 3, 3), output_shape=(1, 4, 8, 8), num_params=108)
    b = g.add_node("batchnorm", module="bn", in_channels=4, out_channels=4, output_shape=(1, 4, 8, 8), num_params=8)
    r = g.add_node("relu", output_shape=(1, 4, 8, 8))
    s = g.add_node("conv2d", module="skip", in_channels=3, out_channels=4, kernel_size=(1, 1), stride=(1, 1),
                   groups=1, output_shape=(1, 4, 8, 8), num_params=12)
    a = g.add_node("add", output_shape=(1, 4, 8, 8))
    o = g.add_node("output", output_shape=(1, 4, 8, 8))
    for e in [(i, c), (c, b), (b, r), (i, s), (r, a), (s, a), (a, o)]:
        g.add_edge(*e)
    return g


def _permuted(graph: ComputationalGraph, seed: int) -> ComputationalGraph:
    order = list(range(graph.num_nodes))
    random.Random(seed).shuffle(order)
    new_of_old = {old: new for new, old in enumerate(order)}
    nodes = [graph.nodes[old] for old in order]
    edges = [(new_of_old[s], new_of_old[t]) for s, t in graph.edges]
    random.Random(seed + 1).shuffle(edges)
    return ComputationalGraph.from_parts(nodes, edges, name="permuted")


def test_summary_counts_parameters_flops_and_ops():
    g = _small_graph()
    s = g.summary()
    assert (s.num_nodes, s.num_edges, s.num_weighted_nodes) == (7, 7, 3)
    assert s.num_parameters == 128
    # conv3x3: 2*3*9*4*64, conv1x1: 2*3*1*4*64, bn: 2*256, relu 256, add 256
    assert s.flops == 2 * 3 * 9 * 256 + 2 * 3 * 256 + 2 * 256 + 256 + 256
    assert s.op_counts["conv2d"] == 2 and s.unknown_ops == ()
    assert g.weighted_op_counts() == {"conv2d": 2, "batchnorm": 1}


def test_json_round_trip_is_lossless(tmp_path):
    g = _small_graph()
    g.metadata["source"] = "unit-test"
    path = tmp_path / "g.json"
    text = g.to_json(path)
    again = ComputationalGraph.from_json(path)
    assert again == g
    assert ComputationalGraph.from_json(text) == g
    assert again.nodes[1].attrs["kernel_size"] == (3, 3)  # tuples come back as tuples


def test_hash_is_invariant_under_node_reordering_and_sensitive_to_architecture():
    g = _small_graph()
    for seed in range(5):
        assert _permuted(g, seed).wl_hash() == g.wl_hash()
    changed = g.copy()
    changed.nodes[1].attrs["kernel_size"] = (5, 5)
    assert changed.wl_hash() != g.wl_hash()
    rewired = ComputationalGraph.from_parts(g.nodes, [(0, 1), (1, 2), (2, 3), (0, 4), (3, 5), (4, 5), (5, 6), (0, 5)])
    assert rewired.wl_hash() != g.wl_hash()


def test_unknown_ops_are_kept_by_name():
    g = _small_graph()
    g.nodes[3].op_type = "my_fancy_activation"
    assert g.summary().unknown_ops == ("my_fancy_activation",)
    data = g.to_pyg()
    assert data.op_types[3] == "my_fancy_activation"
    assert int(data.op_index[3]) == len(OP_VOCABULARY)  # the "unknown" bucket, not dropped


def test_to_pyg_shapes():
    g = _small_graph()
    data = g.to_pyg()
    assert data.x.shape == (7, len(NODE_FEATURES))
    assert data.edge_index.shape == (2, 7)
    assert data.op_index.dtype == torch.long
    assert int(data.op_index[1]) == OP_VOCABULARY.index("conv2d")
    assert bool(torch.isfinite(data.x).all())


def test_topological_order_and_cycle_detection():
    g = _small_graph()
    order = g.topological_order()
    position = {n: k for k, n in enumerate(order)}
    assert all(position[s] < position[t] for s, t in g.edges)
    extra = g.add_node("relu")
    g.add_edge(6, extra)  # the cached order follows the graph as it grows
    assert g.topological_order() == order + [extra]
    g.add_edge(6, 0)
    with pytest.raises(GraphError, match="cycle"):
        g.validate()


def test_bad_edges_and_empty_graph_raise_clear_errors():
    g = ComputationalGraph()
    with pytest.raises(GraphError, match="empty"):
        g.validate()
    g.add_node("input")
    with pytest.raises(GraphError, match="has 1 nodes"):
        g.add_edge(0, 3)
    with pytest.raises(GraphError, match="self-loop"):
        g.add_edge(0, 0)
    with pytest.raises(GraphError, match="op_type"):
        g.add_node("")


def test_from_json_rejects_foreign_or_future_documents():
    with pytest.raises(GraphError, match="not valid JSON"):
        ComputationalGraph.from_json("{not json")
    with pytest.raises(GraphError, match="not a NAS-Assist graph"):
        ComputationalGraph.from_json(json.dumps({"nodes": []}))
    doc = _small_graph().to_dict()
    doc["version"] = 99
    with pytest.raises(GraphError, match="version 99"):
        ComputationalGraph.from_dict(doc)
    doc = _small_graph().to_dict()
    doc["edges"].append([0, 42])
    with pytest.raises(GraphError, match="names node 42"):
        ComputationalGraph.from_dict(doc)


def test_node_weighted_flag_follows_parameters():
    assert Node("conv2d", "c").weighted
    assert not Node("relu", "r").weighted
    assert Node("custom_op", "x", attrs={"num_params": 5}).weighted


def _strided_residual_graph() -> ComputationalGraph:
    """input -> conv(stride 2) -> relu -> conv -> add <- conv1x1(stride 2) <- input: a
    downsampling residual block whose skip path bypasses three layers."""
    g = ComputationalGraph(name="strided-residual")
    i = g.add_node("input", output_shape=(1, 3, 16, 16))
    c1 = g.add_node("conv2d", module="c1", in_channels=3, out_channels=8, kernel_size=(3, 3), stride=(2, 2),
                    output_shape=(1, 8, 8, 8), num_params=216)
    r = g.add_node("relu", output_shape=(1, 8, 8, 8))
    c2 = g.add_node("conv2d", module="c2", in_channels=8, out_channels=8, kernel_size=(3, 3), stride=(1, 1),
                    output_shape=(1, 8, 8, 8), num_params=576)
    bn = g.add_node("batchnorm", module="bn", in_channels=8, out_channels=8, output_shape=(1, 8, 8, 8), num_params=16)
    a = g.add_node("add", output_shape=(1, 8, 8, 8))
    p = g.add_node("max_pool", kernel_size=(2, 2), output_shape=(1, 8, 4, 4))
    o = g.add_node("output", output_shape=(1, 8, 4, 4))
    for e in [(i, c1), (c1, r), (r, c2), (c2, bn), (bn, a), (i, a), (a, p), (p, o)]:
        g.add_edge(*e)
    return g


def test_layers_and_downsampling_marks():
    from nasassist_plugins.graph.draw import downsampling_factor, layer_of_nodes

    assert layer_of_nodes(_small_graph()) == [0, 1, 2, 3, 1, 4, 5]
    g = _strided_residual_graph()
    # a stride attribute, a pooled output half the input's size, and no shrink elsewhere
    assert [downsampling_factor(g, k) for k in range(g.num_nodes)] == [1, 2, 1, 1, 1, 1, 2, 1]


def test_matplotlib_layout_gives_a_skip_edge_its_own_lane():
    from nasassist_plugins.graph.draw import _layered_layout

    g = _strided_residual_graph()
    pos, paths = _layered_layout(g)
    skip = next(p for p in paths if p[0] == 0 and p[-1] == 5)
    assert len(skip) == 6  # input, a waypoint in each of the 4 layers it crosses, add
    lane = {pos[v][0] for v in skip[1:-1]}
    branch = {pos[v][0] for v in (1, 2, 3, 4)}
    assert min(abs(a - b) for a in lane for b in branch) >= 0.99  # never drawn behind the bypassed nodes
    for layer_y in {pos[v][1] for v in pos}:  # no two vertices of a layer overlap
        row = sorted(x for x, y in pos.values() if y == layer_y)
        assert all(b - a >= 0.99 for a, b in zip(row, row[1:]))


@pytest.mark.parametrize("engine", ["matplotlib", "dot"])
def test_draw_renders_a_picture(tmp_path, engine, png_content):
    from nasassist_plugins.graph.draw import draw_graph, graphviz_available

    if engine == "dot" and not graphviz_available():
        pytest.skip("graphviz's dot is not installed (Debian package graphviz)")
    g = _strided_residual_graph()
    out = draw_graph(g, tmp_path / "sub" / "g.png", engine=engine)
    image = png_content(out, min_width=200, min_height=300)
    assert image.shape[0] > image.shape[1]  # layered top to bottom
    # the downsampling border and the skip edge are drawn in orange (#E07B00)
    orange = (abs(image[..., 0] - 0xE0 / 255) < 0.06) & (abs(image[..., 1] - 0x7B / 255) < 0.06) & (image[..., 2] < 0.1)
    assert orange.sum() > 200


def test_dot_text_marks_skips_and_downsampling():
    from nasassist_plugins.graph.draw import to_dot

    text = to_dot(_strided_residual_graph())
    assert 'n0 -> n5 [color="#E07B00"' in text and "n1 -> n2;" in text
    assert 'label="conv2d 3x3 ↓2\\n8ch"' in text and "penwidth=3" in text


def test_draw_rejects_bad_engines_and_paths(tmp_path):
    from nasassist_plugins.graph.draw import draw_graph

    with pytest.raises(GraphError, match="engine must be one of"):
        draw_graph(_small_graph(), tmp_path / "g.png", engine="tikz")
    with pytest.raises(GraphError, match="must end in .png"):
        draw_graph(_small_graph(), tmp_path / "g.svg")
    with pytest.raises(GraphError, match="empty"):
        draw_graph(ComputationalGraph(), tmp_path / "g.png")


def test_matmul_flops_leave_element_wise_ops_out():
    s = _small_graph().summary()
    assert s.matmul_flops == 2 * 3 * 9 * 256 + 2 * 3 * 256  # the two convolutions only
    assert s.flops == s.matmul_flops + 2 * 256 + 256 + 256
