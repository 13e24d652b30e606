"""The adapters/ folder must install as nasassist_plugins.adapters, never as top-level `adapters`."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_public_api_imports():
    from nasassist_plugins.adapters import darts_network, from_onnx, from_torch, nb101_network, nb201_network  # noqa: F401
    from nasassist_plugins.graph import ComputationalGraph  # noqa: F401

    adapters = importlib.import_module("nasassist_plugins.adapters")
    assert Path(adapters.__file__).resolve().parent == REPO / "adapters"


@pytest.mark.slow
def test_wheel_ships_adapters_under_the_namespace(tmp_path):
    pytest.importorskip("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("nasassist_plugins-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "nasassist_plugins/adapters/__init__.py" in names
    assert "nasassist_plugins/adapters/torch_adapter.py" in names
    assert "nasassist_plugins/adapters/cells/__init__.py" in names
    assert "nasassist_plugins/graph/computational_graph.py" in names
    assert "nasassist_plugins/predictor/weights/default.safetensors" in names
    assert "nasassist_plugins/hardware/data/latency_nb201.json" in names  # the device latency predictor
    assert "nasassist_plugins/data/digits_nb201_curves.npz" in names  # learning curves the pruning benchmark replays
    assert "nasassist_plugins/data/digits_mlp_curves.npz" in names and "nasassist_plugins/data/digits_cnn_curves.npz" in names
    assert "nasassist_plugins/curves/weights/curve_pfn.safetensors" in names  # the learned curve extrapolator
    assert "nasassist_plugins/mutation/sandbox/worker.py" in names and "nasassist_plugins/optuna/sampler.py" in names
    assert not [n for n in names if n.startswith("adapters/")], "a top-level `adapters` package would shadow PyPI's"
    top_level = {n.split("/")[0] for n in names if not n.endswith(".dist-info/") and "/" in n}
    assert top_level <= {"nasassist_plugins"} | {n.split("/")[0] for n in names if ".dist-info" in n}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "nasassist = nasassist_plugins.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.mark.parametrize("hook", ["build_editable", "build_wheel"])
def test_packaging_builds_without_warnings(tmp_path, hook):
    """setuptools' own build hooks (what `pip install -e .` and `python -m build` call) raise no
    warning about our configuration: no deprecated license table, no data folder missing from
    ``packages``, no editable-install notice."""
    pytest.importorskip("setuptools", minversion="77")
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c",
         f"import sys, setuptools.build_meta as b; print(b.{hook}(sys.argv[1]))", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    python_warnings = re.findall(r"^\S+:\d+: \w+: .*$", result.stderr, flags=re.M)
    assert python_warnings == []
    assert "is absent from the `packages` configuration" not in result.stdout + result.stderr
    (wheel,) = tmp_path.glob("nasassist_plugins-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names)
