"""The API reference builds from the docstrings, and a broken reference fails the build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytest.importorskip("sphinx", reason="the docs extra is not installed (pip install -e '.[docs]')")


def _env(out: Path) -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable, "NASASSIST_DOCS_OUT": str(out), "OMP_NUM_THREADS": "1"}


@pytest.mark.slow  # ~1 min: imports every module; CI runs it (no -m filter there)
def test_docs_build_without_warnings(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts" / "docs.sh")], cwd=REPO, env=_env(tmp_path),
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "docs: built" in result.stdout
    html = tmp_path / "html"
    optuna_page = (html / "api" / "optuna.html").read_text()
    for name in ("NASAssistSampler", "NASAssistPruner", "report_model"):
        assert f'id="nasassist_plugins.optuna.{name}"' in optuna_page, name
    graph_page = (html / "api" / "graph.html").read_text()
    assert 'id="nasassist_plugins.graph.ComputationalGraph"' in graph_page
    assert 'id="nasassist_plugins.graph.draw.draw_graph"' in graph_page
    # a short-name reference (:class:`ComputationalGraph` in the adapters' docstrings) links to the class
    assert 'href="graph.html#nasassist_plugins.graph.ComputationalGraph"' in (html / "api" / "adapters.html").read_text()


def test_a_broken_reference_fails_the_build(tmp_path):
    """The same configuration on a one-page site whose only page names a missing class."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "docs" / "conf.py", src / "conf.py")
    (src / "index.rst").write_text(
        "Broken\n======\n\nSee :class:`nasassist_plugins.graph.NoSuchGraph`.\n\n"
        ".. automodule:: nasassist_plugins.errors\n   :members: ConfigurationError\n"
    )
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-n", "-W", "--keep-going", "-q",
                             str(src), str(out / "html")], env=_env(out), capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "reference target not found: nasassist_plugins.graph.NoSuchGraph" in result.stderr
