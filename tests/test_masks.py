"""Class-wise masks: chunked statistics equal the whole set and a loop over single samples.

Oracles: the one-sample API (scipy reference backend, exact Python-integer path counts) called
sample by sample and summed in plain Python; onnxruntime for re-classifying masked digits.
"""

from __future__ import annotations

import pickle

import numpy as np
import onnxruntime as ort
import pytest

import provgraph as pg
from provgraph.apps import bundled_mnist, run_reduction
from provgraph.apps.demo import bundled_model_path
from provgraph.apps.mask_evaluation import MaskEvaluation, random_masks
from provgraph.apps.masks import ClassRelevance, MaskSet, all_masks, boolean_masks
from provgraph.apps.model_job import Case as ModelCase
from provgraph.apps.model_job import ModelRef

N = 24


@pytest.fixture(scope="module")
def model() -> ModelRef:
    return ModelRef(bundled_model_path())


@pytest.fixture(scope="module")
def whole(model):
    """The statistics of the first N digits in one chunk."""
    return run_reduction(bundled_mnist("test"), ClassRelevance(model), N, False, 0, N)


@pytest.fixture(scope="module")
def loop():
    """Per class and semiring, sums and non-zero counts from one explanation per sample."""
    data = bundled_mnist("test")
    x, y = data.read(0, N).astype(np.float64), data.labels[:N]
    sums = {k: [[0] * 784 for _ in range(10)] for k in ("boolean", "counting", "real")}
    nonzero = {k: [[0] * 784 for _ in range(10)] for k in sums}
    counts = [0] * 10
    net = pg.load(bundled_model_path())
    for xi, yi in zip(x, y):
        counts[int(yi)] += 1
        for k in sums:
            rel = pg.explain(net, xi, target=int(yi), semiring=k).input
            for j, v in enumerate(rel):
                value = float(v) if k == "real" else int(v)
                sums[k][int(yi)][j] += value
                nonzero[k][int(yi)][j] += int(value != 0)
    return sums, nonzero, counts


@pytest.mark.parametrize("chunk", [5, 11])
def test_chunks_equal_whole_set_and_single_samples(model, whole, loop, chunk):
    sums, nonzero, counts = loop
    chunked = run_reduction(bundled_mnist("test"), ClassRelevance(model), chunk, False, 0, N)
    for result in (chunked, whole):
        assert result.counts.tolist() == counts
        for case, summary in result.summaries.items():
            k = case.semiring
            assert summary.nonzero.tolist() == nonzero[k], k
            if k == "real":
                np.testing.assert_allclose(summary.sums, np.asarray(sums[k]), rtol=1e-9,
                                           atol=1e-13)
            else:  # exact integers: Boolean frequencies and path counts
                assert [[int(v) for v in row] for row in summary.sums] == sums[k], k
    for a, b in zip(all_masks(chunked), all_masks(whole)):
        assert a.name == b.name and np.array_equal(a.masks, b.masks)


def test_masks_from_frequencies(whole, loop):
    _, nonzero, counts = loop
    sets = {s.name: s.masks for s in boolean_masks(whole.of("boolean")[1], (0.5, 1.0))}
    for c in range(10):
        n = counts[c]
        for j in range(784):
            # a class without samples has empty masks
            assert sets["boolean f≥0.5"][c, j] == (n > 0 and nonzero["boolean"][c][j] * 2 >= n)
            assert sets["boolean f≥1"][c, j] == (n > 0 and nonzero["boolean"][c][j] == n)
            assert sets["boolean AND"][c, j] == (n > 0 and nonzero["boolean"][c][j] == n)
            assert sets["boolean OR"][c, j] == (nonzero["boolean"][c][j] > 0)


def test_counting_and_real_masks_take_the_top_pixels(whole, loop):
    sums, _, _ = loop
    sets = {s.name: s for s in all_masks(whole, (0.5,))}
    size = sets["boolean f≥0.5"].sizes
    for name, k in (("counting top(f≥0.5)", "counting"), ("real top(f≥0.5)", "real")):
        assert np.array_equal(sets[name].sizes, size)
        for c in range(10):
            second = sums["real"][c] if k == "counting" else [0.0] * 784
            order = sorted(range(784), key=lambda j: (-sums[k][c][j], -second[j], j))
            assert set(np.flatnonzero(sets[name].masks[c])) == set(order[: size[c]]), (k, c)


def test_reduction_pickles_without_the_loaded_model(model, whole):
    job = ClassRelevance(model)
    assert job.model.network.num_classes == 10  # loaded
    data = pickle.dumps(job)
    assert bundled_model_path().read_bytes() not in data  # the model travels by its sha256
    assert len(data) < 4096  # neither the network nor its explainers
    copy = pickle.loads(data)
    assert copy.model.sha256 == model.sha256 and copy.model.handle.sha256 == model.sha256
    chunk = next(bundled_mnist("test").chunks(N, 0, N))
    part = copy.finish(copy.map(chunk))
    for case, summary in part.summaries.items():
        assert np.array_equal(summary.nonzero, whole.summaries[case].nonzero)


def test_predicted_targets_group_by_prediction(model):
    data = bundled_mnist("test")
    result = run_reduction(data, ClassRelevance(model, targets="predicted"), 10, False, 0, 20)
    predicted = np.argmax(model.logits(data.read(0, 20).astype(np.float64)), axis=1)
    assert result.counts.tolist() == np.bincount(predicted, minlength=10).tolist()


def test_mask_evaluation_equals_onnxruntime_loop(model, whole):
    data = bundled_mnist("test")
    sets = [s for s in all_masks(whole, (0.75,)) if s.name in ("boolean f≥0.75", "boolean OR")]
    job = MaskEvaluation(model, sets, baseline=0.0, seed=3)
    rows = {r["set"]: r for r in run_reduction(data, job, 9, False, 0, 30)}
    session = ort.InferenceSession(str(bundled_model_path()))
    x, y = data.read(0, 30), data.labels[:30]

    def probabilities(batch):
        z = session.run(None, {session.get_inputs()[0].name: batch.astype(np.float32)})[0]
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    pred = probabilities(x).argmax(axis=1)
    for i, s in enumerate(sets):
        rand = random_masks(s.masks, 3, i)
        assert np.array_equal(rand.sum(axis=1), s.masks.sum(axis=1))
        for kind, masks in (("mask", s.masks), ("random", rand)):
            for mode in ("keep", "remove"):
                m = masks[pred]
                xm = np.where(m, x, 0.0) if mode == "keep" else np.where(m, 0.0, x)
                p = probabilities(xm)
                cells = rows[s.name][f"{mode} {kind}"]
                assert cells["accuracy"] == pytest.approx(np.mean(p.argmax(1) == y))
                assert cells["agreement"] == pytest.approx(np.mean(p.argmax(1) == pred))
                conf = np.mean(p[np.arange(30), pred])
                assert cells["confidence"] == pytest.approx(conf, abs=1e-5)
    # keeping the pixels the class uses beats keeping as many random pixels
    f75 = rows["boolean f≥0.75"]
    assert f75["keep mask"]["accuracy"] > f75["keep random"]["accuracy"]
    assert f75["remove mask"]["accuracy"] < f75["remove random"]["accuracy"]


def test_random_masks_are_seeded():
    masks = np.zeros((3, 50), dtype=bool)
    masks[:, :10] = True
    a, b, c = random_masks(masks, 1, 0), random_masks(masks, 1, 0), random_masks(masks, 2, 0)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.sum(axis=1).tolist() == [10, 10, 10]
    assert MaskSet("m", masks, "").sizes.tolist() == [10, 10, 10]


def test_batched_explanation_computes_only_each_samples_target(model):
    """Per-sample targets give one relevance column per sample (its own label), equal to the
    one-sample explanation of that label on the scipy reference."""
    data = bundled_mnist("test")
    x, y = data.read(0, 6).astype(np.float64), data.labels[:6]
    rel = model.explain(ModelCase("counting"), x, y)
    assert rel.targets.shape == (6, 1) and rel.targets[:, 0].tolist() == y.tolist()
    assert rel.tensors[model.network.input_name].shape == (6, 784, 1)
    for i in range(6):
        one = pg.explain(model.network, x[i], target=int(y[i]), semiring="counting",
                         backend="scipy").input
        assert [int(v) for v in rel.input[i]] == [int(v) for v in one]
