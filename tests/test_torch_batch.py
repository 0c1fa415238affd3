"""Batches of samples and of targets in one pass; exact, float64 and log-domain path counts.

Oracles: per-sample, per-target results of the scipy reference (Python integers for Counting),
closed-form path counts of dense chains, and Python integer arithmetic for the int64 kernels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from models import build, export_onnx
from torch_checks import assert_agree, assert_values, one_thread_per_worker  # noqa: F401 (autouse fixture)

from provgraph import importers
from provgraph.algebra.counting_carriers import (
    CountingFloat64Semiring,
    CountOverflowError,
    LogCountingSemiring,
)
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, CountingSemiring
from provgraph.api import explain, explain_batch, explain_batched
from provgraph.backends import TorchBackend
from provgraph.backends.torch_semiring import IntegerCarrier
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph, BatchRelevance
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Dense
from provgraph.model.trace import forward_trace

DATA = Path(importers.__file__).resolve().parent.parent / "provgraph" / "data"


@pytest.fixture(scope="module")
def conv_net(tmp_path_factory: pytest.TempPathFactory) -> Network:
    path = tmp_path_factory.mktemp("batch") / "vgg_style.onnx"
    return importers.load_onnx(export_onnx(build("vgg_style", seed=3), path, keep_batchnorm=True))


@pytest.fixture(scope="module")
def mnist() -> tuple[Network, np.ndarray]:
    net = importers.load_onnx(DATA / "mnist_mlp.onnx")
    return net, np.load(DATA / "mnist_samples.npz")["x"].astype(np.float64)


def dense_chain(widths: list[int], seed: int = 0) -> Network:
    rng = np.random.default_rng(seed)
    ops, prev = [], "x"
    for i in range(len(widths) - 1):
        out = "y" if i == len(widths) - 2 else f"z{i}"
        w = rng.normal(scale=widths[i] ** -0.5, size=(widths[i], widths[i + 1]))
        ops.append(Dense(f"dense{i}", (prev,), out, weight=w, bias=rng.normal(size=widths[i + 1])))
        if out != "y":
            ops.append(Activation(f"relu{i}", (out,), f"h{i}", function="relu"))
            prev = f"h{i}"
    return Network(ops, "x", "y", (widths[0],), name="chain")


# --------------------------------------------------------------------------- samples × targets
@pytest.mark.parametrize("semiring", list(BUILTIN_SEMIRINGS))
def test_batch_of_samples_and_targets_equals_one_at_a_time(conv_net, semiring: str) -> None:
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=(3,) + conv_net.input_shape)
    targets = list(range(conv_net.num_classes))
    batch = BatchGraph.from_inputs(conv_net, x).aggregate(
        semiring, target=targets, backend=TorchBackend(budget=5000)
    )
    assert isinstance(batch, BatchRelevance) and len(batch) == 3
    assert batch.targets.tolist() == [targets] * 3
    trace = forward_trace(conv_net, x)
    for i, rel in enumerate(batch):
        graph = AnnotatedGraph(conv_net, trace.sample(i))
        assert_agree(graph.aggregate(semiring, target=targets, backend="scipy"), rel, f"{i}")
        for col, t in enumerate(targets):  # each column is that target's own explanation
            one = graph.aggregate(semiring, target=t, backend="torch")
            assert_values(one.semiring, one.input, rel.layer(conv_net.input_name, col))


def test_batch_targets_default_to_each_samples_prediction(conv_net) -> None:
    x = np.random.default_rng(1).normal(size=(4,) + conv_net.input_shape)
    graph = BatchGraph.from_inputs(conv_net, x)
    batch = graph.aggregate("real", rule="epsilon", init="logit")
    predicted = np.argmax(graph.logits, axis=1)
    assert batch.targets[:, 0].tolist() == predicted.tolist()
    for i, rel in enumerate(batch):
        single = explain(conv_net, x[i], semiring="real", rule="epsilon", init="logit")
        assert single.target == predicted[i]
        assert_agree(single, rel, f"sample {i}")
    assert batch.input.shape == (4,) + conv_net.input_shape
    assert batch.info["backend"] == "torch"


def test_all_ten_mnist_classes_for_all_digits_at_once(mnist) -> None:
    net, x = mnist
    classes = list(range(10))
    for semiring in ("real", "counting", "boolean"):
        batch = explain_batched(net, x, semiring, classes=classes, init="one", dtype="float64")
        assert batch.tensors[net.input_name].shape == (10, 784, 10)
        for i in (0, 7):
            graph = AnnotatedGraph(net, forward_trace(net, x[i]))
            reference = graph.aggregate(semiring, target=classes, backend="scipy")
            assert_agree(reference, batch[i], f"{semiring} digit {i}")


def test_explain_batch_chunks_and_backends_agree(mnist) -> None:
    net, x = mnist
    kw = {"semiring": "viterbi", "classes": [3, 8]}
    torch_results = explain_batch(net, x, backend="torch", batch_size=4, **kw)
    scipy_results = explain_batch(net, x, backend="scipy", **kw)
    assert len(torch_results) == len(scipy_results) == 10
    for a, b in zip(scipy_results, torch_results):
        assert_agree(a, b)
    stacked = explain_batched(net, x, kw["semiring"], classes=kw["classes"], batch_size=3)
    assert np.allclose(stacked.input, np.stack([r.input for r in torch_results]), rtol=1e-12)


def test_batch_graph_with_the_scipy_backend_goes_sample_by_sample(mnist) -> None:
    net, x = mnist
    graph = BatchGraph.from_inputs(net, x[:3])
    by_scipy = graph.aggregate("counting", backend="scipy", target=[0, 1])
    by_torch = graph.aggregate("counting", backend="torch", target=[0, 1])
    assert by_scipy.info["backend"] == "scipy" and by_torch.info["backend"] == "torch"
    for a, b in zip(by_scipy, by_torch):
        assert_agree(a, b)


# --------------------------------------------------------------------------- counting modes
def test_counts_between_2_53_and_2_63_are_exact() -> None:
    width, hidden = 60, 10  # 60**10 ≈ 6e17 paths from each input: past float64's 2**53
    net = dense_chain([3] + [width] * hidden + [2], seed=2)
    graph = AnnotatedGraph(net, forward_trace(net, np.ones(3)))
    reference = graph.aggregate("counting", theta="one", target=[0, 1], backend="scipy")
    result = graph.aggregate("counting", theta="one", target=[0, 1], backend="torch")
    expected = width**hidden
    assert 2**53 < expected < 2**63
    assert [int(v) for v in result.tensors["x"].reshape(-1)] == [expected] * 6
    assert_agree(reference, result)


def test_int64_overflow_is_detected_and_float64_and_log_modes_go_beyond() -> None:
    width, hidden = 64, 11  # 64**11 = 2**66 paths from each input
    net = dense_chain([4] + [width] * hidden + [2], seed=3)
    graph = AnnotatedGraph(net, forward_trace(net, np.ones(4)))
    exact = graph.aggregate("counting", theta="one", target=[1], backend="scipy")
    with pytest.raises(CountOverflowError, match="counting='float64'"):
        graph.aggregate("counting", theta="one", target=[1], backend=TorchBackend(counting="int64"))

    as_float = graph.aggregate(
        "counting", theta="one", target=[1], backend=TorchBackend(counting="float64")
    )
    as_log = graph.aggregate(
        "counting", theta="one", target=[1], backend=TorchBackend(counting="log")
    )
    assert as_float.info["counting"] == "float64" and as_log.info["counting"] == "log"
    assert isinstance(as_float.semiring, CountingFloat64Semiring)
    assert isinstance(as_log.semiring, LogCountingSemiring)
    for t, counts in exact.tensors.items():
        big = [int(v) for v in counts.reshape(-1)]
        assert np.allclose(as_float.tensors[t].reshape(-1), [float(v) for v in big], rtol=1e-12)
        logs = [math.log(v) if v else -math.inf for v in big]
        assert np.allclose(as_log.tensors[t].reshape(-1), logs, rtol=1e-12, atol=1e-9)
    assert int(exact.tensors["x"][0, 0]) == 2**66
    assert as_log.tensors["x"][0, 0] == pytest.approx(66 * math.log(2), rel=1e-12)


def test_count_modes_are_semirings_every_backend_runs() -> None:
    net = dense_chain([5, 7, 6, 3], seed=4)
    graph = AnnotatedGraph(net, forward_trace(net, np.linspace(0.1, 1.0, 5)))
    for k in (CountingFloat64Semiring(), LogCountingSemiring()):
        reference = graph.aggregate(k, target=[0, 2], backend="scipy")
        assert_agree(reference, graph.aggregate(k, target=[0, 2], backend="torch"))
    counts = graph.aggregate("counting", target=[0, 2], backend="scipy").tensors["x"]
    logs = graph.aggregate(LogCountingSemiring(), target=[0, 2], backend="torch").tensors["x"]
    with np.errstate(divide="ignore"):
        assert np.allclose(logs, np.log(counts.astype(np.float64)), atol=1e-12)


def test_float64_counts_overflowing_ask_for_the_log_mode() -> None:
    width, hidden = 400, 119  # 400**119 ≈ 5e309 paths from each input: past float64's range
    net = dense_chain([2] + [width] * hidden + [2], seed=5)
    graph = AnnotatedGraph(net, forward_trace(net, np.ones(2)))
    as_float = TorchBackend(counting="float64")
    with pytest.raises(CountOverflowError, match="counting='log'"):
        graph.aggregate("counting", theta="one", target=0, backend=as_float)
    as_log = TorchBackend(counting="log")
    result = graph.aggregate("counting", theta="one", target=0, backend=as_log)
    assert result.tensors["x"][0, 0] == pytest.approx(hidden * math.log(width), rel=1e-12)


def test_int64_carrier_against_python_integers() -> None:
    rng = np.random.default_rng(6)
    carrier = IntegerCarrier(CountingSemiring(), torch.float64, torch.device("cpu"))
    m = rng.integers(0, 2, size=(3, 5, 7))
    r = rng.integers(0, 2**59, size=(3, 2, 7))
    got = carrier.contract(torch.as_tensor(m), torch.as_tensor(r)).numpy()
    want = [
        [[sum(int(m[p, j, k]) * int(r[p, t, k]) for k in range(7)) for j in range(5)]
         for t in range(2)]
        for p in range(3)
    ]
    assert got.tolist() == want
    index = torch.as_tensor(rng.integers(0, 4, size=(1, 9)))
    src = torch.as_tensor(rng.integers(0, 2**61, size=(2, 9)))
    scattered = carrier.scatter(src, index, 4).numpy()
    for row in range(2):
        for i in range(4):
            want_i = sum(int(src[row, n]) for n in range(9) if int(index[0, n]) == i)
            assert want_i < 2**63 or pytest.fail("test values too large")
            assert int(scattered[row, i]) == want_i
    total = carrier.reduce(torch.as_tensor(rng.integers(0, 2**60, size=(6,))), (0,))
    with pytest.raises(CountOverflowError):
        carrier.reduce(torch.full((9,), 2**60, dtype=torch.int64), (0,))
    with pytest.raises(CountOverflowError):
        carrier.mul(torch.tensor([2**40]), torch.tensor([2**23]))
    with pytest.raises(CountOverflowError):
        carrier.contract(torch.ones((1, 1, 4), dtype=torch.int64), torch.full((1, 1, 4), 2**61))
    assert int(total) < 2**63


# --------------------------------------------------------------------------- command line
def test_cli_batch_over_a_folder_of_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from provgraph.cli.main import main
    from provgraph.io.inputs import read_input

    model, folder, out = DATA / "mnist_mlp.onnx", DATA / "digits", tmp_path / "rel.npz"
    args = ["explain", str(model), str(folder), "--batch", "4", "--backend", "torch"]
    args += ["--device", "cpu", "--semiring", "counting", "--target", "3", "--save", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    files = sorted(folder.glob("*.png"))
    lines = [line for line in captured.out.splitlines() if line.startswith("digit_")]
    assert [line.split(":")[0] for line in lines] == [f.stem for f in files]
    assert "backend: torch on cpu, counting int64" in captured.out
    saved = np.load(out)
    assert saved["input"].shape == (len(files), 1, 784)
    assert saved["names"].tolist() == [f.stem for f in files]
    net = importers.load_onnx(model)
    for i, f in enumerate(files):
        reference = explain(net, read_input(f, net), target=3, semiring="counting", backend="scipy")
        assert np.array_equal(saved["input"][i, 0], reference.input.astype(np.int64))


def test_cli_batch_over_an_npy_stack(tmp_path: Path, mnist, capsys) -> None:
    from provgraph.cli.main import main

    net, x = mnist
    stack = tmp_path / "stack.npy"
    np.save(stack, x[:5])
    out = tmp_path / "rel.npz"
    args = ["explain", str(DATA / "mnist_mlp.onnx"), str(stack), "--batch", "2"]
    args += ["--rule", "epsilon:0.01", "--init", "logit", "--save", str(out)]
    assert main(args) == 0
    assert "backend: torch on cpu" in capsys.readouterr().out
    saved = np.load(out)
    for i in range(5):
        reference = explain(net, x[i], rule="epsilon:0.01", init="logit", backend="scipy")
        assert saved["targets"][i, 0] == reference.target
        assert_values(reference.semiring, reference.input, saved["input"][i, 0])


def test_cli_device_cuda_without_cuda_fails_in_one_line(capsys) -> None:
    from provgraph.cli.main import main

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    args = ["explain", str(DATA / "mnist_mlp.onnx"), str(DATA / "digits"), "--batch"]
    assert main(args + ["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    assert main(args + ["--backend", "scipy"]) == 2
    assert "need the torch backend" in capsys.readouterr().err
