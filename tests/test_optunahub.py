"""The OptunaHub package folder (packaging/optunahub/package/samplers/nasassist).

It must follow OptunaHub's registry layout (``__init__.py``, ``README.md`` with the front
matter the registry reads, ``LICENSE``, ``example.py``), load with optunahub's own local
loader, re-export the very classes of the installed package, and its example must run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REGISTRY_ROOT = REPO / "packaging" / "optunahub" / "package"
PACKAGE = "samplers/nasassist"
FOLDER = REGISTRY_ROOT / PACKAGE
FRONT_MATTER_KEYS = ("author", "title", "description", "tags", "optuna_versions", "license")


def _front_matter(readme: Path) -> dict[str, str]:
    text = readme.read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, flags=re.S)
    assert match, f"{readme} must open with a front matter block between --- lines"
    fields = {}
    for line in match.group(1).splitlines():
        key, sep, value = line.partition(":")
        assert sep, f"front matter line without a key: {line!r}"
        fields[key.strip()] = value.strip()
    return fields


def test_folder_has_the_registry_layout():
    for name in ("__init__.py", "README.md", "LICENSE", "example.py"):
        assert (FOLDER / name).is_file(), f"{FOLDER / name} is missing"
    fields = _front_matter(FOLDER / "README.md")
    assert set(FRONT_MATTER_KEYS) <= set(fields), fields
    tags = [t.strip() for t in fields["tags"].strip("[]").split(",")]
    assert "sampler" in tags and "pruner" in tags  # a package under samplers/ must carry the "sampler" tag
    versions = [v.strip().strip("'\"") for v in fields["optuna_versions"].strip("[]").split(",")]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in versions), versions
    assert "Apache" in fields["license"]
    assert (FOLDER / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
    readme = (FOLDER / "README.md").read_text()
    assert 'optunahub.load_module(package="samplers/nasassist")' in readme and "NASAssistPruner" in readme


def test_loads_with_optunahub_and_reexports_the_package_classes():
    optunahub = pytest.importorskip("optunahub", reason="pip install -e '.[ecosystem]'")
    from nasassist_plugins.optuna import NASAssistPruner, NASAssistSampler

    module = optunahub.load_local_module(PACKAGE, registry_root=str(REGISTRY_ROOT))
    assert module.NASAssistSampler is NASAssistSampler
    assert module.NASAssistPruner is NASAssistPruner
    assert sorted(module.__all__) == ["NASAssistPruner", "NASAssistSampler"]


@pytest.mark.slow
def test_example_runs(tmp_path):
    pytest.importorskip("optunahub", reason="pip install -e '.[ecosystem]'")
    # optunahub.load_module fetches the registry from GitHub; here it reads the local folder instead.
    runner = textwrap.dedent(
        f"""
        import runpy, optunahub
        def load_module(package, **kwargs):
            assert package == {PACKAGE!r}, package
            return optunahub.load_local_module(package, registry_root={str(REGISTRY_ROOT)!r})
        optunahub.load_module = load_module
        runpy.run_path({str(FOLDER / "example.py")!r}, run_name="__main__")
        """
    )
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=600,
                            cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r"best val accuracy (\d\.\d+)", result.stdout)
    assert match and float(match.group(1)) > 0.2, result.stdout  # 10 classes: chance is 0.1
    assert "predicted:" in result.stdout and "None" not in result.stdout.split("predicted:")[1]
