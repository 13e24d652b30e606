"""Malformed input gets one clear NASAssistError (CLI: exit 2, one line), never a traceback.

Regression tests for the cases found by trying the public surface as a careless or hostile
user would (graph JSON, predictor weights files, model SPECs and input shapes), plus
Hypothesis fuzzing of the same entry points with a fixed seed so CI runs the same inputs.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from nasassist_plugins.cli import main
from nasassist_plugins.errors import AdapterError, GraphError, NASAssistError, PredictorError
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor import Predictor

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


# ----------------------------------------------------------------------------- graph JSON
def _small_graph() -> ComputationalGraph:
    graph = ComputationalGraph(name="g")
    a = graph.add_node("input", output_shape=(1, 3, 8, 8))
    b = graph.add_node("conv2d", in_channels=3, out_channels=4, kernel_size=(3, 3), stride=(1, 1), groups=1,
                       bias=True, num_params=112, output_shape=(1, 4, 6, 6))
    c = graph.add_node("output", output_shape=(1, 4, 6, 6))
    graph.add_edge(a, b)
    graph.add_edge(b, c)
    return graph


@pytest.mark.parametrize("value", [math.nan, math.inf, 1e308, -3, "x", [1, 2], True, 2**60])
def test_graph_json_refuses_bad_counts(value) -> None:
    data = _small_graph().to_dict()
    data["nodes"][1]["attrs"]["out_channels"] = value
    text = json.dumps(data)  # NaN/inf become the bare words NaN/Infinity, which json.loads accepts
    with pytest.raises(GraphError, match="out_channels"):
        ComputationalGraph.from_json(text)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["nodes"][1]["attrs"].update(kernel_size=[3, "a"]), "kernel_size"),
        (lambda d: d["nodes"][1]["attrs"].update(output_shape=[1] * 40), "entries"),
        (lambda d: d["nodes"][1].pop("op_type"), "op_type"),
        (lambda d: d.update(edges=[[0, 1], [1, 2], [2, 0]]), "cycle"),
        (lambda d: d.update(edges=[[0, 7]]), "names node"),
        (lambda d: d.update(edges=[[0, 1.5]]), "pair of node indices"),
        (lambda d: d.update(nodes="abc"), "lists"),
        (lambda d: d.update(nodes=[], edges=[]), "empty"),
        (lambda d: d.update(metadata={"a": [float("nan")]}), "finite"),
        (lambda d: d["nodes"][1].update(attrs=[1]), "attrs"),
        (lambda d: d["nodes"][1]["attrs"].update(bias="yes"), "bias"),
    ],
)
def test_graph_json_refuses_malformed_structure(edit, message) -> None:
    data = _small_graph().to_dict()
    edit(data)
    with pytest.raises(GraphError, match=message):
        ComputationalGraph.from_json(json.dumps(data))


def test_graph_json_round_trip_and_deep_nesting(tmp_path: Path) -> None:
    graph = _small_graph()
    assert ComputationalGraph.from_json(graph.to_json()) == graph
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(GraphError):
        ComputationalGraph.from_json('{"format": "nasassist.graph", "version": 1, "metadata": ' + deep + "}")
    with pytest.raises(GraphError, match="not found"):
        ComputationalGraph.from_json(tmp_path / "absent.json")
    with pytest.raises(GraphError, match="JSON string or a file path"):
        ComputationalGraph.from_json(None)  # type: ignore[arg-type]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@seed(1907)
@FUZZ
@given(key=st.sampled_from(["in_channels", "kernel_size", "output_shape", "bias", "num_params", "stride", "anything"]),
       value=_JSON)
def test_fuzzed_node_attributes_load_or_fail_clearly(key, value) -> None:
    data = _small_graph().to_dict()
    data["nodes"][1]["attrs"][key] = value
    try:
        graph = ComputationalGraph.from_json(json.dumps(data))
    except GraphError:
        return
    # accepted: every figure the graph reports is a finite number
    assert math.isfinite(graph.flops) and graph.num_parameters >= 0
    graph.summary()


@seed(1908)
@FUZZ
@given(document=_JSON)
def test_fuzzed_graph_documents_load_or_fail_clearly(document) -> None:
    try:
        ComputationalGraph.from_dict(document if isinstance(document, dict) else {"nodes": document})
    except GraphError:
        pass


# ----------------------------------------------------------------------------- weights files
@pytest.fixture(scope="module")
def small_weights(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "small.safetensors"
    Predictor(hidden_dim=8, num_gin_layers=1, num_experts=1, ensemble_size=1).save(path)
    return path


def _rewrite_header(source: Path, target: Path, edit) -> Path:
    """Copy a safetensors file with its NAS-Assist JSON header edited (tensor data kept)."""
    raw = source.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    outer = json.loads(raw[8 : 8 + size])
    header = json.loads(outer["__metadata__"]["nasassist"])
    edit(header)
    outer["__metadata__"]["nasassist"] = json.dumps(header)
    encoded = json.dumps(outer).encode()
    encoded += b" " * (-len(encoded) % 8)
    target.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + size :])
    return target


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda h: h["config"].pop("hidden_dim"), "lacks"),
        (lambda h: h["config"].update(surprise=1), "unknown keys"),
        (lambda h: h["config"].update(hidden_dim="64"), "integer"),
        (lambda h: h.update(config=[1, 2]), "JSON object"),
        (lambda h: h["config"].update(hidden_dim=8 * 4096), "outside"),
        (lambda h: h["config"].update(ensemble_size=4096), "outside"),
        (lambda h: h["config"].update(hidden_dim=16), "does not match|needs"),
        (lambda h: h.update(target_scale=float("nan")), "finite"),
        (lambda h: h.update(target_scale=0), "must not be 0"),
        (lambda h: h.update(target_offset="1"), "finite"),
        (lambda h: h.update(unknown_op_ids={"x": -1}), "op id"),
        (lambda h: h.update(version=99), "version"),
        (lambda h: h.update(format="other"), "format"),
        (lambda h: h.update(extra=1), "unknown keys"),
        (lambda h: h["config"].update(extra_feature_names=["a"]), "names for 0"),
    ],
)
def test_crafted_weights_headers_are_refused_before_allocation(small_weights, tmp_path, edit, message) -> None:
    crafted = _rewrite_header(small_weights, tmp_path / "crafted.safetensors", edit)
    with pytest.raises(PredictorError, match=message):
        Predictor.load(crafted)


def test_weights_files_that_are_not_weights(small_weights, tmp_path) -> None:
    for bad, message in [
        (None, "file path"),
        ("", "file path"),
        (tmp_path / "absent.safetensors", "not found"),
        (tmp_path, "not found"),
    ]:
        with pytest.raises(PredictorError, match=message):
            Predictor.load(bad)  # type: ignore[arg-type]
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(small_weights.read_bytes()[:-100])
    with pytest.raises(PredictorError):
        Predictor.load(truncated)
    text = tmp_path / "text.safetensors"
    text.write_text("hello")
    with pytest.raises(PredictorError, match="safetensors"):
        Predictor.load(text)
    loaded = Predictor.load(small_weights)  # the honest file still loads
    assert loaded.config["hidden_dim"] == 8


def test_weights_with_nan_tensors_are_refused(small_weights, tmp_path) -> None:
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(str(small_weights), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(small_weights))
    key = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    poisoned = tmp_path / "nan.safetensors"
    save_file(tensors, str(poisoned), metadata=metadata)
    with pytest.raises(PredictorError, match="NaN or inf"):
        Predictor.load(poisoned)


@seed(1909)
@FUZZ
@given(key=st.sampled_from(["hidden_dim", "num_gin_layers", "num_experts", "ensemble_size", "graph_features",
                            "extra_features", "extra_feature_names"]),
       value=_JSON)
def test_fuzzed_weights_config_values(small_weights, tmp_path, key, value) -> None:
    crafted = _rewrite_header(small_weights, tmp_path / "fuzz.safetensors", lambda h: h["config"].update({key: value}))
    try:
        predictor = Predictor.load(crafted)
    except PredictorError:
        return
    assert predictor.config[key] == value or key == "extra_feature_names"


# ----------------------------------------------------------------------------- SPECs and shapes
MODEL_FILE = '''
import sys
import torch.nn as nn

class Exits(nn.Module):
    def __init__(self):
        super().__init__()
        sys.exit(0)

class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)

class Fails(nn.Module):
    def forward(self, x):
        raise ValueError("no luck")
'''


@pytest.fixture()
def model_file(tmp_path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODEL_FILE)
    return path


@pytest.mark.parametrize(
    "spec, shape, message",
    [
        ("Exits", "1,3,8,8", "sys.exit"),
        ("Small", "1,3,60000,60000", "input budget"),
        ("Small", f"1,3,{2**63},2", "input budget"),
        ("Small", "1,3,8,8,1,1,1,1,1", "at most 8"),
        ("Small", "1,3,-8,8", "positive"),
        ("Small", "1,three,8", "integers"),
        ("Fails", "1,3,8,8", "no luck"),
        ("Missing", "1,3,8,8", "no attribute"),
    ],
)
def test_bad_specs_and_shapes_give_one_line_and_exit_2(model_file, capsys, spec, shape, message) -> None:
    code = main(["graph", f"{model_file}:{spec}", "--input-shape", shape])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err, err


def test_unwritable_output_is_one_line(model_file, capsys) -> None:
    code = main(["graph", f"{model_file}:Small", "--input-shape", "1,3,8,8", "--out", "/proc/none/graph.png"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "/proc/none" in err[0]


@seed(1910)
@FUZZ
@given(text=st.text(alphabet="0123456789,x -()[]", max_size=40))
def test_fuzzed_input_shapes(text) -> None:
    from nasassist_plugins.cli.spec import parse_input_shape

    try:
        shape = parse_input_shape(text)
    except AdapterError:
        return
    if shape is not None:
        assert all(isinstance(d, int) and d > 0 for d in shape) and len(shape) <= 8
        elements = math.prod(shape)
        assert elements * 4 <= 1024 * 2**20


def test_library_errors_stay_in_one_hierarchy() -> None:
    import nasassist_plugins.errors as errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), NASAssistError)
    assert issubclass(errors.ConfigurationError, ValueError)


def test_from_torch_failure_names_the_model() -> None:
    from nasassist_plugins.adapters import from_torch

    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("broken forward")

    with pytest.raises(AdapterError, match="Broken"):
        from_torch(Broken(), (1, 3, 8, 8))
