"""The packaged digits learning curves (benchmarks/generate_digits_curves.py) load and look sane."""

from __future__ import annotations

import numpy as np
import pytest

from nasassist_plugins.adapters.cells import parse_nb201_arch
from nasassist_plugins.data import DIGITS_CURVES_FILE, load_digits_curves


def test_loader_shapes_and_ranges():
    c = load_digits_curves()
    assert c.n_archs >= 200 and c.n_epochs >= 30
    assert c.val_acc.shape == c.train_loss.shape == c.epoch_time.shape == (c.n_archs, c.n_epochs)
    assert c.n_params.shape == (c.n_archs,) and (c.n_params > 0).all()
    assert len(set(c.arch_strs)) == c.n_archs >= 200
    for arch in c.arch_strs:
        parse_nb201_arch(arch)
    assert np.isfinite(c.val_acc).all() and (c.val_acc >= 0).all() and (c.val_acc <= 1).all()
    assert np.isfinite(c.train_loss).all() and (c.train_loss >= 0).all()
    assert (c.epoch_time > 0).all()
    # real training: most networks learn the task, and they do not all end alike
    final = c.val_acc[:, -1]
    assert np.median(final) > 0.9 and final.std() > 0.005
    assert (c.val_acc[:, -1] > c.val_acc[:, 0]).mean() > 0.9
    for key in ("dataset", "split", "optimiser", "epochs", "seed", "torch_version", "generation_command"):
        assert key in c.metadata
    assert c.metadata["epochs"] == c.n_epochs


def test_file_has_no_pickles_and_is_small():
    from importlib import resources

    ref = resources.files("nasassist_plugins.data").joinpath(DIGITS_CURVES_FILE)
    with resources.as_file(ref) as p:
        assert p.stat().st_size < 1_000_000
        with np.load(p, allow_pickle=False) as z:
            for key in z.files:
                assert z[key].dtype != object


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate_digits_curves"):
        load_digits_curves(tmp_path / "nope.npz")


@pytest.mark.parametrize("name", ["digits_nb201", "digits_mlp", "digits_cnn"])
def test_every_shipped_curve_set_loads_and_differs_in_its_training_setup(name):
    import json

    from nasassist_plugins.data import CURVE_SETS, load_curve_set

    c = load_curve_set(name)
    assert c.n_runs >= 150 and c.n_epochs >= 30
    assert c.val_acc.shape == c.train_loss.shape == c.epoch_time.shape == (c.n_runs, c.n_epochs)
    assert np.isfinite(c.val_acc).all() and (c.val_acc >= 0).all() and (c.val_acc <= 1).all()
    final = c.val_acc[:, -1]
    assert np.median(final) > 0.8 and final.std() > 0.005  # real training, not all alike
    assert c.metadata["generation_command"].startswith(f"python {CURVE_SETS[name][1]}")
    if name != "digits_nb201":
        configs = [json.loads(s) for s in c.configs]
        assert len({json.dumps(s, sort_keys=True) for s in configs}) == c.n_runs
        schedule = {"digits_mlp": "constant", "digits_cnn": "step"}[name]
        optimiser = {"digits_mlp": "adam", "digits_cnn": "sgd"}[name]
        assert all(s["schedule"]["kind"] == schedule and s["optimiser"]["name"] == optimiser for s in configs)
        file_name = CURVE_SETS[name][0]
        from importlib import resources

        with resources.as_file(resources.files("nasassist_plugins.data").joinpath(file_name)) as p:
            assert p.stat().st_size < 1_000_000
            with np.load(p, allow_pickle=False) as z:
                assert all(z[k].dtype != object for k in z.files)


def test_unknown_curve_set_is_a_configuration_error():
    from nasassist_plugins.data import load_curve_set
    from nasassist_plugins.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="digits_mlp"):
        load_curve_set("cifar_everything")
