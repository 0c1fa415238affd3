"""Pruning: smaller ONNX models against masked ones (onnxruntime), rankings on a network whose
class is carried by one neuron, relevance means over chunks against a per-sample loop, CLI."""

from __future__ import annotations

import hashlib
import io
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

import provgraph as pg
from provgraph.apps.datasets import ArrayDataset
from provgraph.apps.demo import bundled_cnn_path, bundled_model_path
from provgraph.apps.onnx_pruning import OnnxGraph, PruningError, mask_model, shrink_model
from provgraph.apps.pruning import evaluate, unit_rankings, units_to_remove
from provgraph.apps.pruning_scores import EdgeRelevance, Ranking, UnitRelevance, unit_tensors
from provgraph.apps.sources import bundled_mnist
from provgraph.apps.streaming import run_reduction
from provgraph.cli.main import main


def export(model: nn.Module, example: torch.Tensor) -> onnx.ModelProto:
    model.eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}},
                          opset_version=17)
    return onnx.load_from_string(buffer.getvalue())


def run_ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x.astype(np.float32)})[0]


def batchnorm_mlp() -> onnx.ModelProto:
    """Linear-BatchNorm-ReLU-Linear-Tanh-Linear, with non-trivial running statistics."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 9), nn.BatchNorm1d(9), nn.ReLU(), nn.Linear(9, 7),
                        nn.Tanh(), nn.Linear(7, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
        net[1].weight.uniform_(0.5, 1.5)
        net[1].bias.uniform_(-0.5, 0.5)
    return export(net, torch.zeros(2, 12))


CASES = {
    "bundled MLP": (lambda: onnx.load(bundled_model_path()), (784,)),
    "bundled CNN": (lambda: onnx.load(bundled_cnn_path()), (1, 28, 28)),
    "BatchNorm MLP": (batchnorm_mlp, (12,)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_smaller_model_equals_masked_original_under_onnxruntime(case):
    build, shape = CASES[case]
    model = build()
    layers = OnnxGraph(model).layers()
    assert len(layers) == 2
    rng = np.random.default_rng(1)
    removed = {la.node: rng.choice(la.size, la.size // 2, replace=False) for la in layers}
    masked, smaller = mask_model(model, removed), shrink_model(model, removed)
    x = rng.random((16,) + shape)
    original, cut = run_ort(masked, x), run_ort(smaller, x)
    np.testing.assert_allclose(cut, original, rtol=1e-5, atol=1e-5)
    assert not np.allclose(original, run_ort(model, x), atol=1e-3)  # the removal did something
    sizes = {la.node: la.size for la in layers}
    for la in OnnxGraph(smaller).layers():
        assert la.size == sizes[la.node] - sizes[la.node] // 2
    assert len(smaller.SerializeToString()) < len(model.SerializeToString())
    onnx.checker.check_model(smaller)


def test_units_between_two_computed_tensors_are_refused():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            h = torch.relu(self.a(x))
            return self.c(h + self.b(h))

    model = export(Residual(), torch.zeros(1, 4))
    graph = OnnxGraph(model)
    assert [la.node for la in graph.layers()] == []
    first = next(n.name for n in model.graph.node if n.op_type == "Gemm")
    with pytest.raises(PruningError, match="consumers|mixes"):
        mask_model(model, {first: [0]})


def one_neuron_network() -> tuple[bytes, ArrayDataset]:
    """Hidden neuron 0 alone decides the class (x0 > 0.5); the others barely matter."""
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        net[0].weight.fill_(0.01)
        net[0].weight[0] = torch.tensor([5.0, 0.0, 0.0, 0.0])
        net[0].bias.zero_()
        net[2].weight.fill_(0.01)
        net[2].weight[:, 0] = torch.tensor([0.0, 4.0])
        net[2].bias.copy_(torch.tensor([10.0, 0.0]))
    model = export(net, torch.zeros(1, 4)).SerializeToString()
    x = np.random.default_rng(0).random((200, 4))
    x[:, 0] = np.linspace(0.01, 0.99, 200)
    return model, ArrayDataset(x, (x[:, 0] > 0.5).astype(np.int64))


@pytest.mark.parametrize("semiring", ["real", "viterbi"])
def test_pruning_the_top_ranked_neuron_costs_accuracy_and_the_bottom_ranked_ones_do_not(semiring):
    model, data = one_neuron_network()
    proto = onnx.load_from_string(model)
    layers = OnnxGraph(proto).layers()
    stats = run_reduction(data, UnitRelevance(model, layers, semiring), 64, progress=False)
    ranking = next(r for r in unit_rankings(proto, layers, stats, 0) if r.method == "relevance")
    assert int(np.argmax(ranking.scores)) == 0
    x, y = data.read(), data.targets()
    full = evaluate(proto, x, y)[1]
    sizes = {ranking.layer: 6}
    bottom = units_to_remove({ranking.layer: ranking}, sizes, 5 / 6 + 1e-9, "layer")
    top = units_to_remove({ranking.layer: Ranking("relevance", ranking.layer, "neuron",
                                                  -ranking.scores)}, sizes, 1 / 6 + 1e-9,
                          "layer")
    assert sorted(bottom[ranking.layer]) == [1, 2, 3, 4, 5] and list(top[ranking.layer]) == [0]
    assert full == 1.0
    assert evaluate(mask_model(proto, bottom), x, y)[1] == 1.0
    assert evaluate(mask_model(proto, top), x, y)[1] <= 0.55


@pytest.mark.parametrize("semiring", ["real", "counting"])
def test_relevance_means_over_chunks_equal_a_per_sample_loop(semiring):
    data = bundled_mnist("train")
    n = 12
    model = bundled_model_path()
    layers = OnnxGraph(onnx.load(model)).layers()
    reduction = UnitRelevance(model, layers, semiring, dtype="float64")
    chunked = run_reduction(data, reduction, 5, progress=False, stop=n)
    whole = run_reduction(data, reduction, n, progress=False, stop=n)
    net = pg.load(model)
    x, y = data.read(0, n), data.targets()[:n]
    for layer in layers:
        tensor, activation = unit_tensors(net, layer)
        loop = np.zeros(layer.size)
        for i in range(n):
            rel = pg.explain(net, x[i], target=int(y[i]), semiring=semiring, backend="scipy")
            loop += np.asarray([float(v) for v in rel.layer(tensor)])
        key = f"relevance/{layer.node}"
        if semiring == "counting":  # exact path counts: equal as numbers
            assert np.array_equal(chunked[key] * n, loop)
        np.testing.assert_allclose(chunked[key], loop / n, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-12, atol=1e-15)
        op = net.op(layer.node)
        acts = [np.maximum(x[i] @ op.weight.astype(np.float64) + op.bias, 0)
                for i in range(n)] if layer.node == "/0/Gemm" else None
        if acts is not None:
            np.testing.assert_allclose(chunked[f"activation/{layer.node}"],
                                       np.mean(acts, axis=0), rtol=1e-9, atol=1e-12)
    assert chunked["count"] == n


def test_prune_runs_with_no_model_argument_and_records_its_provenance(tmp_path, capsys):
    out = tmp_path / "prune"
    code = main(["-q", "prune", "--samples", "40", "--test-samples", "200", "--weight-samples",
                 "4", "--fractions", "0,0.5", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "relevance" in printed and "onnxruntime" in printed
    for name in ("curves.csv", "curves.png", "inputs_weights.png", "rankings.npz",
                 "pruned.onnx", "summary.json"):
        assert (out / name).stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model_sha256"] == hashlib.sha256(bundled_model_path().read_bytes()).hexdigest()
    assert summary["semiring"] == "real" and "LRP" in summary["rule"]
    assert summary["preprocessing"]["train"]["scale"] == pytest.approx(1 / 255)
    assert summary["export"]["onnxruntime_check"]["equal"]
    rows = (out / "curves.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * (6 + 3 + 4)
    smaller = OnnxGraph(onnx.load(out / "pruned.onnx")).layers()
    assert [la.size for la in smaller] == [150, 50]


def exit_code(argv: list[str]) -> int:
    """The CLI's exit status, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code)


@pytest.mark.parametrize("argv, message", [
    (["--model", "missing.onnx"], "missing.onnx: model not found"),
    (["--weights", "nosuch"], "'nosuch'"),
    (["--fractions", "0,1.5"], "[0, 1)"),
    (["--scope", "everything"], "invalid choice"),
])
def test_prune_bad_input_is_one_line_and_exit_code_2(argv, message, capsys):
    assert exit_code(["-q", "prune", "--samples", "4", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_prune_refuses_an_unlabelled_training_set(tmp_path, capsys):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((5, 784), dtype=np.float32))
    assert main(["-q", "prune", "--data", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs labels" in err and len(err.splitlines()) == 1


def test_global_scope_pools_layers_after_dividing_by_their_l2_norm():
    rankings = {"a": Ranking("l1", "a", "neuron", np.array([3.0, 4.0, 0.0])),  # norm 5
                "b": Ranking("l1", "b", "neuron", np.array([0.5, 0.1]))}       # norm ~0.51
    sizes = {"a": 3, "b": 2}
    pooled = sorted([(s / np.linalg.norm(r.scores), n, u) for n, r in rankings.items()
                     for u, s in enumerate(r.scores)])
    for fraction in (0.2, 0.4, 0.6, 0.8):
        budget, chosen = int(fraction * 5), {"a": [], "b": []}
        for _, n, u in pooled:  # a plain loop: lowest normalised score first, one unit kept
            if budget and len(chosen[n]) < sizes[n] - 1:
                chosen[n].append(u)
                budget -= 1
        got = units_to_remove(rankings, sizes, fraction, "global")
        assert {n: sorted(v.tolist()) for n, v in got.items()} == \
            {n: sorted(v) for n, v in chosen.items()}


def test_edge_relevance_equals_lrp0_written_out_with_numpy():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():  # every hidden neuron active on inputs in [0, 1]
        for layer in (net[0], net[2]):
            layer.bias.fill_(0.5)
    model = export(net, torch.zeros(1, 5)).SerializeToString()
    x = np.random.default_rng(2).random((6, 5))
    y = np.array([0, 1, 1, 0, 1, 0])
    data = ArrayDataset(x, y)
    first = OnnxGraph(onnx.load_from_string(model)).layers()[0].node
    got = run_reduction(data, EdgeRelevance(model, first, "real"), 4, progress=False)
    x = data.read().astype(np.float64)  # the samples as the dataset gives them (float32)
    w = [layer.weight.detach().double().numpy().T for layer in net if isinstance(layer, nn.Linear)]
    b = [layer.bias.detach().double().numpy() for layer in net if isinstance(layer, nn.Linear)]
    total, total_abs = np.zeros((5, 4)), np.zeros((5, 4))
    for xi, yi in zip(x, y):
        acts = [xi]
        for i in range(3):
            z = acts[-1] @ w[i] + b[i]
            acts.append(np.maximum(z, 0) if i < 2 else z)
        ratios = [acts[i][:, None] * w[i] / (acts[i] @ w[i] + b[i])[None, :] for i in range(3)]
        r_out = np.eye(2)[yi]                      # K-LRP: one on the label
        r_hidden2 = ratios[2] @ r_out
        r_hidden1 = ratios[1] @ r_hidden2
        edges = ratios[0] * r_hidden1[None, :]     # Θ(r_jk) ⊗ R_k, Θ the identity
        total += edges
        total_abs += np.abs(edges)
    np.testing.assert_allclose(got["edges"], total / len(x), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["|edges|"], total_abs / len(x), rtol=1e-9, atol=1e-12)
    assert np.count_nonzero(total) == total.size  # every edge carries relevance …
    assert np.any(total < 0)                      # … some of it negative


def test_the_relevance_reduction_pickles_and_maps_the_same_after_a_round_trip():
    import pickle

    model = bundled_model_path()
    layers = OnnxGraph(onnx.load(model)).layers()
    reduction = UnitRelevance(model.read_bytes(), layers, "boolean")
    chunk = next(bundled_mnist("train").chunks(6))
    before = reduction.map(chunk)  # loads the network, which must not travel
    data = pickle.dumps(reduction)
    assert model.read_bytes() not in data and len(data) < 4096  # by sha256, no network
    copy = pickle.loads(data)
    assert copy.model.sha256 == reduction.model.sha256
    after = copy.map(chunk)
    assert before.keys() == after.keys()
    for key in before:
        assert np.array_equal(before[key], after[key])
