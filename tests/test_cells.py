"""Benchmark cells as PyTorch networks: shapes, tracing, parameter counts, parsers, samplers.

Tests that compare against published benchmark numbers read ``../shared/data`` (or
``$NASASSIST_DATA``) and skip with a reason when it is absent.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.fx as fx
from torch import nn

from nasassist_plugins.adapters.cells import (
    Zero,
    darts_network,
    nb101_network,
    nb201_network,
    parse_nb201_arch,
    parse_tnb101_arch,
    random_darts_genotype,
    random_nb101_spec,
    random_nb201_arch,
    random_tnb101_arch,
    tnb101_network,
    validate_darts_genotype,
    validate_nb101_spec,
)
from nasassist_plugins.adapters.cells.nb101 import _nb101_param_count

DATA_DIR = Path(os.environ.get("NASASSIST_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")

NB201_ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
NB201_NO_CONV = "|avg_pool_3x3~0|+|skip_connect~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"
NB201_MIXED = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"

# A 7-vertex, 9-edge NB101 cell using every op, an input->output edge, three vertices
# concatenated at the output (uneven widths) and a truncated edge (2 -> 5).
NB101_ADJ = [
    [0, 1, 1, 0, 0, 0, 1],
    [0, 0, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
NB101_OPS_LIST = [
    "input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu", "output",
]  # fmt: skip

DARTS_V2_NORMAL = [
    ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
    ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
]  # fmt: skip
DARTS_V2_REDUCE = [
    ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
    ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
]  # fmt: skip


def _data_file(relative: str) -> Path:
    path = DATA_DIR / relative
    if not path.is_file():
        pytest.skip(f"benchmark data {relative} not found under {DATA_DIR} (set NASASSIST_DATA)")
    return path


def _read_csv(relative: str) -> list[dict[str, str]]:
    with _data_file(relative).open(newline="") as handle:
        return list(csv.DictReader(handle))


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """Run this module's small forward passes on one intra-op thread.

    On a shared 2-core machine OpenMP threads wait on each other for tiny tensors
    (a 32x32 conv took ~50 ms with 2 threads and ~0.3 ms with 1); restored afterwards.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class _LeafTracer(fx.Tracer):
    """The adapters' tracing rule: childless modules (and attention) are leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, nn.MultiheadAttention) or not any(True for _ in m.children())


SMALL_BUILDERS = {
    "nb101": lambda: nb101_network(NB101_ADJ, NB101_OPS_LIST, stem_channels=16),
    "nb201": lambda: nb201_network(NB201_MIXED, cells_per_stage=2),
    "darts": lambda: darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, channels=8, layers=5),
    "tnb101": lambda: tnb101_network("64-41414-3_10_210"),
}


# ---------------------------------------------------------------------------- networks
DEFAULT_BUILDERS = {
    "nb101": (lambda: nb101_network(NB101_ADJ, NB101_OPS_LIST), 10),
    "nb201": (lambda: nb201_network(NB201_MIXED, num_classes=100), 100),
    "darts": (lambda: darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, num_classes=7), 7),
    "tnb101": (lambda: tnb101_network("64-41414-3_11_212"), 100),
    "tnb101-zero": (lambda: tnb101_network("64-41414-0_00_000", num_classes=5), 5),
    "tnb101-basic": (lambda: tnb101_network("64-4124-basic", num_classes=3), 3),
}


@pytest.mark.parametrize("name", sorted(DEFAULT_BUILDERS))
def test_forward_shape_default_sizes_on_meta(name):
    # Shape propagation at the benchmark sizes without the compute (meta tensors).
    build, classes = DEFAULT_BUILDERS[name]
    with torch.device("meta"):
        model = build()
        out = model(torch.empty(2, 3, 32, 32))
    assert out.shape == (2, classes)


@pytest.mark.parametrize(
    "build, classes",
    [
        (lambda: nb101_network(NB101_ADJ, NB101_OPS_LIST, stem_channels=16), 10),
        (lambda: nb201_network(NB201_MIXED, num_classes=100), 100),
        (lambda: darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, channels=8, layers=5, num_classes=7), 7),
        (lambda: tnb101_network("16-41414-3_11_212"), 100),
        (lambda: tnb101_network("16-41414-0_00_000", num_classes=5), 5),
        (lambda: tnb101_network("16-4124-basic", num_classes=3), 3),
    ],
    ids=["nb101", "nb201", "darts", "tnb101", "tnb101-zero", "tnb101-basic"],
)
def test_forward_shape(build, classes):
    # Real forward passes at reduced widths: CPU time on shared CI machines is scarce.
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, classes)
    assert torch.isfinite(out).all()


def test_in_channels_option():
    with torch.no_grad():
        nb201 = nb201_network(NB201_MIXED, channels=8, cells_per_stage=1, in_channels=1).eval()
        assert nb201(torch.randn(2, 1, 32, 32)).shape == (2, 10)
        nb101 = nb101_network(
            NB101_ADJ, NB101_OPS_LIST, stem_channels=8, in_channels=1, num_stacks=2, modules_per_stack=1
        )
        assert nb101.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    with torch.device("meta"):
        darts = darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, in_channels=4)
        assert darts(torch.empty(2, 4, 32, 32)).shape == (2, 10)
        tnb = tnb101_network("64-41414-3_11_212", in_channels=1)
        assert tnb(torch.empty(2, 1, 32, 32)).shape == (2, 100)


@pytest.mark.parametrize("name", sorted(SMALL_BUILDERS))
def test_fx_traceable_with_childless_leaves(name):
    torch.manual_seed(0)
    model = SMALL_BUILDERS[name]().eval()
    graph = _LeafTracer().trace(model)
    traced = fx.GraphModule(model, graph)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x))
    targets = {n.target for n in graph.nodes if n.op == "call_module"}
    # every called module is a standard nn layer or the Zero op
    for target in targets:
        assert type(model.get_submodule(target)).__module__.startswith("torch.nn") or isinstance(
            model.get_submodule(target), Zero
        ), target


@pytest.mark.parametrize("name", sorted(SMALL_BUILDERS))
def test_builds_on_meta_device(name):
    with torch.device("meta"):
        model = SMALL_BUILDERS[name]()
    assert all(p.is_meta for p in model.parameters())


def test_readable_module_names():
    nb201 = dict(nb201_network(NB201_MIXED, cells_per_stage=1).named_modules())
    expected = {"stem.conv", "cells.0.edges.1<-0.conv", "cells.0.edges.3<-2", "cells.1.downsample.conv", "classifier"}
    assert expected <= set(nb201)
    darts = dict(darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, channels=8, layers=3).named_modules())
    assert {"cells.1.preprocess0", "cells.0.edges.2<-0.dw1", "cells.2.preprocess0.conv1"} <= set(darts)
    nb101 = dict(nb101_network(NB101_ADJ, NB101_OPS_LIST, stem_channels=8).named_modules())
    expected = {"stacks.0.cells.0.proj.1<-0.conv", "stacks.0.cells.0.proj.6<-0", "stacks.0.cells.2.vertices.3"}
    assert expected | {"stacks.1.downsample", "stacks.1.cells.0.vertices.5.conv"} <= set(nb101)
    tnb = dict(tnb101_network("64-41414-0_10_213").named_modules())
    assert isinstance(tnb["layers.0.0.edges.1<-0"], Zero)
    assert isinstance(tnb["layers.0.1.edges.2<-0"], nn.Identity)


def test_zero_op_shapes():
    x = torch.randn(2, 4, 7, 7)
    assert Zero(4, 4, 1)(x).shape == (2, 4, 7, 7)
    assert Zero(4, 4, 2)(x).shape == (2, 4, 4, 4)
    widened = Zero(4, 8, 2)(x)
    assert widened.shape == (2, 8, 4, 4) and not widened.any()
    assert list(Zero(4, 4, 1).children()) == []


# ---------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize(
    "arch, classes, expected",
    [
        (NB201_ALL_CONV, 10, 1_531_546),
        (NB201_NO_CONV, 10, 73_306),
        (NB201_ALL_CONV, 100, 1_537_396),
        (NB201_ALL_CONV, 120, 1_538_696),
    ],
)
def test_nb201_published_param_counts(arch, classes, expected):
    # NAS-Bench-201's published sizes: 0.0733 MB smallest, 1.5315 MB largest on CIFAR-10.
    with torch.device("meta"):
        model = nb201_network(arch, num_classes=classes)
    assert _num_params(model) == expected


@pytest.mark.shared_data
def test_nb201_param_counts_match_benchmark_table():
    rows = _read_csv("nb201/nb201_cifar10_zc_proxies_valacc.csv")
    for row in rows[:: max(1, len(rows) // 25)]:
        with torch.device("meta"):
            model = nb201_network(row["arch_str"])
        assert _num_params(model) == round(float(row["params"]) * 1e6), row["arch_str"]


def test_nb101_param_count_helper_matches_built_network():
    for adjacency, ops in [(NB101_ADJ, NB101_OPS_LIST), ([[0, 1], [0, 0]], ["input", "output"])]:
        with torch.device("meta"):
            model = nb101_network(adjacency, ops)
        assert _num_params(model) == _nb101_param_count(adjacency, ops)
        with torch.device("meta"):
            small = nb101_network(adjacency, ops, stem_channels=32, num_stacks=2, modules_per_stack=2, num_classes=3)
        assert _num_params(small) == _nb101_param_count(
            adjacency, ops, stem_channels=32, num_stacks=2, modules_per_stack=2, num_classes=3
        )


@pytest.mark.shared_data
def test_nb101_param_counts_match_benchmark():
    rows = _read_csv("nb101/nb101_30k_with_arch.csv")
    checked = rows[::20]
    assert len(checked) >= 1000
    mismatches = []
    for row in checked:
        count = _nb101_param_count(json.loads(row["adjacency"]), json.loads(row["ops"]))
        if count != int(row["trainable_parameters"]):
            mismatches.append((row["hash"], count, row["trainable_parameters"]))
    assert not mismatches, f"{len(mismatches)}/{len(checked)} rows differ, e.g. {mismatches[:3]}"
    # ... and the real modules agree with the helper (and so with the benchmark).
    for row in checked[:4]:
        with torch.device("meta"):
            model = nb101_network(json.loads(row["adjacency"]), json.loads(row["ops"]))
        assert _num_params(model) == int(row["trainable_parameters"]), row["hash"]


def _darts_rows() -> list[dict[str, str]]:
    return _read_csv("nb301/nb301_cifar10_zc.csv")


@pytest.mark.shared_data
def test_darts_genotypes_from_nb301_build_and_run():
    row = _darts_rows()[0]
    normal, reduce = json.loads(row["genotype_normal"]), json.loads(row["genotype_reduce"])
    model = darts_network(normal, reduce)  # the NB301 size builds on CPU ...
    assert model.genotype_normal == [tuple(pair) for pair in normal]
    torch.manual_seed(0)
    small = darts_network(normal, reduce, channels=8, layers=5).eval()  # ... and runs at a CI-friendly width
    with torch.no_grad():
        out = small(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.shared_data
def test_darts_param_counts_match_nb301_table():
    # NASLib's proxy table counted the NB301 network (C=32, 8 cells) with affine-free
    # BatchNorm inside the cell ops; everything else must match exactly.
    for row in _darts_rows()[::150]:
        with torch.device("meta"):
            model = darts_network(json.loads(row["genotype_normal"]), json.loads(row["genotype_reduce"]))
        op_bn = sum(
            p.numel()
            for name, m in model.named_modules()
            if ".edges." in name and isinstance(m, nn.BatchNorm2d)
            for p in m.parameters()
        )
        assert _num_params(model) - op_bn == round(float(row["params"]) * 1e6)


@pytest.mark.shared_data
def test_tnb101_param_counts_match_benchmark_table():
    # NASLib's table: encoder + linear head with 100 classes for class_object.
    rows = [r for r in _read_csv("tnb101/tnb101_micro_zc.csv") if r["task"] == "class_object"]
    for row in rows[:: max(1, len(rows) // 15)]:
        with torch.device("meta"):
            model = tnb101_network(row["tnb_arch_str"], num_classes=100)
        assert _num_params(model) == round(float(row["params"]) * 1e6), row["tnb_arch_str"]


# ---------------------------------------------------------------------------- samplers
def test_random_nb101_specs_are_valid_pruned_and_build():
    rng = np.random.default_rng(0)
    specs = [random_nb101_spec(rng) for _ in range(40)]
    for adjacency, ops in specs:
        assert validate_nb101_spec(adjacency, ops) == (adjacency, ops)  # already pruned
        assert sum(map(sum, adjacency)) <= 9 and len(ops) <= 7
        assert all(isinstance(v, int) for row in adjacency for v in row)
    assert len({json.dumps(s) for s in specs}) > 30
    with torch.device("meta"):
        for adjacency, ops in specs[:3]:
            assert _num_params(nb101_network(adjacency, ops)) == _nb101_param_count(adjacency, ops)
    assert random_nb101_spec(np.random.default_rng(5)) == random_nb101_spec(np.random.default_rng(5))


def test_random_nb201_and_tnb101_archs_parse_and_build():
    rng = np.random.default_rng(1)
    nb201 = [random_nb201_arch(rng) for _ in range(30)]
    tnb = [random_tnb101_arch(rng) for _ in range(30)]
    for arch in nb201:
        parse_nb201_arch(arch)
    for arch in tnb:
        assert str(parse_tnb101_arch(arch)) == arch and arch.startswith("64-41414-")
    assert len(set(nb201)) > 20 and len(set(tnb)) > 20
    with torch.device("meta"):
        nb201_network(nb201[0])
        tnb101_network(tnb[0])


def test_random_darts_genotypes_validate_and_build():
    rng = np.random.default_rng(2)
    for _ in range(20):
        normal, reduce = random_darts_genotype(rng)
        assert validate_darts_genotype(normal) == normal
        assert validate_darts_genotype(reduce) == reduce
        for k in range(4):
            assert normal[2 * k][1] != normal[2 * k + 1][1]
            assert "none" not in (normal[2 * k][0], normal[2 * k + 1][0])
    with torch.device("meta"):
        darts_network(normal, reduce)


# ---------------------------------------------------------------------------- bad input
def test_parse_nb201_arch_returns_nodes():
    nodes = parse_nb201_arch(NB201_MIXED)
    assert nodes[0] == (("nor_conv_3x3", 0),)
    assert nodes[2] == (("skip_connect", 0), ("nor_conv_3x3", 1), ("skip_connect", 2))


@pytest.mark.parametrize(
    "arch, message",
    [
        ("", "empty"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "3 nodes"),
        ("|conv_7x7~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_7x7'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "source index 1 must be smaller than 1"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "exactly one edge from each"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form"),
    ],
)
def test_parse_nb201_arch_rejects(arch, message):
    with pytest.raises(ValueError, match=message):
        parse_nb201_arch(arch)
    with pytest.raises(ValueError, match=message):
        nb201_network(arch)


@pytest.mark.parametrize(
    "arch, message",
    [
        ("64-41414", "3 '-'-separated fields"),
        ("63-41414-3_11_212", "base channels"),
        ("64-41514-3_11_212", "macro code"),
        ("64-41414-3_11", "3 '_'-separated nodes"),
        ("64-41414-3_111_212", "node 2 must have 2 op"),
        ("64-41414-3_11_242", "unknown op code '4'"),
    ],
)
def test_parse_tnb101_arch_rejects(arch, message):
    with pytest.raises(ValueError, match=message):
        parse_tnb101_arch(arch)
    with pytest.raises(ValueError, match=message):
        tnb101_network(arch)


def _replace(matrix, i, j, value):
    out = [list(r) for r in matrix]
    out[i][j] = value
    return out


@pytest.mark.parametrize(
    "adjacency, ops, message",
    [
        ([[0, 1, 0], [0, 0, 1]], ["input", "conv1x1-bn-relu", "output"], "square"),
        (_replace(NB101_ADJ, 3, 1, 1), NB101_OPS_LIST, r"upper-triangular.*\(3, 1\)"),
        (_replace(NB101_ADJ, 0, 3, 2), NB101_OPS_LIST, "0 or 1, found 2"),
        (np.triu(np.ones((8, 8), dtype=int), 1), ["input"] + ["conv1x1-bn-relu"] * 6 + ["output"], "at most 7"),
        (np.triu(np.ones((7, 7), dtype=int), 1), ["input"] + ["conv1x1-bn-relu"] * 5 + ["output"], "21 edges"),
        (NB101_ADJ, ["conv3x3-bn-relu"] + NB101_OPS_LIST[1:], "first op must be 'input'"),
        (NB101_ADJ, NB101_OPS_LIST[:-1] + ["conv3x3-bn-relu"], "last op must be 'output'"),
        (NB101_ADJ, NB101_OPS_LIST[:2] + ["conv5x5"] + NB101_OPS_LIST[3:], "vertex 2 has unknown op 'conv5x5'"),
        (NB101_ADJ, NB101_OPS_LIST[:-2] + ["output"], "6 entries"),
        ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], ["input", "maxpool3x3", "output"], "no path"),
    ],
)
def test_validate_nb101_spec_rejects(adjacency, ops, message):
    with pytest.raises(ValueError, match=message):
        validate_nb101_spec(adjacency, ops)
    with pytest.raises(ValueError, match=message):
        nb101_network(adjacency, ops)


def test_validate_nb101_spec_prunes_dangling_vertices():
    adjacency = [
        [0, 1, 1, 0],
        [0, 0, 0, 1],
        [0, 0, 0, 0],  # vertex 2 never reaches the output
        [0, 0, 0, 0],
    ]
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    pruned = ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    assert validate_nb101_spec(adjacency, ops) == pruned
    assert _nb101_param_count(adjacency, ops) == _nb101_param_count(*validate_nb101_spec(adjacency, ops))


@pytest.mark.parametrize(
    "genotype, message",
    [
        (DARTS_V2_NORMAL[:7], "8 .* pairs"),
        ("sep_conv_3x3", "list of"),
        ([("sep_conv_7x7", 0)] + DARTS_V2_NORMAL[1:], "entry 0: unknown op 'sep_conv_7x7'"),
        (DARTS_V2_NORMAL[:2] + [("sep_conv_3x3", 3)] + DARTS_V2_NORMAL[3:], r"entry 2: node 3 cannot read node 3"),
        (DARTS_V2_NORMAL[:3] + [("sep_conv_3x3",)] + DARTS_V2_NORMAL[4:], "entry 3 must be an"),
        (DARTS_V2_NORMAL[:3] + [("sep_conv_3x3", 1.5)] + DARTS_V2_NORMAL[4:], "must be an integer"),
    ],
)
def test_darts_genotype_rejects(genotype, message):
    with pytest.raises(ValueError, match=message):
        validate_darts_genotype(genotype)
    with pytest.raises(ValueError, match=f"genotype_reduce.*{message}"):
        darts_network(DARTS_V2_NORMAL, genotype)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: nb201_network(NB201_MIXED, channels=0), "channels must be a positive integer"),
        (lambda: nb101_network(NB101_ADJ, NB101_OPS_LIST, num_stacks=0), "num_stacks"),
        (lambda: darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, layers=2), "layers must be at least 3"),
        (lambda: darts_network(DARTS_V2_NORMAL, DARTS_V2_REDUCE, channels=15), "channels must be even"),
        (lambda: tnb101_network("64-41414-3_11_212", num_classes=0), "num_classes"),
    ],
)
def test_bad_sizes_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()
