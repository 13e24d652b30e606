"""The ``nasassist graph`` command on file-defined, importable and cell models."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from nasassist_plugins.cli import main
from nasassist_plugins.graph import ComputationalGraph

MODEL_FILE = textwrap.dedent(
    """
    import torch.nn as nn
    import torch.nn.functional as F

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x):
            return self.fc(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))

    def make_net():
        return Net()

    NOT_A_MODEL = 3
    """
)


@pytest.fixture()
def model_file(tmp_path):
    path = tmp_path / "my_model.py"
    path.write_text(MODEL_FILE)
    return path


def test_graph_command_prints_summary_and_writes_json(model_file, tmp_path, capsys):
    out = tmp_path / "graph.json"
    assert main(["graph", f"{model_file}:Net", "--input-shape", "1,3,32,32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parameters" in printed and "314" in printed and "one-pass" in printed
    graph = ComputationalGraph.from_json(out)
    assert graph.num_parameters == 314
    assert json.loads(out.read_text())["format"] == "nasassist.graph"


@pytest.mark.parametrize("engine", ["matplotlib", "auto"])
def test_graph_command_accepts_factories_and_draws_png(model_file, tmp_path, engine, png_content):
    out = tmp_path / "graph.png"
    argv = ["graph", f"{model_file}:make_net", "--input-shape", "1x3x16x16", "--out", str(out), "--nodes"]
    assert main([*argv, "--engine", engine]) == 0
    png_content(out, min_width=150, min_height=300)


def test_graph_command_on_importable_module(capsys):
    assert main(["graph", "models:NestedMLP", "--input-shape", "2,20"]) == 0
    assert "linear 3" in capsys.readouterr().out


def test_graph_command_on_nb201_cell(capsys):
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    assert main(["graph", f"nb201:{arch}"]) == 0
    assert "nb201-cell" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["graph", "{file}:Nope", "--input-shape", "1,3,32,32"], "has no attribute 'Nope'"),
        (["graph", "{file}:NOT_A_MODEL", "--input-shape", "1,3,32,32"], "not a torch.nn.Module"),
        (["graph", "{file}:Net"], "--input-shape"),
        (["graph", "{file}:Net", "--input-shape", "1,3,a"], "comma-separated integers"),
        (["graph", "{file}:Net", "--input-shape", "1,1,32,32"], "failed on an example input of shape"),
        (["graph", "missing.py:Net", "--input-shape", "1,3,32,32"], "model file not found"),
        (["graph", "nb201:|bogus~0|", "--input-shape", "1,3,32,32"], "invalid nb201 cell"),
        (["graph", "{file}:Net", "--input-shape", "1,3,32,32", "--out", "g.txt"], "must end in .json or .png"),
        (["graph", "nonsense"], "cannot understand SPEC"),
    ],
)
def test_graph_command_errors_are_one_clear_line(model_file, capsys, argv, message):
    argv = [a.replace("{file}", str(model_file)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-m", "nasassist_plugins.cli", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("nasassist ")
