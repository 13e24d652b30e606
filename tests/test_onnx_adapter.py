"""Tests of the ONNX adapter: agreement with the PyTorch adapter, op mapping, errors.

The agreement tests export each model once (module-scoped fixture) with the dynamo
exporter, which costs a second or two per model; everything else uses tiny hand-built
ONNX models or the fast TorchScript exporter.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
import torch
import torch.nn as nn
from onnx import TensorProto, helper, numpy_helper

from models import AttentionBlock, ConcatCNN, MobileBlockNet, NestedMLP, ResidualCNN, TransformerEncoderNet
from nasassist_plugins.adapters.onnx_adapter import export_onnx, from_onnx
from nasassist_plugins.adapters.torch_adapter import from_torch
from nasassist_plugins.errors import AdapterError, AdapterTypeError
from nasassist_plugins.graph import ComputationalGraph


# ----------------------------------------------------------------------------- models
class SharedModules(nn.Module):
    """One conv and one nn.MultiheadAttention, each called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.attn = nn.MultiheadAttention(4, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.conv(self.conv(x)).flatten(2).transpose(1, 2)
        a, _ = self.attn(tokens, tokens, tokens)
        b, _ = self.attn(a, a, a)
        return b


class GroupNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gn = nn.GroupNorm(2, 8)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.gn(self.conv(x)))


# Exported with the (slower) dynamo exporter once per test session.
MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "residual_cnn": (ResidualCNN, (1, 3, 16, 16)),
    "concat_functional": (ConcatCNN, (1, 3, 16, 16)),
    "mobilenet_block": (MobileBlockNet, (1, 3, 16, 16)),
    "mlp": (NestedMLP, (2, 20)),
    "attention_block": (AttentionBlock, (2, 5, 8)),
}
# Exported with the fast TorchScript exporter only.
EXTRA_MODELS = {
    "transformer_encoder": (TransformerEncoderNet, (2, 5, 8)),
    "shared_modules": (SharedModules, (1, 4, 4, 4)),
    "groupnorm": (GroupNormNet, (1, 3, 8, 8)),
}


def _build(key: str) -> tuple[nn.Module, torch.Tensor]:
    factory, shape = MODELS.get(key) or EXTRA_MODELS[key]
    torch.manual_seed(0)
    return factory().eval(), torch.randn(shape)


def _trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, torch.Tensor, Path]]:
    """Every model of MODELS exported once with the dynamo exporter."""
    folder = tmp_path_factory.mktemp("onnx_models")
    out = {}
    for key in MODELS:
        model, example = _build(key)
        out[key] = (model, example, export_onnx(model, example, folder / f"{key}.onnx"))
    return out


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("key", list(MODELS))
def test_onnx_graph_agrees_with_torch_adapter(exported, key: str) -> None:
    model, example, path = exported[key]
    onnx_graph = from_onnx(path)
    torch_graph = from_torch(model, example)
    assert onnx_graph.weighted_op_counts() == torch_graph.weighted_op_counts()
    assert onnx_graph.num_parameters == torch_graph.num_parameters == _trainable(model)


def test_expected_weighted_ops_per_model(exported) -> None:
    """Absolute expectations, independent of the PyTorch adapter."""
    expected = {
        "residual_cnn": {"conv2d": 3, "batchnorm": 3, "linear": 1},
        "concat_functional": {"conv2d": 2, "linear": 1},
        "mobilenet_block": {"conv2d": 3, "depthwise_conv2d": 1, "batchnorm": 1, "linear": 1},
        "mlp": {"linear": 3},
        "attention_block": {"linear": 4, "attention": 1, "layernorm": 2},
    }
    for key, counts in expected.items():
        assert dict(from_onnx(exported[key][2]).weighted_op_counts()) == counts, key


def test_regular_ops_are_mapped(exported) -> None:
    ops = {key: set(from_onnx(path).op_counts()) for key, (_, _, path) in exported.items()}
    assert {"input", "output", "relu", "add", "global_avg_pool"} <= ops["residual_cnn"]
    assert {"concat", "relu", "sigmoid", "max_pool"} <= ops["concat_functional"]
    assert {"relu6", "add", "global_avg_pool", "flatten"} <= ops["mobilenet_block"]
    assert {"relu", "gelu", "dropout"} <= ops["mlp"]
    assert {"gelu", "add", "mean"} <= ops["attention_block"]
    assert not ({"shape", "constant", "concat"} & ops["attention_block"])  # shape plumbing folded


@pytest.mark.parametrize("key", ["mobilenet_block", "transformer_encoder"])
def test_torchscript_exporter_agrees_too(tmp_path: Path, key: str) -> None:
    model, example = _build(key)
    path = export_onnx(model, example, tmp_path / "legacy.onnx", dynamo=False)
    graph = from_onnx(path)
    assert graph.weighted_op_counts() == from_torch(model, example).weighted_op_counts()
    assert graph.num_parameters == _trainable(model)


def test_decomposed_layernorm_and_gelu_are_reassembled(tmp_path: Path) -> None:
    """Opset 14 has no LayerNormalization or Gelu: exporters write ReduceMean/Sub/Pow/... and Erf."""
    model, example = _build("attention_block")
    path = tmp_path / "opset14.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=14, do_constant_folding=False)
    raw_ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LayerNormalization" not in raw_ops and "Erf" in raw_ops
    graph = from_onnx(path)
    assert dict(graph.weighted_op_counts()) == {"linear": 4, "layernorm": 2, "attention": 1}
    assert graph.op_counts()["gelu"] == 1
    assert [n.module for n in graph.nodes if n.op_type == "layernorm"] == ["norm1", "norm2"]
    assert graph.num_parameters == _trainable(model)


def test_groupnorm_decomposition_is_reassembled(tmp_path: Path) -> None:
    model, example = _build("groupnorm")
    graph = from_onnx(export_onnx(model, example, tmp_path / "gn.onnx", dynamo=False))
    gn = [n for n in graph.nodes if n.op_type == "groupnorm"]
    assert len(gn) == 1 and gn[0].num_params == 16 and gn[0].attrs["groups"] == 2
    assert graph.op_counts()["silu"] == 1
    assert graph.weighted_op_counts() == from_torch(model, example).weighted_op_counts()


def test_shared_modules_count_weights_once(tmp_path: Path) -> None:
    """TorchScript exporter: the second call of ``conv`` is scoped ``conv_1``."""
    model, example = _build("shared_modules")
    graph = from_onnx(export_onnx(model, example, tmp_path / "shared.onnx", dynamo=False))
    assert dict(graph.weighted_op_counts()) == {"conv2d": 2, "attention": 2}
    assert graph.num_parameters == _trainable(model)
    assert [n.module for n in graph.nodes if n.op_type == "conv2d"] == ["conv", "conv"]
    assert graph.weighted_op_counts() == from_torch(model, example).weighted_op_counts()


def _scoped(node: onnx.NodeProto, module: str, cls: str, call: str) -> onnx.NodeProto:
    """Attach the scope metadata the dynamo exporter writes."""
    root = "__main__.Net"
    for key, value in (
        ("pkg.torch.onnx.name_scopes", repr(["", module, call])),
        ("pkg.torch.onnx.class_hierarchy", repr([root, cls, "aten.op.default"])),
    ):
        entry = node.metadata_props.add()
        entry.key, entry.value = key, value
    return node


def test_attention_called_twice_in_a_row_gives_two_nodes() -> None:
    """Dynamo metadata does not number calls: one module's ops are split by weight reads."""
    mha = "torch.nn.modules.activation.MultiheadAttention"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 4])
    nodes = []
    for call, (src, dst) in enumerate([("x", "a"), ("a", "y")]):
        nodes += [
            _scoped(helper.make_node("MatMul", [src, "w_in"], [f"q{call}"]), "attn", mha, f"linear_{call}"),
            _scoped(helper.make_node("Softmax", [f"q{call}"], [f"p{call}"]), "attn", mha, f"softmax_{call}"),
            _scoped(helper.make_node("Gemm", [f"p{call}", "w_out"], [dst], transB=1), "attn", mha, f"out_{call}"),
        ]
    weights = [_tensor("w_in", (4, 4)), _tensor("w_out", (4, 4))]
    graph = from_onnx(_model(nodes, [x], [y], weights))
    assert [n.op_type for n in graph.nodes] == ["input", "attention", "attention", "output"]
    assert [n.num_params for n in graph.nodes[1:3]] == [32, 0]
    assert graph.nodes[1].module == graph.nodes[2].module == "attn"
    assert graph.edges == [(0, 1), (1, 2), (2, 3)]


# ----------------------------------------------------------------------------- attributes
def test_conv_nodes_carry_shapes_and_modules(exported) -> None:
    graph = from_onnx(exported["mobilenet_block"][2])
    convs = {n.module: n for n in graph.nodes if n.op_type in ("conv2d", "depthwise_conv2d")}
    assert set(convs) == {"expand", "depthwise", "grouped", "project"}
    for node in convs.values():
        assert node.attrs["output_shape"] == (1, node.attrs["out_channels"], 16, 16)
    dw = convs["depthwise"]
    assert dw.op_type == "depthwise_conv2d"
    assert dw.attrs["groups"] == dw.attrs["in_channels"] == 12
    assert dw.attrs["kernel_size"] == (3, 3) and dw.attrs["stride"] == (1, 1) and dw.attrs["padding"] == (1, 1)
    assert dw.attrs["weight_shape"] == (12, 1, 3, 3) and dw.attrs["bias"] is False and dw.num_params == 108
    grouped = convs["grouped"]
    assert grouped.op_type == "conv2d" and grouped.attrs["groups"] == 3
    assert grouped.attrs["weight_shape"] == (12, 4, 3, 3)


def test_batchnorm_is_kept_and_counts_only_scale_and_shift(exported) -> None:
    graph = from_onnx(exported["residual_cnn"][2])
    norms = [n for n in graph.nodes if n.op_type == "batchnorm"]
    assert [n.module for n in norms] == ["stem.1", "bn1", "bn2"]
    assert all(n.num_params == 16 and n.attrs["in_channels"] == 8 for n in norms)
    (pool,) = [n for n in from_onnx(exported["concat_functional"][2]).nodes if n.op_type == "max_pool"]
    assert pool.attrs["kernel_size"] == pool.attrs["stride"] == (2, 2) and pool.attrs["output_shape"] == (1, 10, 8, 8)


def test_attention_node_replaces_the_decomposed_module(exported) -> None:
    graph = from_onnx(exported["attention_block"][2])
    (attention,) = [n for n in graph.nodes if n.op_type == "attention"]
    assert attention.module == "attn"
    assert attention.num_params == 4 * 16 * 16 + 4 * 16
    assert attention.attrs["in_channels"] == attention.attrs["out_channels"] == 16
    assert attention.attrs["num_heads"] == 4
    assert attention.attrs["output_shape"] == (2, 5, 16)
    assert not ({"softmax", "matmul"} & set(graph.op_counts()))


def test_edges_follow_the_data_flow(exported) -> None:
    graph = from_onnx(exported["residual_cnn"][2])
    graph.validate()
    by_name = {n.module: i for i, n in enumerate(graph.nodes) if n.module}
    (add,) = [i for i, n in enumerate(graph.nodes) if n.op_type == "add"]
    sources = {graph.nodes[p].op_type for p in graph.predecessors(add)}
    assert sources == {"relu", "batchnorm"}  # the skip branch and the residual branch
    assert by_name["bn2"] in graph.predecessors(add)
    assert graph.predecessors(by_name["fc"]) and graph.nodes[graph.output_nodes()[0]].op_type == "output"
    reachable = _reachable(graph, graph.input_nodes())
    assert reachable == set(range(graph.num_nodes))


def _reachable(graph: ComputationalGraph, starts: list[int]) -> set[int]:
    seen, frontier = set(starts), list(starts)
    while frontier:
        for nxt in graph.successors(frontier.pop()):
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    return seen


# ----------------------------------------------------------------------------- hand-built models
def _model(nodes, inputs, outputs, initializers=(), opsets=(("", 17),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "hand_made", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def _tensor(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)


def _custom_op_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("FancyMix", ["c"], ["m"], name="mix", domain="com.example"),
        helper.make_node("Relu", ["m"], ["y"], name="relu"),
    ]
    return _model(nodes, [x], [y], [_tensor("w", (4, 3, 3, 3))], opsets=(("", 17), ("com.example", 1)))


def test_unknown_op_is_kept_under_its_name() -> None:
    graph = from_onnx(_custom_op_model())
    assert [n.op_type for n in graph.nodes] == ["input", "conv2d", "fancymix", "relu", "output"]
    mix = graph.nodes[2]
    assert not mix.known and mix.attrs["onnx_op"] == "com.example::FancyMix"
    assert graph.edges == [(0, 1), (1, 2), (2, 3), (3, 4)]
    assert graph.summary().unknown_ops == ("fancymix",)
    assert graph.nodes[1].attrs["output_shape"] == (1, 4, 8, 8)


def test_shape_plumbing_is_folded_and_edges_bridged() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=0, end=1),
        helper.make_node("Constant", [], ["minus1"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["s", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["flat"], name="flatten_it"),
        helper.make_node("MatMul", ["flat", "w"], ["mm"], name="fc"),
        helper.make_node("Add", ["mm", "b"], ["y"], name="fc_bias"),
    ]
    model = _model(nodes, [x], [y], [_tensor("w", (12, 5)), _tensor("b", (5,))])
    graph = from_onnx(model)
    assert [n.op_type for n in graph.nodes] == ["input", "reshape", "linear", "output"]
    assert graph.edges == [(0, 1), (1, 2), (2, 3)]
    linear = graph.nodes[2]
    assert linear.attrs["bias"] is True and linear.num_params == 12 * 5 + 5
    assert linear.attrs["weight_shape"] == (5, 12) and linear.attrs["output_shape"] == (2, 5)


def test_accepts_path_str_bytes_and_model_proto(tmp_path: Path) -> None:
    model = _custom_op_model()
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    graphs = [from_onnx(path), from_onnx(str(path)), from_onnx(path.read_bytes()), from_onnx(model)]
    assert graphs[0].name == graphs[1].name == "custom"
    assert len({g.to_json() for g in graphs[:2]}) == 1
    assert all(g.op_counts() == graphs[0].op_counts() and g.edges == graphs[0].edges for g in graphs)
    assert from_onnx(model, name="renamed").name == "renamed"


# ----------------------------------------------------------------------------- errors
def test_missing_file_raises(tmp_path: Path) -> None:
    missing = tmp_path / "nope.onnx"
    with pytest.raises(AdapterError, match=r"ONNX file not found: .*nope\.onnx"):
        from_onnx(missing)


def test_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="is a directory"):
        from_onnx(tmp_path)


def test_corrupt_bytes_raise() -> None:
    with pytest.raises(AdapterError, match="is not a valid ONNX model"):
        from_onnx(b"\x00\x01 definitely not protobuf \xff\xfe")


def test_truncated_file_raises_naming_the_file(tmp_path: Path) -> None:
    data = _custom_op_model().SerializeToString()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AdapterError, match=r"truncated\.onnx' is not a valid ONNX model: .*truncated"):
        from_onnx(path)


def test_empty_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(AdapterError, match=r"empty\.onnx' is not a valid ONNX model: it is empty"):
        from_onnx(path)


@pytest.mark.parametrize("bad", [42, None, ["model.onnx"], torch.nn.Linear(2, 2)])
def test_wrong_type_raises(bad) -> None:
    with pytest.raises(AdapterTypeError, match="from_onnx expects a path to an .onnx file"):
        from_onnx(bad)


def test_model_failing_the_checker_raises(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    model = _model([helper.make_node("Relu", ["undefined_tensor"], ["y"])], [x], [y])
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    with pytest.raises(AdapterError, match=r"broken\.onnx' fails onnx\.checker: .*undefined_tensor"):
        from_onnx(path)


def test_model_without_nodes_raises() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    with pytest.raises(AdapterError, match="has no nodes"):
        from_onnx(_model([], [x], [x]))


def test_export_rejects_non_modules(tmp_path: Path) -> None:
    with pytest.raises(AdapterTypeError, match="torch.nn.Module"):
        export_onnx("resnet", (1, 3, 8, 8), tmp_path / "x.onnx")

