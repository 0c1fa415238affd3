"""Faithfulness curves and the feature-removal test against Quantus and against plain loops.

Oracles: Quantus's ``PixelFlipping`` and ``RegionPerturbation`` on the same torch model, the
same attributions and the same settings; loops written here over single samples with
onnxruntime as the forward pass and Python's ``sorted`` as the ranking.
"""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from models import export_onnx
from torch import nn
from zennit_import import import_zennit

from provgraph.algebra.semirings import get_semiring
from provgraph.apps import bundled_mnist, run_reduction
from provgraph.apps.demo import bundled_model_path
from provgraph.apps.faithfulness import Faithfulness, Settings, sample_orders
from provgraph.apps.input_pruning import InputPruning, MeanInputRelevance
from provgraph.apps.model_job import Case, ModelRef
from provgraph.apps.perturbation import (
    patch_ids,
    patch_orders,
    pixel_flipping,
    region_perturbation,
    replacement_values,
)

N = 16


class SmallCNN(nn.Module):
    """1×28×28 → conv 3×3 (4) → ReLU → max pool 2 → dense 10."""

    input_shape = (1, 28, 28)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.dense = nn.Linear(4 * 14 * 14, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(torch.flatten(self.pool(torch.relu(self.conv(x))), 1))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    data = bundled_mnist("test")
    x = data.read(0, 200).astype(np.float64)
    return x, np.asarray(data.labels[:200])


@pytest.fixture(scope="module")
def cnn(digits, tmp_path_factory) -> tuple[nn.Module, ModelRef]:
    """A small CNN trained for a few steps on bundled digits (so its outputs are peaked) and its
    TorchScript ONNX export (Quantus runs the module in float32)."""
    torch.manual_seed(0)
    model = SmallCNN()
    x = torch.tensor(digits[0].reshape(-1, 1, 28, 28), dtype=torch.float32)
    y = torch.tensor(digits[1])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(40):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    path = export_onnx(model, tmp_path_factory.mktemp("cnn") / "cnn.onnx")
    return model, ModelRef(path)


def _quantus():
    import_zennit()  # Quantus imports Zennit, which needs a torchvision stand-in here
    import quantus

    return quantus


def _batch(digits):
    x = digits[0][N : 2 * N].reshape(N, 1, 28, 28)
    return x, digits[1][N : 2 * N]


@pytest.mark.parametrize("semiring", ["real", "boolean"])
def test_pixel_flipping_equals_quantus(cnn, digits, semiring):
    quantus = _quantus()
    torch_model, ref = cnn
    x, _ = _batch(digits)
    targets = np.argmax(ref.logits(x), axis=1)
    rel = np.asarray(ref.explain(Case(semiring), x, targets).input).reshape(N, -1)
    k = get_semiring(semiring)
    order = sample_orders(k, rel, None if semiring == "real" else ref.tie_breaker(x, targets))
    # Quantus sorts the attributions itself: give it scores whose descending order is ours
    # (for real relevance the relevance itself; equal values only where x = 0, a no-op there)
    flat = x.reshape(N, -1)
    for sign, ours_order in ((1, order), (-1, order[:, ::-1])):
        scores = sign * rel.astype(np.float64) if semiring == "real" else _scores_of(ours_order)
        metric = quantus.PixelFlipping(features_in_step=56, perturb_baseline=0.0, normalise=False,
                                       disable_warnings=True)
        theirs = np.asarray(metric(model=torch_model, x_batch=x,
                                   y_batch=targets, a_batch=scores.reshape(x.shape),
                                   device="cpu", softmax=True, channel_first=True))
        ours = pixel_flipping(ref.probabilities, flat, np.zeros_like(flat), targets, ours_order,
                              56, (1, 28, 28))
        assert ours.shape == (N, 1 + 14)
        np.testing.assert_allclose(ours[:, 1:], theirs, atol=2e-5)
        assert np.ptp(ours) > 0.3  # the curves do move


def _scores_of(order: np.ndarray) -> np.ndarray:
    scores = np.empty(order.shape, dtype=np.float64)
    scores[np.arange(len(order))[:, None], order] = np.arange(order.shape[1], 0, -1)[None]
    return scores


@pytest.mark.parametrize("patch_size", [4, 8])
@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_equals_quantus(cnn, digits, patch_size, order):
    quantus = _quantus()
    torch_model, ref = cnn
    x, _ = _batch(digits)
    targets = np.argmax(ref.logits(x), axis=1)
    rel = np.asarray(ref.explain(Case("real"), x, targets).input).reshape(N, -1)
    metric = quantus.RegionPerturbation(patch_size=patch_size, order=order, regions_evaluation=6,
                                        perturb_baseline=0.0, normalise=False,
                                        disable_warnings=True)
    theirs = np.asarray(metric(model=torch_model, x_batch=x, y_batch=targets,
                               a_batch=rel.reshape(x.shape), device="cpu", softmax=True,
                               channel_first=True))
    patches = patch_ids((1, 28, 28), patch_size)
    ranking = patch_orders(rel, patches)
    ranking = ranking if order == "morf" else ranking[:, ::-1]
    flat = x.reshape(N, -1)
    curve = region_perturbation(ref.probabilities, flat, np.zeros_like(flat), targets, ranking,
                                patches, 6, (1, 28, 28))
    np.testing.assert_allclose(curve[:, :1] - curve[:, 1:], theirs, atol=2e-5)


def test_patches_follow_quantus_padding():
    ids = patch_ids((1, 28, 28), 8).reshape(28, 28)
    # 28 = 2 + 3·8 + 2: Quantus pads by 2 on each side, so the first patch holds 6 rows
    assert ids[5, 0] == 0 and ids[6, 0] == 4 and ids[27, 27] == 15
    assert len(np.unique(ids)) == 16


def _plain_order(values: list, secondary: list) -> list[int]:
    return sorted(range(len(values)), key=lambda j: (-values[j], -secondary[j], j))


def _ort_probabilities(session, x: np.ndarray) -> np.ndarray:
    z = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
    z = z.astype(np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("baseline", ["mean", "blur"])
def test_faithfulness_job_equals_plain_loop(baseline):
    """The dataset job (chunks of 4) against a loop over single samples: relevance from the
    one-sample API, inputs sorted with ``sorted``, each step predicted by onnxruntime."""
    import provgraph as pg

    model = ModelRef(bundled_model_path())
    data = bundled_mnist("test")
    settings = Settings(fraction=0.15, perturb_baseline=baseline, features_in_step=112,
                        patch_size=7, regions_evaluation=5)
    case = Case("boolean")
    result = run_reduction(data, Faithfulness(model, [case], settings), 4, False, 0, 10)
    session = ort.InferenceSession(str(bundled_model_path()))
    net = pg.load(bundled_model_path())
    x_all = data.read(0, 10).astype(np.float64)
    flips, removal_most, removal_least, conf0 = [], [], [], []
    for xi in x_all:
        target = int(np.argmax(_ort_probabilities(session, xi[None])))
        rel = pg.explain(net, xi, target=target, semiring="boolean").input
        real = pg.explain(net, xi, target=target, semiring="real",
                          rule="lrp0", init="logit").input
        order = _plain_order([bool(v) for v in rel], [float(v) for v in real])
        fill = replacement_values(xi[None], baseline, (1, 28, 28))[0]
        p0 = _ort_probabilities(session, xi[None])[0, target]
        curve, xp = [p0], xi.copy()
        for step in range(math.ceil(784 / 112)):
            for j in order[step * 112 : (step + 1) * 112]:
                xp[j] = fill[j]
            curve.append(_ort_probabilities(session, xp[None])[0, target])
        flips.append(curve)
        k = round(0.15 * 784)
        most, least = xi.copy(), xi.copy()
        most[order[:k]] = fill[order[:k]]
        least[order[-k:]] = fill[order[-k:]]
        removal_most.append(_ort_probabilities(session, most[None])[0, target] - p0)
        removal_least.append(_ort_probabilities(session, least[None])[0, target] - p0)
        conf0.append(p0)
    flips = np.asarray(flips)
    np.testing.assert_allclose(result.curves[case.label]["flip morf"], flips.mean(axis=0),
                               atol=1e-5)
    row = result.table[case.label]
    np.testing.assert_allclose(row["Δconf −most"], np.mean(removal_most), atol=1e-5)
    np.testing.assert_allclose(row["Δconf −least"], np.mean(removal_least), atol=1e-5)
    trapezoid = np.mean([sum((c[i] + c[i + 1]) / 2 for i in range(len(c) - 1)) / (len(c) - 1)
                         for c in flips])
    np.testing.assert_allclose(row["AUC MoRF"], trapezoid, atol=1e-5)
    assert row["Δconf −most"] < -0.3  # removing the most relevant pixels hurts


def test_faithfulness_does_not_depend_on_chunking():
    model = ModelRef(bundled_model_path())
    data = bundled_mnist("test")
    settings = Settings(features_in_step=196, regions_evaluation=4, patch_size=14)
    cases = [Case("counting"), Case("real", "epsilon:0.01")]
    a = run_reduction(data, Faithfulness(model, cases, settings), 5, False, 0, 12)
    b = run_reduction(data, Faithfulness(model, cases, settings), 12, False, 0, 12)
    for name in a.table:
        for metric, value in a.table[name].items():
            assert value == pytest.approx(b.table[name][metric], abs=1e-12), (name, metric)
    assert set(a.table) == {"counting/lrp0", "real/epsilon:0.01", "random order"}


def test_input_pruning_equals_plain_loop():
    """Rankings of summed relevance (exact Counting sums) and accuracy with the top inputs kept,
    against sums and sorts over single-sample explanations and onnxruntime."""
    import provgraph as pg

    model = ModelRef(bundled_model_path())
    data = bundled_mnist("test")
    case = Case("counting")
    orders = run_reduction(data, MeanInputRelevance(model, [case]), 4, False, 0, 10)
    x_rank = data.read(0, 10).astype(np.float64)
    session = ort.InferenceSession(str(bundled_model_path()))
    net = pg.load(bundled_model_path())
    sums, real = [0] * 784, [0.0] * 784
    for xi in x_rank:
        target = int(np.argmax(_ort_probabilities(session, xi[None])))
        counts = pg.explain(net, xi, target=target, semiring="counting").input
        lrp = pg.explain(net, xi, target=target, semiring="real", rule="lrp0",
                         init="logit").input
        sums = [s + int(c) for s, c in zip(sums, counts)]
        real = [r + float(v) for r, v in zip(real, lrp)]
    expected = _plain_order(sums, real)
    assert orders[case.label].tolist() == expected
    curves = run_reduction(data, InputPruning(model, orders, (0.1, 0.5)), 6, False, 10, 30)
    x_test, y_test = data.read(10, 30).astype(np.float64), data.labels[10:30]
    for f in (0.1, 0.5):
        kept = np.zeros(784, dtype=bool)
        kept[expected[: round(f * 784)]] = True
        p = _ort_probabilities(session, np.where(kept, x_test, 0.0))
        assert curves[case.label][f]["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y_test))
    assert set(curves) == {case.label, "random order"}
