"""Counting never fails by default: past 2⁶³ the driver widens the carrier and says so.

The network is a real ONNX file: a deep narrow ReLU MLP exported by ``torch.onnx``. With Θ ≡ 1
every edge counts, so the number of paths from an input to a class is the product of the
hidden widths, a Python integer computed here; the scipy backend's exact big-integer counts are
the second oracle (for the default threshold Θ, where dead neurons cut paths).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from provgraph import importers
from provgraph.algebra.counting_carriers import (
    CountingFallbackWarning,
    CountingFloat64Semiring,
    CountOverflowError,
    LogCountingSemiring,
)
from provgraph.api import explain
from provgraph.backends import TorchBackend
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.explainer import Explainer
from provgraph.model.trace import forward_trace

WIDTH, HIDDEN, INPUTS = 64, 11, 4  # 64**11 = 2**66 paths from every input to every class


class DeepNarrowMLP(nn.Module):
    def __init__(self, width: int, bias: bool) -> None:
        super().__init__()
        widths = [INPUTS] + [width] * HIDDEN
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b, bias=bias), nn.ReLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, 3, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _export(folder: Path, width: int, bias: bool) -> Path:
    torch.manual_seed(0)
    path = folder / f"deep_chain_{width}_{bias}.onnx"
    torch.onnx.export(DeepNarrowMLP(width, bias).eval(), torch.rand(1, INPUTS), str(path),
                      dynamo=False, input_names=["x"], output_names=["logits"])
    return path


@pytest.fixture(scope="module")
def deep_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Width 64: 2**66 paths under Θ ≡ 1."""
    return _export(tmp_path_factory.mktemp("deep_chain"), WIDTH, True)


@pytest.fixture(scope="module")
def wide_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Width 256 without biases: about half the neurons live, still past 2**63 paths under the
    default threshold Θ; an all-zero input has no relevant path at all."""
    return _export(tmp_path_factory.mktemp("wide_chain"), 4 * WIDTH, False)


def _sample() -> np.ndarray:
    return np.linspace(0.2, 1.0, INPUTS)[None]


def test_default_counting_past_2_63_widens_with_a_warning(deep_chain: Path) -> None:
    expected = WIDTH**HIDDEN
    assert expected > 2**63
    with pytest.warns(CountingFallbackWarning, match="int64 counts overflowed.*float64"):
        rel = explain(deep_chain, _sample(), target=1, semiring="counting", theta="one",
                      backend="torch")
    assert rel.info["counting"] == "float64"
    assert "overflow" in rel.info["counting_reason"]
    assert isinstance(rel.semiring, CountingFloat64Semiring)
    counts = rel.input.reshape(-1)
    assert np.allclose(counts, float(expected), rtol=1e-12)
    assert [float(c) for c in counts] == [float(expected)] * INPUTS  # a power of two: exact


def test_threshold_counts_past_2_63_agree_with_exact_integers(wide_chain: Path) -> None:
    net = importers.load_onnx(wide_chain)
    graph = AnnotatedGraph(net, forward_trace(net, _sample()))
    exact = graph.aggregate("counting", target=[0, 2], backend="scipy")
    with pytest.warns(CountingFallbackWarning):
        wide = graph.aggregate("counting", target=[0, 2], backend="torch")
    assert wide.info["counting"] == "float64"
    for name, counts in exact.tensors.items():
        big = [int(v) for v in counts.reshape(-1)]
        assert np.allclose(wide.tensors[name].reshape(-1), [float(v) for v in big], rtol=1e-12)
    assert max(int(v) for v in exact.input.reshape(-1)) > 2**63


def test_counts_that_fit_stay_exact_int64_without_a_warning(deep_chain: Path) -> None:
    net = importers.load_onnx(deep_chain)
    graph = AnnotatedGraph(net, forward_trace(net, _sample()))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingFallbackWarning)
        rel = graph.aggregate("counting", target=0, backend="torch")
    exact = graph.aggregate("counting", target=0, backend="scipy")
    assert rel.info["counting"] == "int64" and rel.input.dtype == np.int64
    assert max(int(v) for v in exact.input.reshape(-1)) > 2**40  # large, and still int64
    for name, counts in exact.tensors.items():
        want = [int(v) for v in counts.reshape(-1)]
        assert [int(v) for v in rel.tensors[name].reshape(-1)] == want


def test_strict_int64_still_raises_and_explicit_carriers_are_kept(deep_chain: Path) -> None:
    net = importers.load_onnx(deep_chain)
    graph = AnnotatedGraph(net, forward_trace(net, _sample()))
    with pytest.raises(CountOverflowError):
        graph.aggregate("counting", theta="one", target=0, backend=TorchBackend(counting="int64"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CountingFallbackWarning)
        log = graph.aggregate(LogCountingSemiring(), theta="one", target=0, backend="torch")
    assert log.info["counting"] == "log"
    assert np.allclose(log.input, HIDDEN * math.log(WIDTH), rtol=1e-12)


def test_a_batch_whose_later_chunk_overflows_is_all_in_the_wider_carrier(wide_chain: Path) -> None:
    # sample 0 is all zeros: no edge passes the threshold Θ, no count overflows; sample 1 does
    x = np.stack([np.zeros(INPUTS), np.linspace(0.2, 1.0, INPUTS)])
    explainer = Explainer(wide_chain, "counting", backend="torch", batch_size=1)
    with pytest.warns(CountingFallbackWarning):
        batch = explainer.explain_batch(x, target=[1, 1])
    assert batch.info["counting"] == "float64"
    net = importers.load_onnx(wide_chain)
    for i in range(2):
        graph = AnnotatedGraph(net, forward_trace(net, x[i : i + 1]))
        exact = graph.aggregate("counting", target=1, backend="scipy").input.reshape(-1)
        got = np.asarray(batch.input[i], dtype=np.float64).reshape(-1)
        assert np.allclose(got, [float(int(v)) for v in exact], rtol=1e-12)


@pytest.mark.parametrize("engine", ["torch", "numba"])
def test_the_carrier_switches_at_the_overflowing_op_without_a_rerun(
    deep_chain: Path, monkeypatch: pytest.MonkeyPatch, engine: str
) -> None:
    from provgraph.backends import NumbaBackend

    backend = TorchBackend() if engine == "torch" else NumbaBackend()
    steps: list[tuple[str, str]] = []
    real_step = backend.step

    def spy(op, ctx):
        steps.append((op.name, ctx.semiring.counting_mode))
        return real_step(op, ctx)

    monkeypatch.setattr(backend, "step", spy)
    net = importers.load_onnx(deep_chain)
    graph = AnnotatedGraph(net, forward_trace(net, _sample()))
    with pytest.warns(CountingFallbackWarning, match="int64 counts overflowed.* from there on"):
        rel = graph.aggregate("counting", theta="one", target=1, backend=backend)
    modes = [mode for _, mode in steps]
    switch = modes.index("float64")
    assert switch > 0 and set(modes[:switch]) == {"int64"} and set(modes[switch:]) == {"float64"}
    # only the op that overflowed is stepped twice, once in each carrier
    assert steps[switch - 1][0] == steps[switch][0]
    assert len(steps) == len({name for name, _ in steps}) + 1
    assert rel.info["counting"] == "float64" and steps[switch][0] in rel.info["counting_reason"]
    assert [float(c) for c in rel.input.reshape(-1)] == [float(WIDTH**HIDDEN)] * INPUTS


def test_a_backend_that_cannot_recast_reruns_in_the_wider_carrier(
    deep_chain: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = TorchBackend()
    monkeypatch.setattr(backend, "recast", lambda source, target, value: None)
    calls: list[str] = []
    real_step = backend.step
    monkeypatch.setattr(backend, "step", lambda op, ctx: (
        calls.append(ctx.semiring.counting_mode), real_step(op, ctx))[1])
    net = importers.load_onnx(deep_chain)
    graph = AnnotatedGraph(net, forward_trace(net, _sample()))
    with pytest.warns(CountingFallbackWarning):
        rel = graph.aggregate("counting", theta="one", target=1, backend=backend)
    assert calls.count("float64") == len(net.ops)  # the whole walk again
    assert rel.info["counting"] == "float64"
    assert [float(c) for c in rel.input.reshape(-1)] == [float(WIDTH**HIDDEN)] * INPUTS
