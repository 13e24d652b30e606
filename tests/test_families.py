"""Benchmark family loaders, the compact graph cache, and the random samplers.

Core tests write tiny CSVs in the real column format to ``tmp_path``. Tests against the
real benchmark files read ``../shared/data`` (or ``$NASASSIST_DATA``), are limited to a
few hundred rows (and a handful of traced graphs), and skip with a reason when the data
is absent.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from nasassist_plugins.errors import DataError
from nasassist_plugins.families import (
    FAMILIES,
    VARIANTS,
    BenchmarkFamily,
    GraphSequence,
    load_family,
    load_nb101,
    load_nb201,
    load_nb301,
    load_tnb101,
    naslib_to_arch_str,
    sample_graphs,
    sample_specs,
    spec_graph,
)
from nasassist_plugins.families import _base, _cache
from nasassist_plugins.graph import ComputationalGraph

DATA_DIR = Path(os.environ.get("NASASSIST_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")

# ----------------------------------------------------------------------------- fixtures
ARCH_A = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
ARCH_B = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|nor_conv_1x1~0|avg_pool_3x3~1|nor_conv_1x1~2|"
NASLIB_B = "(4, 0, 3, 1, 4, 3)"  # ARCH_B in NASLib's op-index encoding

NB101_A = ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
NB101_B = (
    [[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]],
    ["input", "conv1x1-bn-relu", "maxpool3x3", "output"],
)
# Vertex 2 reaches no output: prunes to NB101_A.
NB101_UNPRUNED = ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], ["input", "conv3x3-bn-relu", "maxpool3x3", "output"])

NB301_NORMAL = [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 0], ["dil_conv_3x3", 2],
                ["avg_pool_3x3", 1], ["sep_conv_5x5", 3], ["skip_connect", 0], ["dil_conv_5x5", 4]]  # fmt: skip
NB301_REDUCE = [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["avg_pool_3x3", 1],
                ["max_pool_3x3", 0], ["skip_connect", 2], ["sep_conv_3x3", 2], ["max_pool_3x3", 1]]  # fmt: skip

TNB_A, TNB_B = "64-41414-3_11_212", "64-41414-0_02_123"


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


NB101_HEADER = ["hash", "num_vertices", "adjacency", "ops", "val_acc_4", "val_acc_12", "val_acc_36", "val_acc_108",
                "train_time_108_s", "trainable_parameters"]  # fmt: skip
NB201_HEADER = ["nb201_index", "arch_str", "cifar10-test", "cifar10-val", "cifar100-test", "cifar100-val",
                "imagenet-test", "imagenet-val"]  # fmt: skip
ZC_HEADER = ["net", "arch_str", "epe_nas", "fisher", "flops", "grad_norm", "grasp", "jacov", "l2_norm", "nwot", "params",
             "plain", "snip", "synflow", "zen", "val_accs"]  # fmt: skip


def nb101_row(h: str, spec, accs, params: int = 1000) -> list[object]:
    adj, ops = spec
    return [h, len(ops), json.dumps(adj), json.dumps(ops), *accs, 1234.5, params]


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    """A data folder with one small file per loader variant, in the real column format."""
    root = tmp_path / "data"
    write_csv(root / "nb101" / "nb101_30k_with_arch.csv", NB101_HEADER, [
        nb101_row("aaaa", NB101_A, [0.1, 0.5, 0.8, 0.9]),
        nb101_row("bbbb", NB101_B, [0.2, 0.6, 0.85, 0.92]),
        nb101_row("cccc", NB101_UNPRUNED, [0.3, 0.55, 0.82, 0.91]),
    ])  # fmt: skip
    write_csv(root / "nb101" / "nb101_cifar10_zc.csv",
              ["nb101_hash", "adjacency", "ops", "naslib_tuple", "flops", "params", "synflow", "val_accuracy"], [
        ["aaaa", json.dumps(NB101_A[0]), json.dumps(NB101_A[1]), "(0,)", 10.0, 1.5, -100000000.0, 90.0],
        ["aaaa", json.dumps(NB101_A[0]), json.dumps(NB101_A[1]), "(0,)", 11.0, 1.5, 3.0, 90.0],
        ["bbbb", json.dumps(NB101_B[0]), json.dumps(NB101_B[1]), "(0,)", 12.0, 2.5, 4.0, 92.5],
    ])  # fmt: skip
    write_csv(root / "nb201" / "nb201_all15625_12epoch.csv", NB201_HEADER, [
        [0, ARCH_A, 88.2, 82.8, 58.3, 57.8, 33.8, 35.4],
        [1, ARCH_B, 69.6, 63.4, 31.3, 31.8, 17.0, 18.5],
    ])  # fmt: skip
    write_csv(root / "nb201" / "nb201_cifar10_zc_proxies_valacc.csv", ZC_HEADER, [
        [NASLIB_B, ARCH_B, *range(13), 84.99],
        [naslib_to_arch_indices(ARCH_A), ARCH_A, *range(1, 14), 90.52],
    ])  # fmt: skip
    write_csv(root / "nb201" / "nb201_725_200epoch_zc.csv",
              ["dataset", "arch_str", "naslib_op_indices", "flops", "flops_time_s", "val_accuracy", "synflow"], [
        ["cifar10", ARCH_B, NASLIB_B, 46.3, 0.1, 83.6, 50.5],
        ["cifar10", ARCH_A, naslib_to_arch_indices(ARCH_A), 88.3, 0.2, 86.1, 41.9],
        ["ImageNet16-120", ARCH_B, NASLIB_B, 11.6, 0.1, 30.2, 45.0],
    ])  # fmt: skip
    write_csv(root / "nb301" / "nb301_cifar10_zc.csv",
              ["genotype_normal", "genotype_reduce", "naslib_compact", "flops", "flops_time_s", "val_accuracy", "synflow"], [
        [json.dumps(NB301_NORMAL), json.dumps(NB301_REDUCE), "[[(0, 0)]]", 153.5, 0.5, 93.3, 52.8],
    ])  # fmt: skip
    write_csv(root / "darts1k" / "darts1k_cifar10_valacc.csv", ["genotype_normal", "genotype_reduce", "val_accuracy"], [
        [json.dumps(NB301_NORMAL), json.dumps(NB301_NORMAL), 85.24],
        [json.dumps(NB301_REDUCE), json.dumps(NB301_REDUCE), 10.2],
    ])  # fmt: skip
    write_csv(root / "tnb101" / "tnb101_micro_all4096_zen_valacc.csv",
              ["task", "naslib_idx", "tnb_arch_str", "naslib_op_indices", "zen", "zen_time_s", "val_accuracy"], [
        ["autoencoder", 0, TNB_A, "(3, 1, 1, 2, 1, 2)", 163.9, 5.1, 0.456],
        ["autoencoder", 1, TNB_B, "(0, 0, 2, 1, 2, 3)", 103.5, 4.2, 0.452],
        ["class_object", 0, TNB_A, "(3, 1, 1, 2, 1, 2)", 150.0, 5.0, 45.1],
    ])  # fmt: skip
    return root


def naslib_to_arch_indices(arch: str) -> str:
    """Inverse of naslib_to_arch_str, written independently for the fixtures."""
    order = ["skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3"]
    ops = [item.split("~")[0] for node in arch.split("+") for item in node.strip("|").split("|")]
    # official order 0->1, 0->2, 1->2, 0->3, 1->3, 2->3; NASLib order 0->1, 0->2, 0->3, 1->2, 1->3, 2->3
    naslib = [ops[0], ops[1], ops[3], ops[2], ops[4], ops[5]]
    return "(" + ", ".join(str(order.index(o)) for o in naslib) + ")"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the loader tests, so each fixture graph is traced once."""
    return tmp_path_factory.mktemp("graph-cache")


class TraceCounter:
    """Wraps ``_base.trace_spec``: records which specs were traced, and the fresh graphs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []
        self.graphs: dict[str, ComputationalGraph] = {}
        real = _base.trace_spec

        def counting(family: str, key: str) -> ComputationalGraph:
            self.calls.append(key)
            graph = real(family, key)
            self.graphs[key] = ComputationalGraph.from_dict(graph.to_dict())  # an independent copy
            return graph

        monkeypatch.setattr(_base, "trace_spec", counting)


def check_graphs(family: BenchmarkFamily) -> None:
    assert len(family.graphs) == len(family)
    for graph, key in zip(family.graphs, family.specs):
        assert isinstance(graph, ComputationalGraph)
        graph.validate()
        assert graph.metadata["family"] == family.name
        assert graph.metadata["tracer"] == "one-pass"
        assert graph.num_nodes > 50 and graph.num_parameters > 0


# ----------------------------------------------------------------------------- loaders
def test_public_names() -> None:
    assert FAMILIES == ("nb101", "nb201", "nb301", "tnb101", "darts1k")
    assert set(VARIANTS) == set(FAMILIES)
    assert VARIANTS["nb201"][0] == "12epoch" and VARIANTS["nb101"][0] == "30k"


def test_load_nb201_12epoch(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb201(data_dir, cache_dir=shared_cache, progress=False)
    assert (fam.name, fam.variant, len(fam)) == ("nb201", "12epoch", 2)
    assert fam.specs == [ARCH_A, ARCH_B] and fam.ids == ["0", "1"]
    assert sorted(fam.targets) == sorted(
        f"{d}_{s}" for d in ("cifar10", "cifar100", "imagenet16-120") for s in ("val", "test")
    )
    np.testing.assert_allclose(fam.target("cifar10_test"), [88.2, 69.6])
    np.testing.assert_allclose(fam.target(), [82.8, 63.4])  # default: cifar10_val
    assert fam.proxies == {}
    assert isinstance(fam.graphs, GraphSequence)
    check_graphs(fam)
    # The graph is exactly the traced real network, named after its spec.
    assert fam.graphs[0] == spec_graph("nb201", ARCH_A)
    assert fam.graphs[1].name == f"nb201:{ARCH_B}" and fam.graphs[1].num_parameters == 129_306  # published size
    with pytest.raises(KeyError, match="cifar10_val"):
        fam.target("accuracy")


def test_nb201_zc_files_map_naslib_indices(data_dir: Path, shared_cache: Path) -> None:
    assert naslib_to_arch_str(NASLIB_B) == ARCH_B
    assert naslib_to_arch_str([4, 0, 3, 1, 4, 3]) == ARCH_B
    fam = load_family("nb201", data_dir, variant="zc-cifar10", cache_dir=shared_cache, progress=False)
    assert fam.specs == [ARCH_B, ARCH_A]
    np.testing.assert_allclose(fam.target("cifar10_val"), [84.99, 90.52])
    assert list(fam.proxies)[:3] == ["epe_nas", "fisher", "flops"] and len(fam.proxies) == 13
    np.testing.assert_allclose(fam.proxies["zen"], [12, 13])
    assert fam.graphs[0] == spec_graph("nb201", ARCH_B)
    # An arch_str that contradicts the op-index tuple is an error naming both columns.
    write_csv(data_dir / "nb201" / "nb201_cifar10_zc_proxies_valacc.csv", ZC_HEADER, [[NASLIB_B, ARCH_A, *range(13), 1.0]])
    with pytest.raises(DataError, match=r"nb201_cifar10_zc_proxies_valacc\.csv: row 2: arch_str .* disagrees with net"):
        load_family("nb201", data_dir, variant="zc-cifar10", cache_dir=shared_cache, progress=False)


def test_nb201_zc725_is_pivoted_per_dataset(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb201(data_dir, variant="zc725", cache_dir=shared_cache, progress=False)
    assert fam.specs == [ARCH_B, ARCH_A]
    np.testing.assert_allclose(fam.target("cifar10_val"), [83.6, 86.1])
    imagenet = fam.target("imagenet16-120_val")
    assert imagenet[0] == pytest.approx(30.2) and math.isnan(imagenet[1])
    assert sorted(fam.proxies) == ["cifar10/flops", "cifar10/synflow", "imagenet16-120/flops", "imagenet16-120/synflow"]
    assert sorted(fam.extras) == ["cifar10/flops_time_s", "imagenet16-120/flops_time_s"]


def test_load_nb101(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb101(data_dir, cache_dir=shared_cache, progress=False)
    assert fam.ids == ["aaaa", "bbbb", "cccc"]
    assert fam.specs[0] == NB101_A and fam.specs[1] == NB101_B
    assert fam.specs[2] == NB101_A  # pruned like the benchmark's ModelSpec
    np.testing.assert_allclose(fam.target(), [0.9, 0.92, 0.91])  # val_acc_108
    assert set(fam.targets) == {"val_acc_4", "val_acc_12", "val_acc_36", "val_acc_108", "train_time_108_s",
                                "trainable_parameters"}  # fmt: skip
    check_graphs(fam)
    assert fam.graphs[2] == fam.graphs[0]
    from nasassist_plugins.adapters.cells import nb101_network

    for spec, graph in zip(fam.specs, fam.graphs):
        with torch.device("meta"):
            net = nb101_network(*spec)
        assert graph.num_parameters == sum(p.numel() for p in net.parameters())


def test_nb101_zc_variant_deduplicates_and_rescales(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb101(data_dir, variant="zc", cache_dir=shared_cache, progress=False)
    assert fam.ids == ["aaaa", "bbbb"]
    np.testing.assert_allclose(fam.target("val_acc_108"), [0.90, 0.925])
    assert math.isnan(fam.proxy("synflow")[0])  # -1e8 marks a failed proxy
    np.testing.assert_allclose(fam.proxy("flops"), [10.0, 12.0])  # first row of a duplicated hash kept


def test_load_nb301(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb301(data_dir, cache_dir=shared_cache, progress=False)
    assert len(fam) == 1
    normal, reduce = fam.specs[0]
    assert normal == [tuple(p) for p in NB301_NORMAL] and reduce == [tuple(p) for p in NB301_REDUCE]
    np.testing.assert_allclose(fam.target(), [93.3])
    assert sorted(fam.proxies) == ["flops", "synflow"] and list(fam.extras) == ["flops_time_s"]
    check_graphs(fam)


def test_load_darts1k(data_dir: Path, shared_cache: Path) -> None:
    from nasassist_plugins.families import load_darts1k

    fam = load_darts1k(data_dir, cache_dir=shared_cache, progress=False)
    assert len(fam) == 2 and fam.ids == ["0", "1"]
    assert fam.specs[0] == ([tuple(p) for p in NB301_NORMAL], [tuple(p) for p in NB301_NORMAL])
    np.testing.assert_allclose(fam.target(), [85.24, 10.2])
    check_graphs(fam)


def test_load_tnb101_pivots_tasks(data_dir: Path, shared_cache: Path) -> None:
    fam = load_tnb101(data_dir, cache_dir=shared_cache, progress=False)
    assert fam.specs == [TNB_A, TNB_B]
    assert list(fam.targets) == ["class_object", "autoencoder"]  # benchmark task order
    np.testing.assert_allclose(fam.target("autoencoder"), [0.456, 0.452])
    obj = fam.target()  # default: class_object
    assert obj[0] == pytest.approx(45.1) and math.isnan(obj[1])
    np.testing.assert_allclose(fam.proxy("autoencoder/zen"), [163.9, 103.5])
    check_graphs(fam)


def test_limit_and_subset(data_dir: Path, shared_cache: Path) -> None:
    fam = load_nb101(data_dir, limit=2, cache_dir=shared_cache, progress=False)
    assert fam.ids == ["aaaa", "bbbb"]
    for sub in (fam.subset([1]), fam.subset(np.array([False, True])), fam.subset(slice(1, None))):
        assert sub.ids == ["bbbb"] and sub.specs == [NB101_B]
        np.testing.assert_allclose(sub.target(), [0.92])
        assert sub.graphs[0] is fam.graphs[1]
    assert len(fam.subset([])) == 0
    assert len(load_nb101(data_dir, limit=0, cache_dir=False)) == 0
    with pytest.raises(IndexError):
        fam.subset([5])
    with pytest.raises(ValueError, match="limit"):
        load_nb101(data_dir, limit=-1, cache_dir=False)
    with pytest.raises(ValueError, match="unknown variant 'huge'.*30k"):
        load_family("nb101", data_dir, variant="huge", cache_dir=False)
    with pytest.raises(ValueError, match="unknown benchmark family 'nb999'"):
        load_family("nb999", data_dir)


# ----------------------------------------------------------------------------- errors
def test_missing_directory_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"benchmark data directory .*nowhere.* does not exist"):
        load_nb201(missing, cache_dir=False)
    with pytest.raises(DataError, match=r"'nb201/nb201_all15625_12epoch\.csv' not found"):
        load_nb201(tmp_path, cache_dir=False)


def test_missing_column_and_bad_values(data_dir: Path) -> None:
    write_csv(data_dir / "nb201" / "nb201_all15625_12epoch.csv", [c for c in NB201_HEADER if c != "cifar100-val"], [])
    with pytest.raises(DataError, match=r"nb201_all15625_12epoch\.csv: missing column 'cifar100-val'"):
        load_nb201(data_dir, cache_dir=False)
    write_csv(data_dir / "nb201" / "nb201_all15625_12epoch.csv", NB201_HEADER, [[0, ARCH_A, "n/a", 1, 1, 1, 1, 1]])
    with pytest.raises(DataError, match=r"row 2, column 'cifar10-test': 'n/a' is not a number"):
        load_nb201(data_dir, cache_dir=False)
    write_csv(data_dir / "nb201" / "nb201_all15625_12epoch.csv", NB201_HEADER, [[0, "|conv~0|", 1, 1, 1, 1, 1, 1]])
    with pytest.raises(DataError, match=r"row 2, column 'arch_str'"):
        load_nb201(data_dir, cache_dir=False)
    write_csv(data_dir / "nb101" / "nb101_30k_with_arch.csv", NB101_HEADER,
              [["h", 3, "[[0, 1]", json.dumps(NB101_A[1]), 0, 0, 0, 0, 0, 0]])  # fmt: skip
    with pytest.raises(DataError, match=r"nb101_30k_with_arch\.csv: row 2, column 'adjacency': not valid JSON"):
        load_nb101(data_dir, cache_dir=False)
    (data_dir / "nb301" / "nb301_cifar10_zc.csv").write_text("")
    with pytest.raises(DataError, match=r"nb301_cifar10_zc\.csv: file is empty"):
        load_nb301(data_dir, cache_dir=False)


# ----------------------------------------------------------------------------- cache
def test_cache_round_trip_and_stale_key(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    counter = TraceCounter(monkeypatch)
    first = load_nb201(data_dir, cache_dir=cache, progress=False)
    assert len(counter.calls) == 2 and first.metadata["cache"]["built"] == 2
    files = list(cache.glob("nb201-*.npz"))
    assert len(files) == 1
    with np.load(files[0], allow_pickle=False) as data:  # pickle-free: every array is numeric
        assert all(data[k].dtype != object for k in data.files)

    again = load_nb201(data_dir, cache_dir=cache, progress=False)
    assert len(counter.calls) == 2 and again.metadata["cache"]["cache_hits"] == 2  # nothing re-traced
    fresh = [counter.graphs[a] for a in (ARCH_A, ARCH_B)]  # the graphs from_torch returned
    assert list(again.graphs) == fresh == list(first.graphs)
    assert again.graphs[0].to_json() == fresh[0].to_json()

    # Another variant of the family reuses the same cache file.
    load_nb201(data_dir, variant="zc725", cache_dir=cache, progress=False)
    assert len(counter.calls) == 2

    # A new format version (or tracer code) means a new key: the stale cache is not used.
    monkeypatch.setattr(_cache, "CACHE_FORMAT_VERSION", _cache.CACHE_FORMAT_VERSION + 1000)
    rebuilt = load_nb201(data_dir, limit=1, cache_dir=cache, progress=False)
    assert counter.calls == [ARCH_A, ARCH_B, ARCH_A] and rebuilt.metadata["cache"]["built"] == 1
    assert rebuilt.graphs[0] == fresh[0]
    assert len(list(cache.glob("nb201-*.npz"))) == 2


def test_cache_merges_new_specs_and_env_override(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NASASSIST_CACHE", str(tmp_path / "env-cache"))
    counter = TraceCounter(monkeypatch)
    load_nb201(data_dir, limit=1, progress=False)
    assert counter.calls == [ARCH_A]
    assert len(list((tmp_path / "env-cache").glob("nb201-*.npz"))) == 1
    fam = load_nb201(data_dir, progress=False)  # only the missing spec is traced, then merged
    assert counter.calls == [ARCH_A, ARCH_B]
    assert list(fam.graphs) == [counter.graphs[ARCH_A], counter.graphs[ARCH_B]]
    load_nb201(data_dir, progress=False)
    assert len(counter.calls) == 2


def test_header_mismatch_inside_file_is_stale(data_dir: Path, tmp_path: Path) -> None:
    fam = load_nb201(data_dir, limit=1, cache_dir=tmp_path, progress=False)
    path = Path(fam.metadata["cache"]["cache_path"])
    _, header = _base.get_family_def("nb201").cache_identity()
    assert _cache.load_store(path, header) is not None
    assert _cache.load_store(path, dict(header, code="something else")) is None
    path.write_bytes(b"not a zip file")
    with pytest.warns(RuntimeWarning, match="unreadable graph cache"):
        assert _cache.load_store(path, header) is None


def test_store_codec_round_trips_every_attribute_kind(tmp_path: Path) -> None:
    g = ComputationalGraph("odd", metadata={"tracer": "test", "nested": {"a": [1, 2]}, "t": 1.5})
    a = g.add_node("input", output_shape=(1, 3, 8, 8))
    b = g.add_node(
        "conv2d", module="block.conv", in_channels=3, bias=False, scale=0.1, note=None, label="x",
        kernel_size=(3, 3), sizes=[1, 2], mixed=(1, "a"), big=2**70, nested={"k": (1, 2)}, nan=float("-inf"),
    )  # fmt: skip
    c = g.add_node("output", output_shape=(1, 10))
    g.add_edge(a, b)
    g.add_edge(b, c)
    h = ComputationalGraph("plain")
    h.add_node("input")
    builder = _cache.StoreBuilder()
    builder.add("g", g)
    builder.add("h", h)
    builder.add("g", g)  # duplicate keys are ignored
    _cache.save_store(tmp_path / "s.npz", builder.build(), {"v": 1})
    store = _cache.load_store(tmp_path / "s.npz", {"v": 1})
    assert store is not None and store.keys == ["g", "h"]
    back = store.get("g")
    assert back == g and back.nodes[1].attrs == g.nodes[1].attrs
    assert type(back.nodes[1].attrs["kernel_size"]) is tuple and type(back.nodes[1].attrs["sizes"]) is list
    assert store.get("h") == h
    # Merging into an existing store keeps what it had.
    merged = _cache.StoreBuilder.from_store(store)
    extra = ComputationalGraph("extra")
    extra.add_node("relu", module="block.conv")
    merged.add("extra", extra)
    out = merged.build()
    assert [out.get(k) for k in ("g", "h", "extra")] == [g, h, extra]
    assert out.num_unique_nodes == store.num_unique_nodes + 1


# ----------------------------------------------------------------------------- samplers
@pytest.mark.parametrize("family", FAMILIES)
def test_sample_graphs(family: str) -> None:
    graphs = sample_graphs(family, 2, seed=3, progress=False, cache_dir=False)
    assert len(graphs) == 2
    for graph in graphs:
        graph.validate()
        assert graph.metadata["family"] == family and graph.metadata["tracer"] == "one-pass"
        assert graph.num_parameters > 0 and "conv2d" in graph.op_counts()
    keys = [g.metadata["spec"] for g in graphs]
    definition = _base.get_family_def(family)
    assert keys == [definition.spec_to_key(s) for s in sample_specs(family, 2, seed=3)]
    assert sample_specs(family, 3, seed=4) == sample_specs(family, 3, seed=4)


def test_meta_built_networks_trace_like_cpu_built_ones() -> None:
    """Families built on ``meta`` (no weight init: NB101, TNB101) give the normally built graph."""
    from nasassist_plugins.adapters.torch_adapter import from_torch

    family, spec = "nb101", NB101_B
    definition = _base.get_family_def(family)
    assert definition.device == _base.get_family_def("tnb101").device == "meta-to-cpu"
    key = definition.spec_to_key(spec)
    graph = _base.trace_spec(family, key)
    reference = from_torch(definition.build_network(spec), definition.example_input, name=graph.name)
    reference.metadata.update(family=family, spec=key)
    assert graph == reference


@pytest.mark.slow
def test_parallel_build_matches_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    """``n_jobs=2`` traces in two spawned workers (seconds to start: each imports torch)."""
    monkeypatch.setattr(_base, "MIN_GRAPHS_PER_WORKER", 1)
    parallel = sample_graphs("nb201", 3, seed=5, progress=False, cache_dir=False, n_jobs=2)
    serial = [spec_graph("nb201", g.metadata["spec"]) for g in parallel]
    assert parallel == serial


# ----------------------------------------------------------------------------- real data
def real_file(relative: str) -> Path:
    path = DATA_DIR / relative
    if not path.is_file():
        pytest.skip(f"benchmark file {relative} not found under {DATA_DIR} (set NASASSIST_DATA to run this test)")
    return path


@pytest.mark.shared_data
def test_real_nb101_graphs_have_the_published_parameter_counts(shared_cache: Path) -> None:
    real_file("nb101/nb101_30k_with_arch.csv")
    _, _, _, table = _base.read_table("nb101", DATA_DIR, limit=300)
    assert len(table.keys) == 300 and all(len(i) == 32 for i in table.ids)
    assert np.all((table.targets["val_acc_108"] > 0) & (table.targets["val_acc_108"] <= 1))
    fam = load_nb101(DATA_DIR, limit=4, cache_dir=shared_cache, progress=False)
    assert [g.num_parameters for g in fam.graphs] == fam.target("trainable_parameters").astype(int).tolist()


@pytest.mark.shared_data
def test_real_nb201_files(shared_cache: Path) -> None:
    real_file("nb201/nb201_all15625_12epoch.csv")
    real_file("nb201/nb201_cifar10_zc_proxies_valacc.csv")
    _, _, _, full = _base.read_table("nb201", DATA_DIR)
    assert len(full.keys) == 15625 and len(set(full.keys)) == 15625
    assert full.targets["cifar10_test"].max() == pytest.approx(89.16)
    # The zc file's op-index tuples agree with its arch strings (checked by the reader),
    # and every cell is one of the 15,625.
    _, _, _, zc = _base.read_table("nb201", DATA_DIR, variant="zc-cifar10", limit=300)
    assert len(zc.keys) == 300 and set(zc.keys) <= set(full.keys)
    assert len(zc.proxies) == 13 and "zen" in zc.proxies
    fam = load_nb201(DATA_DIR, variant="zc-cifar10", limit=3, cache_dir=shared_cache, progress=False)
    np.testing.assert_allclose([g.num_parameters / 1e6 for g in fam.graphs], fam.proxy("params"), rtol=1e-6)


@pytest.mark.shared_data
def test_real_nb201_zc725_and_imagenet(shared_cache: Path) -> None:
    real_file("nb201/nb201_725_200epoch_zc.csv")
    _, _, _, table = _base.read_table("nb201", DATA_DIR, variant="zc725")
    assert len(table.keys) == 725
    assert sorted(table.targets) == ["cifar100_val", "cifar10_val", "imagenet16-120_val"]
    assert int(np.isnan(table.targets["imagenet16-120_val"]).sum()) == 1
    real_file("nb201/nb201_imagenet16-120_zc_proxies_valacc.csv")
    _, _, _, im = _base.read_table("nb201", DATA_DIR, variant="zc-imagenet16-120", limit=200)
    assert len(im.keys) == 200 and list(im.targets) == ["imagenet16-120_val"]


@pytest.mark.shared_data
def test_real_nb301_and_tnb101(shared_cache: Path) -> None:
    real_file("nb301/nb301_cifar10_zc.csv")
    _, _, _, table = _base.read_table("nb301", DATA_DIR)
    assert len(table.keys) == 725
    acc = table.targets["val_accuracy"]
    assert 91.0 < acc.min() and acc.max() < 94.6
    fam = load_nb301(DATA_DIR, limit=2, cache_dir=shared_cache, progress=False)
    check_graphs(fam)

    real_file("tnb101/tnb101_micro_all4096_zen_valacc.csv")
    _, _, _, tnb = _base.read_table("tnb101", DATA_DIR, limit=300)
    assert len(tnb.keys) == 300 and len(tnb.targets) == 7
    assert all(not np.isnan(v).any() for v in tnb.targets.values())
    assert sorted(tnb.proxies) == sorted(f"{t}/zen" for t in tnb.targets)
    fam = load_tnb101(DATA_DIR, limit=2, cache_dir=shared_cache, progress=False)
    check_graphs(fam)
