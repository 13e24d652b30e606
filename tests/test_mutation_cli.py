"""``nasassist improve``: a real run prints the header, diff and explanation; bad input gets one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nasassist_plugins.cli import main

MODEL = Path(__file__).resolve().parent / "mutation_cli_model.py"


@pytest.mark.slow
def test_improve_prints_header_diff_and_explanation(capsys, tmp_path: Path) -> None:
    out_json = tmp_path / "result.json"
    code = main(["improve", f"{MODEL}:Net", "--input-shape", "1,3,16,16", "--max-iter", "1", "--quiet",
                 "--json", str(out_json), "--sandbox-timeout", "30"])
    assert code == 0
    text = capsys.readouterr().out
    header = text.splitlines()[0]
    assert header.startswith("Net: predicted ") and " → " in header and "parameters" in header
    data = json.loads(out_json.read_text())
    assert len(data["history"]) == 1 and all(h["origin"].startswith("offline:") for h in data["history"])
    if data["predicted"] > data["baseline_predicted"]:
        assert f"--- a/{MODEL.name}" in text and "Explanation: " in text
    else:
        assert "source unchanged" in text


def test_improve_reports_bad_input_on_one_line(capsys, tmp_path: Path) -> None:
    assert main(["improve", "missing.py:Net", "--input-shape", "1,3,16,16"]) == 2
    assert "model file not found: missing.py" in capsys.readouterr().err
    assert main(["improve", f"{MODEL}", "--input-shape", "1,3,16,16"]) == 2
    assert "file.py:ClassName" in capsys.readouterr().err
    assert main(["improve", f"{MODEL}:Net", "--input-shape", "1,3,16,16", "--llm-model", "m"]) == 2
    assert "--llm-model and --base-url go together" in capsys.readouterr().err
    assert main(["improve", f"{MODEL}:Net", "--input-shape", "1,a,16"]) == 2
    assert "--input-shape" in capsys.readouterr().err
