"""``nasassist train --fused``: the leave-family-out report can be skipped (``--no-report``)."""

from __future__ import annotations

import json

import pytest

from nasassist_plugins.cli import main
from nasassist_plugins.predictor.training import fused


class _Saved:
    training_info: dict = {"timings": {}}

    def save(self, path):
        path.write_bytes(b"weights")
        return path


@pytest.mark.parametrize("flag, evaluate", [([], True), (["--no-report"], False)])
def test_no_report_skips_the_leave_family_out_evaluation(tmp_path, monkeypatch, flag, evaluate) -> None:
    seen = {}

    def fake_load_tasks(data, suite, families, progress=False):
        seen["families"] = list(families)
        return ["task"], ["graph"]

    def fake_train_fused(tasks, graphs, config, *, evaluate=True, progress=False):
        seen["evaluate"] = evaluate
        return _Saved(), {"timings": {}}

    monkeypatch.setattr(fused, "load_tasks", fake_load_tasks)
    monkeypatch.setattr(fused, "train_fused", fake_train_fused)
    suite = tmp_path / "suite"
    suite.mkdir()
    out = tmp_path / "out"
    status = main(["train", "--fused", "--data", str(tmp_path), "--suite", str(suite), "--out", str(out),
                   "--families", "nb101,nb301", *flag])
    assert status == 0
    assert seen == {"families": ["nb101", "nb301"], "evaluate": evaluate}
    assert (out / "predictor.safetensors").read_bytes() == b"weights"
    assert json.loads((out / "fused_report.json").read_text())["timings"]["load_and_trace_s"] >= 0
