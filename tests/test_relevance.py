"""Layer relevance: layers and masking, predictor-driven weights, data-driven saliency."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasassist_plugins.adapters import from_torch
from nasassist_plugins.errors import NASAssistError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.relevance import (
    RelevanceError,
    data_driven_relevance,
    graph_layers,
    layer_relevance,
    mask_layer,
    normalise_contributions,
)

INPUT = (1, 3, 16, 16)


class SharedReluNet(nn.Module):
    """Conv-BN, a ReLU *module* called twice, a functional add, pooling and a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.bn1(self.conv1(x)))
        y = y + self.act(self.conv2(y))
        return self.fc(F.adaptive_avg_pool2d(y, 1).flatten(1))


class ZeroBranchNet(nn.Module):
    """A live conv and a conv whose output is multiplied by 0 before it reaches the head."""

    def __init__(self) -> None:
        super().__init__()
        self.live = nn.Conv2d(3, 4, 3, padding=1)
        self.dead = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.live(x) + 0.0 * self.dead(x)
        return self.fc(y.mean(dim=(2, 3)))


class ParamCountPredictor:
    """A transparent stand-in predictor: score = parameters / 1000, counting its calls."""

    target_description = "thousands of parameters"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, graphs):
        self.calls += 1
        mean = np.array([g.num_parameters / 1000.0 for g in graphs])
        return mean, np.zeros(len(graphs))


@pytest.fixture(scope="module")
def graph() -> ComputationalGraph:
    torch.manual_seed(0)
    return from_torch(SharedReluNet(), INPUT)


def test_layers_group_nodes_by_module_and_skip_io(graph):
    layers = graph_layers(graph)
    keys = [l.key for l in layers]
    assert len(keys) == len(set(keys))
    assert {"conv1", "bn1", "act", "conv2", "fc"} <= set(keys)
    assert keys.index("conv1") < keys.index("bn1") < keys.index("conv2") < keys.index("fc")  # breadth-first
    act = next(l for l in layers if l.key == "act")
    assert act.op_types == ("relu", "relu") and act.op_summary == "relu×2"  # one module, called twice
    covered = sorted(i for l in layers for i in l.nodes)
    io = [i for i, n in enumerate(graph.nodes) if n.op_type in ("input", "output")]
    assert covered == sorted(set(range(graph.num_nodes)) - set(io))


@pytest.mark.parametrize("key", ["conv1", "act", "fc", "add"])
def test_masking_keeps_the_graph_valid_and_removes_the_layers_parameters(graph, key):
    layer = next(l for l in graph_layers(graph) if l.key == key)
    masked = mask_layer(graph, key)
    masked.validate()
    assert masked.edges == graph.edges and masked.num_nodes == graph.num_nodes
    assert masked.num_parameters == graph.num_parameters - layer.num_params
    for i in layer.nodes:
        node = masked.nodes[i]
        assert node.op_type == "identity" and node.num_params == 0 and not node.weighted
        assert node.attrs["output_shape"] == graph.nodes[i].attrs["output_shape"]
    assert graph.nodes[layer.nodes[0]].op_type != "identity"  # the original is untouched


def test_masking_an_unknown_layer_is_a_clear_error(graph):
    with pytest.raises(KeyError, match="no layer"):
        mask_layer(graph, "nope")


def test_predictor_relevance_has_one_normalised_entry_per_layer(graph, untrained_predictor):
    calls = []
    original = untrained_predictor.predict

    def counting_predict(*args, **kwargs):
        calls.append(len(args[0]))
        return original(*args, **kwargs)

    untrained_predictor.predict = counting_predict
    try:
        table = layer_relevance(untrained_predictor, graph)
    finally:
        del untrained_predictor.predict
    layers = graph_layers(graph)
    assert calls == [len(layers) + 1]  # baseline and every masked variant in one call
    assert [r.key for r in table] == [l.key for l in layers]
    weights = np.array([r.weight for r in table])
    deltas = np.array([r.delta for r in table])
    assert np.all(weights >= 0)
    if (deltas > 0).any():
        assert weights.sum() == pytest.approx(1.0)
    assert sum(abs(r.signed_weight) for r in table) == pytest.approx(1.0)
    assert sorted(r.rank for r in table) == list(range(1, len(layers) + 1))
    assert table.ranked()[0].delta == pytest.approx(deltas.max())
    assert math.isfinite(table.baseline_mean) and table.baseline_std >= 0
    for r in table:
        assert r.reference_mean == table.baseline_mean  # no repeated blocks in this model
        assert r.delta == pytest.approx(table.baseline_mean - r.masked_mean)


class RepeatedBlocksNet(nn.Module):
    """A stem and three identical conv-BN-ReLU blocks: coarsening folds the blocks into one."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(*[
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()) for _ in range(3)
        ])
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


class CoarseSizePredictor:
    """Scores the predictor's coarsened graph: its node count, conv and linear nodes counted 10 times.

    Sensitive to how repeats are folded, as a learned predictor is: a reference that does
    not fold the same way as the masked graph would show up in every delta.
    """

    def predict(self, graphs):
        from nasassist_plugins.predictor import coarsen

        coarse = [coarsen(g) for g in graphs]
        mean = np.array([sum(10 if n.op_type in ("conv2d", "linear") else 1 for n in c.nodes) for c in coarse],
                        dtype=float)
        return mean, np.zeros(len(graphs))


def test_layers_in_folded_repeats_are_measured_against_a_reference_folded_like_them(untrained_predictor):
    from nasassist_plugins.predictor import coarsen
    from nasassist_plugins.predictor.coarsen import folded_blocks, keep_block_apart

    graph = from_torch(RepeatedBlocksNet(), INPUT)
    assert folded_blocks(graph) == {("blocks", 0), ("blocks", 1), ("blocks", 2)}
    assert coarsen(graph).num_nodes < graph.num_nodes - 4  # blocks 1 and 2 fold into block 0
    masked, reference = coarsen(mask_layer(graph, "blocks.1.0")), coarsen(keep_block_apart(graph, ("blocks", 1)))
    # the masked graph and its reference differ by the masked conv only
    assert masked.edges == reference.edges
    differing = [k for k, (a, b) in enumerate(zip(masked.nodes, reference.nodes)) if a.op_type != b.op_type]
    assert masked.num_nodes == reference.num_nodes and len(differing) == 1
    assert (masked.nodes[differing[0]].op_type, reference.nodes[differing[0]].op_type) == ("identity", "conv2d")

    table = layer_relevance(CoarseSizePredictor(), graph)
    for key in ("blocks.0.0", "blocks.1.0", "blocks.2.0"):  # a conv in each repeat: 10 -> 1, BN fused either way
        assert table[key].delta == 9.0 and table[key].reference_mean != table.baseline_mean
    assert table["stem"].reference_mean == table.baseline_mean and table["stem"].delta == 9.0

    learned = layer_relevance(untrained_predictor, graph)  # the real predictor: same bookkeeping
    for r in learned:
        assert r.delta == pytest.approx(r.reference_mean - r.masked_mean)
    assert learned["fc"].reference_mean == learned.baseline_mean
    assert learned["blocks.1.0"].reference_mean != learned.baseline_mean


def test_relevance_deltas_follow_a_transparent_predictor(graph):
    fake = ParamCountPredictor()
    table = layer_relevance(fake, graph)
    assert fake.calls == 1
    params = {l.key: l.num_params for l in graph_layers(graph)}
    for r in table:
        assert r.delta == pytest.approx(params[r.key] / 1000.0)
        assert r.weight == pytest.approx(params[r.key] / graph.num_parameters)
    assert table.ranked()[0].key == "conv2"  # the largest layer
    assert table["act"].weight == 0.0
    data = json.loads(json.dumps(table.to_dict()))
    assert data["baseline"]["mean"] == pytest.approx(graph.num_parameters / 1000.0)
    assert len(data["layers"]) == len(table) and "normalisation" in data
    markdown = table.to_markdown()
    assert "| `conv2` | conv2d |" in markdown and markdown.count("\n| `") == len(table)


def test_relevance_of_a_module_needs_an_example_input(untrained_predictor):
    with pytest.raises(RelevanceError, match="example_input"):
        layer_relevance(untrained_predictor, SharedReluNet())
    table = layer_relevance(ParamCountPredictor(), SharedReluNet(), INPUT)
    assert "conv1" in table.weights


def test_relevance_of_a_model_that_fails_is_a_library_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    with pytest.raises(NASAssistError, match="boom"):
        layer_relevance(ParamCountPredictor(), Broken(), INPUT)


def test_normalisation_clips_negatives_and_handles_degenerate_inputs():
    weights, signed = normalise_contributions([0.3, -0.1, 0.1, 0.0])
    assert weights == pytest.approx([0.75, 0.0, 0.25, 0.0])
    assert signed == pytest.approx([0.6, -0.2, 0.2, 0.0])
    weights, signed = normalise_contributions([-1.0, -3.0])
    assert weights == pytest.approx([0.0, 0.0]) and signed == pytest.approx([-0.25, -0.75])
    weights, _ = normalise_contributions([float("inf"), 5.0, float("nan")])
    assert weights == pytest.approx([1.0, 0.0, 0.0])
    assert normalise_contributions([])[0].shape == (0,)


@pytest.mark.parametrize("method", ["synflow", "snip"])
def test_data_driven_saliency_is_zero_for_a_branch_multiplied_by_zero(method):
    torch.manual_seed(0)
    model = ZeroBranchNet()
    table = data_driven_relevance(model, (4, 3, 8, 8), method=method)
    assert set(table.weights) == {"live", "dead", "fc"}
    assert table["dead"].saliency == 0.0 and table["dead"].weight == 0.0
    assert table["live"].saliency > 0 and table["fc"].saliency > 0
    assert sum(table.weights.values()) == pytest.approx(1.0)
    assert table["dead"].rank == 3 and table["live"].num_params == 4 * 3 * 9 + 4
    keys = {r.key for r in layer_relevance(ParamCountPredictor(), model, (1, 3, 8, 8))}
    assert set(table.weights) <= keys  # same qualified names as the predictor's table
    assert json.loads(json.dumps(table.to_dict()))["method"] == method


def test_data_driven_relevance_rejects_unknown_methods_and_bad_inputs():
    with pytest.raises(RelevanceError, match="synflow"):
        data_driven_relevance(ZeroBranchNet(), (2, 3, 8, 8), method="magic")
    with pytest.raises(NASAssistError):
        data_driven_relevance(ZeroBranchNet(), (2, 5, 8, 8), method="snip")  # wrong channel count
