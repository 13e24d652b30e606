"""from_torch on the model kinds users bring, and its error messages."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn

from models import (
    AttentionBlock,
    ConcatCNN,
    LeavesTorch,
    MobileBlockNet,
    NestedMLP,
    RaisesInForward,
    ResidualCNN,
    TransformerEncoderNet,
)
from nasassist_plugins.adapters import from_torch
from nasassist_plugins.errors import AdapterError, AdapterTypeError


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _ops(graph) -> list[str]:
    return [n.op_type for n in graph.nodes]


def test_residual_add_is_a_join_of_two_paths():
    model = ResidualCNN()
    g = from_torch(model, (1, 3, 16, 16))
    assert g.metadata["tracer"] == "one-pass"
    assert g.num_parameters == _params(model)
    adds = [i for i, n in enumerate(g.nodes) if n.op_type == "add"]
    assert len(adds) == 1 and len(g.predecessors(adds[0])) == 2
    modules = {n.module for n in g.nodes}
    assert {"stem.0", "stem.1", "conv1", "bn2", "fc"} <= modules
    conv = next(n for n in g.nodes if n.module == "conv1")
    assert conv.attrs["kernel_size"] == (3, 3) and conv.attrs["output_shape"] == (1, 8, 16, 16)
    assert conv.attrs["bias"] is False and conv.attrs["weight_shape"] == (8, 8, 3, 3)
    assert _ops(g).count("global_avg_pool") == 1


def test_concat_and_functional_calls_are_nodes():
    model = ConcatCNN()
    g = from_torch(model, torch.randn(2, 3, 8, 8))
    ops = _ops(g)
    for op in ("concat", "relu", "sigmoid", "max_pool", "global_avg_pool", "linear"):
        assert op in ops, op
    cat = ops.index("concat")
    assert len(g.predecessors(cat)) == 2
    assert g.nodes[cat].attrs["output_shape"] == (2, 10, 8, 8)
    assert g.num_parameters == _params(model)


def test_depthwise_and_grouped_convolutions():
    model = MobileBlockNet()
    g = from_torch(model, (1, 3, 8, 8))
    by_module = {n.module: n for n in g.nodes if n.module}
    assert by_module["depthwise"].op_type == "depthwise_conv2d"
    assert by_module["grouped"].op_type == "conv2d" and by_module["grouped"].attrs["groups"] == 3
    assert by_module["act"].op_type == "relu6"
    assert g.num_parameters == _params(model)


def test_nested_sequential_and_modulelist_mlp():
    model = NestedMLP()
    g = from_torch(model, (4, 20))
    assert [n.op_type for n in g.nodes] == ["input", "linear", "relu", "linear", "gelu", "dropout", "linear", "output"]
    assert [n.module for n in g.nodes if n.op_type == "linear"] == ["layers.0.0", "layers.1.0", "out.1.0"]
    assert g.edges == [(i, i + 1) for i in range(7)]


def test_multihead_attention_is_one_weighted_node():
    model = AttentionBlock()
    g = from_torch(model, (2, 5, 8))
    attention = [n for n in g.nodes if n.op_type == "attention"]
    assert len(attention) == 1 and attention[0].module == "attn"
    assert attention[0].num_params == _params(model.attn)
    assert g.num_parameters == _params(model)
    assert g.metadata["tracer"] == "one-pass"


def test_transformer_encoder_is_traced_in_one_pass_where_fx_fails():
    model = TransformerEncoderNet()
    g = from_torch(model, (2, 5, 8))
    assert g.metadata["tracer"] == "one-pass"
    assert g.weighted_op_counts() == {"linear": 6, "attention": 2, "layernorm": 4}
    assert g.num_parameters == _params(model)
    with pytest.raises(AdapterError, match="torch.fx cannot trace"):
        from_torch(model, (2, 5, 8), method="fx")
    old = from_torch(model, (2, 5, 8), method="torchview")  # the former fallback sees the same layers
    assert old.weighted_op_counts() == g.weighted_op_counts() and old.num_parameters == g.num_parameters
    assert [n.module for n in g.nodes if n.weighted] == [n.module for n in old.nodes if n.weighted]


def test_tracing_restores_mode_and_leaves_weights_untouched():
    model = ResidualCNN().train()
    before = copy.deepcopy(model.state_dict())
    from_torch(model, (2, 3, 8, 8))
    assert model.training and model.stem[1].training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not any("forward" in m.__dict__ for m in model.modules())  # the tracer's wrappers are gone


def test_shared_module_counts_its_weights_once():
    class Shared(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))

    model = Shared()
    g = from_torch(model, (1, 4))
    assert _ops(g).count("linear") == 2
    assert g.num_parameters == _params(model)


def test_parameters_read_directly_are_counted():
    class PositionalNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Parameter(torch.zeros(1, 5, 8))
            self.fc = nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(x + self.pos)

    model = PositionalNet()
    assert from_torch(model, (1, 5, 8)).num_parameters == _params(model)


def test_non_module_input_is_rejected_with_a_clear_message():
    with pytest.raises(AdapterTypeError, match="expects a torch.nn.Module, got str"):
        from_torch("resnet18", (1, 3, 32, 32))
    with pytest.raises(AdapterTypeError, match="class instead of an instance"):
        from_torch(ResidualCNN, (1, 3, 32, 32))
    with pytest.raises(AdapterTypeError, match="example_input must be"):
        from_torch(ResidualCNN(), "1,3,32,32")
    with pytest.raises(AdapterTypeError, match="positive sizes"):
        from_torch(ResidualCNN(), (1, 3, 0, 32))


def test_wrong_input_shape_names_the_shape_and_the_cause():
    with pytest.raises(AdapterError, match=r"shape \(1, 1, 16, 16\).*expected input.*3 channels"):
        from_torch(ResidualCNN(), (1, 1, 16, 16))


def test_model_that_raises_in_forward():
    model = RaisesInForward()
    with pytest.raises(AdapterError, match="deliberate failure in forward"):
        from_torch(model, (1, 4))
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_untraceable_model_names_the_cause():
    model = LeavesTorch()
    model(torch.randn(1, 4))  # the model itself runs
    with pytest.raises(AdapterError, match="does not depend on its input"):
        from_torch(model, (1, 4))


# ----------------------------------------------------------------------------- one-pass vs the fx path
def _zoo(full: bool) -> list[tuple[str, nn.Module, tuple[int, ...]]]:
    """The models of tests/models.py, generated zoo models of every style and benchmark cells."""
    import numpy as np

    from nasassist_plugins.adapters import cells
    from nasassist_plugins.predictor.training import zoo

    rng = np.random.default_rng(0)
    models = [("ResidualCNN", ResidualCNN(), (1, 3, 16, 16)), ("ConcatCNN", ConcatCNN(), (2, 3, 8, 8)),
              ("MobileBlockNet", MobileBlockNet(), (1, 3, 8, 8)), ("NestedMLP", NestedMLP(), (4, 20)),
              ("AttentionBlock", AttentionBlock(), (2, 5, 8))]
    for make in (zoo.random_resnet, zoo.random_mobilenet, zoo.random_inception, zoo.random_mlp,
                 zoo.random_transformer):
        models += [(f"{make.__name__}_{k}", make(rng), (1, 3, 32, 32)) for k in range(3 if full else 1)]
    models.append(("nb201", cells.nb201_network(cells.random_nb201_arch(rng), cells_per_stage=5 if full else 1),
                   (1, 3, 32, 32)))
    if full:
        adjacency, ops = cells.random_nb101_spec(rng)
        models.append(("nb101", cells.nb101_network(adjacency, ops, stem_channels=16), (1, 3, 32, 32)))
        normal, reduce = cells.random_darts_genotype(rng)
        models.append(("darts", cells.darts_network(normal, reduce, channels=8, layers=5), (1, 3, 32, 32)))
        models.append(("tnb101", cells.tnb101_network(cells.random_tnb101_arch(rng)), (1, 3, 32, 32)))
    return models


def _check_zoo(full: bool) -> None:
    for name, model, shape in _zoo(full):
        x = torch.randn(shape)
        new, old = from_torch(model, x, method="onepass"), from_torch(model, x, method="fx")
        assert new.metadata["tracer"] == "one-pass" and old.metadata["tracer"] == "torch.fx"
        # nodes (op, name, module, every attribute incl. shapes and parameters) and edges, in order
        assert new.to_dict()["nodes"] == old.to_dict()["nodes"], name
        assert new.edges == old.edges, name


def test_one_pass_graph_equals_the_fx_graph_on_the_model_zoo():
    _check_zoo(full=False)


@pytest.mark.slow
def test_one_pass_graph_equals_the_fx_graph_on_the_full_model_zoo():
    _check_zoo(full=True)


def test_in_place_and_identity_calls_keep_the_fx_data_flow():
    class ShortcutFirst(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shortcut = nn.Identity()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            y = self.shortcut(x) + self.conv(x)  # the conv reads x, not the shortcut's output
            y += x
            return self.act(y).relu_()

    model = ShortcutFirst()
    new, old = from_torch(model, (1, 3, 8, 8), method="onepass"), from_torch(model, (1, 3, 8, 8), method="fx")
    assert [n.op_type for n in new.nodes] == [n.op_type for n in old.nodes]
    assert new.edges == old.edges
    conv = next(i for i, n in enumerate(new.nodes) if n.op_type == "conv2d")
    assert [new.nodes[p].op_type for p in new.predecessors(conv)] == ["input"]


def test_data_dependent_control_flow_follows_the_branch_taken():
    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            return self.a(x) if x.sum() > 0 else self.b(x)

    g = from_torch(Gated(), torch.ones(1, 4))
    assert g.metadata["tracer"] == "one-pass" and [n.module for n in g.nodes if n.module] == ["a"]
    assert [n.module for n in from_torch(Gated(), -torch.ones(1, 4)).nodes if n.module] == ["b"]


def test_one_pass_failure_falls_back_to_the_fx_path(monkeypatch):
    from nasassist_plugins.adapters import _torch_trace

    def broken(self):
        raise RuntimeError("hooks unsupported")

    monkeypatch.setattr(_torch_trace.OnePassTracer, "trace", broken)
    g = from_torch(ResidualCNN(), (1, 3, 8, 8))
    assert g.metadata["tracer"] == "torch.fx" and "hooks unsupported" in g.metadata["onepass_error"]
    with pytest.raises(AdapterError, match="one-pass tracer cannot trace"):
        from_torch(ResidualCNN(), (1, 3, 8, 8), method="onepass")


def test_concurrent_traces_in_threads_do_not_mix():
    from concurrent.futures import ThreadPoolExecutor

    models = [ResidualCNN(), MobileBlockNet(), ConcatCNN(), NestedMLP()] * 3
    shapes = {ResidualCNN: (1, 3, 8, 8), MobileBlockNet: (1, 3, 8, 8), ConcatCNN: (1, 3, 8, 8), NestedMLP: (2, 20)}
    expected = [from_torch(m, shapes[type(m)]).to_dict() for m in models]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda m: from_torch(m, shapes[type(m)]).to_dict(), models))
    for e, g in zip(expected, got):
        assert e["nodes"] == g["nodes"] and e["edges"] == g["edges"]
