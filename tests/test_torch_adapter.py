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
    assert g.metadata["tracer"] == "torch.fx"
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
    assert g.metadata["tracer"] == "torch.fx"


def test_transformer_encoder_falls_back_to_torchview():
    model = TransformerEncoderNet()
    g = from_torch(model, (2, 5, 8))
    assert g.metadata["tracer"] == "torchview"
    assert "fx_error" in g.metadata
    assert g.weighted_op_counts() == {"linear": 6, "attention": 2, "layernorm": 4}
    assert g.num_parameters == _params(model)
    with pytest.raises(AdapterError, match="torch.fx cannot trace"):
        from_torch(model, (2, 5, 8), method="fx")


def test_tracing_restores_mode_and_leaves_weights_untouched():
    model = ResidualCNN().train()
    before = copy.deepcopy(model.state_dict())
    from_torch(model, (2, 3, 8, 8))
    assert model.training and model.stem[1].training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


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
    with pytest.raises(AdapterError, match="deliberate failure in forward"):
        from_torch(RaisesInForward(), (1, 4))


def test_untraceable_model_names_the_cause():
    model = LeavesTorch()
    model(torch.randn(1, 4))  # the model itself runs
    with pytest.raises(AdapterError, match="does not depend on its input"):
        from_torch(model, (1, 4))
