"""The numba backend's fused kernels equal the scipy reference.

Every built-in semiring × rule × Θ on small networks that cover dense layers, residual Adds,
BatchNorm, convolutions with groups, dilation, stride and asymmetric padding, average pooling with
padding and ceil mode, max pooling, and 1-D and 3-D convolutions with global average pooling:
exactly for Boolean and Counting, within 1e-6 relative otherwise (``torch_checks.assert_agree``).
Batches of samples × targets equal per-sample reference calls. Counting's int64 kernels report
an overflow, checked against Python integer sums; user-defined semirings take the generic steps.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from models import MODELS, WITH_BATCHNORM, _settle, build, export_onnx
from torch import nn
from torch_checks import assert_agree, one_thread_per_worker  # noqa: F401 (autouse fixture)
from window_edges import count_by_edges

from provgraph import importers
from provgraph.algebra.composites import Composite, Entry
from provgraph.algebra.counting_carriers import CountOverflowError
from provgraph.algebra.rules import (
    LRPZB,
    Flat,
    LRPEpsilon,
    LRPGamma,
    LRPZero,
    MaxNormalized,
    WSquare,
)
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, get_semiring
from provgraph.algebra.theta import ConstantOne, IdentityTheta, NegLog, Threshold
from provgraph.api import explain_batched
from provgraph.backends import NumbaBackend
from provgraph.backends.numba_algebra import COUNT, ONE, EdgeAlgebra
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph
from provgraph.model.trace import forward_trace


class Conv1dNet(nn.Module):
    """Strided, padded, then grouped and dilated 1-D convolutions on 3×11."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(3, 4, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(4, 4, 3, padding=2, dilation=2, groups=2),
            nn.ReLU(),
        )
        self.fc = nn.Linear(4 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class Conv3dNet(nn.Module):
    """A strided, padded 3-D convolution, a depthwise one, then global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv3d(2, 4, (2, 3, 3), stride=(1, 2, 1), padding=(0, 1, 1)),
            nn.ReLU(),
            nn.Conv3d(4, 4, (1, 2, 2), groups=4),
            nn.AdaptiveAvgPool3d(1),
        )
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


EXTRA = {"conv1d": (Conv1dNet, (3, 11)), "conv3d": (Conv3dNet, (2, 4, 6, 5))}
NETS = ["mlp", "residual_cnn", "conv_variants", "pool_net", "conv1d", "conv3d"]


def _model(name: str, seed: int) -> nn.Module:
    if name in MODELS:
        return build(name, seed=seed)
    builder, shape = EXTRA[name]
    torch.manual_seed(seed)
    return _settle(builder(), shape, seed)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, AnnotatedGraph]:
    folder = tmp_path_factory.mktemp("numba")
    out = {}
    for i, name in enumerate(NETS):
        path = export_onnx(_model(name, i), folder / f"{name}.onnx",
                           keep_batchnorm=name in WITH_BATCHNORM)
        net = importers.load_onnx(path)
        x = np.random.default_rng(i).uniform(-0.2, 1.0, size=net.input_shape)
        out[name] = AnnotatedGraph(net, forward_trace(net, x))
    return out


def _rules(shape: tuple[int, ...]) -> list:
    low = np.linspace(-0.5, 0.0, int(np.prod(shape)))
    return [
        None,
        LRPZero(),
        LRPEpsilon(0.05),
        LRPGamma(0.5, epsilon=1e-6, modify_bias=False),
        Composite(LRPEpsilon(0.01), [Entry(0, LRPZB(low, low + 1.5))], name="boxed"),
        MaxNormalized(),
        Flat(),
        WSquare(),
    ]


THETAS = {
    "boolean": [None, ConstantOne(), Threshold(0.05, per_layer={0: 0.0, -1: 1e-3})],
    "counting": [None, ConstantOne(), Threshold(0.05, per_layer={0: 0.0, -1: 1e-3})],
    "viterbi": [None, Threshold(1e-3)],
    "fuzzy": [None, Threshold(1e-3)],
    "tropical": [None, IdentityTheta()],
    "real": [Threshold(1e-3), None],
}


@pytest.mark.parametrize("semiring", list(BUILTIN_SEMIRINGS))
@pytest.mark.parametrize("model", NETS)
def test_numba_equals_scipy(graphs, model: str, semiring: str) -> None:
    graph = graphs[model]
    k = get_semiring(semiring)
    targets = [0, graph.network.num_classes - 1]
    for rule in _rules(graph.network.input_shape):
        for theta in THETAS[semiring]:
            engine = NumbaBackend()
            kw = {"rule": rule, "theta": theta, "target": targets}
            reference = graph.aggregate(k, backend="scipy", **kw)
            result = graph.aggregate(k, backend=engine, **kw)
            what = f"{model} {semiring} {rule!r} {theta!r}"
            assert result.info["backend"] == "numba", what
            assert_agree(reference, result, what)
            gradient = semiring == "real" and theta is None
            assert (engine.fused_steps == 0) == gradient, what  # the kernels did the work


def test_tropical_negative_log_of_signed_weights(graphs) -> None:
    """Θ = −log of LRP-γ weights of either sign: the per-edge logarithm, not the factored form."""
    for model in ("conv_variants", "conv3d", "mlp"):
        graph = graphs[model]
        kw = {"theta": NegLog(), "rule": LRPGamma(0.3), "target": [0, 2]}
        reference = graph.aggregate("tropical", backend="scipy", **kw)
        engine = NumbaBackend()
        assert_agree(reference, graph.aggregate("tropical", backend=engine, **kw), model)
        assert engine.fused_steps > 0


@pytest.mark.parametrize("semiring", ["boolean", "counting", "viterbi", "tropical", "fuzzy"])
def test_a_batch_of_samples_and_targets_equals_each_sample(tmp_path, semiring: str) -> None:
    net = importers.load_onnx(export_onnx(build("vgg_style", seed=3), tmp_path / "v.onnx",
                                          keep_batchnorm=True))
    x = np.random.default_rng(5).uniform(0.0, 1.0, size=(3,) + net.input_shape)
    classes = [0, 2, 4]
    engine = NumbaBackend()
    batch = BatchGraph.from_inputs(net, x).aggregate(semiring, backend=engine, target=classes)
    assert engine.fused_steps > 0
    for i in range(len(x)):
        single = AnnotatedGraph(net, forward_trace(net, x[i]))
        reference = single.aggregate(semiring, backend="scipy", target=classes)
        assert_agree(reference, batch[i], f"{semiring} sample {i}")


def test_auto_explains_batches_with_the_numba_kernels(graphs) -> None:
    net = graphs["conv_variants"].network
    x = np.random.default_rng(0).uniform(size=(2,) + net.input_shape)
    batch = explain_batched(net, x, "viterbi", backend="auto")
    assert batch.info["backend"] == "numba"
    assert batch.info["backend_selection"].startswith("auto: numba")


def test_counting_overflow_is_reported_not_wrapped() -> None:
    from provgraph.backends.numba_contract import contract_window
    from provgraph.backends.numba_window import geometry

    big = 2**62
    counting = EdgeAlgebra(True, COUNT, ONE, 0.0, 0.0, 1.0)
    # dense: one input neuron, two outputs (a 1×1 convolution over one position)
    dense = geometry((1,), (1,), (1,), (1,), (1,), (0,), 1)
    S, V, d = np.ones((1, 1, 1, 1)), np.ones((1, 2, 1, 1)), np.ones((1, 1, 2))
    for values, overflows in (([big, big - 1], False), ([big, big], True)):
        R = np.array(values, dtype=np.int64).reshape(1, 1, 1, 2)
        assert (sum(values) > 2**63 - 1) == overflows  # Python integers: the true sum
        if overflows:
            with pytest.raises(CountOverflowError, match="int64"):
                contract_window(counting, S, V, np.zeros((1, 1)), False, d, R, dense)
        else:
            out = contract_window(counting, S, V, np.zeros((1, 1)), False, d, R, dense)
            assert out[0, 0, 0, 0] == sum(values)
    # a 1-D window of two taps: input 1 receives both outputs' counts
    geo = geometry((3,), (2,), (2,), (1,), (1,), (0,), 1)
    S, V, d = np.ones((1, 1, 3, 1)), np.ones((1, 1, 2, 1)), np.ones((1, 2, 1))
    R = np.full((1, 1, 2, 1), big, dtype=np.int64)
    with pytest.raises(CountOverflowError):
        contract_window(counting, S, V, np.zeros((1, 1)), False, d, R, geo)
    R[0, 0, 1, 0] = big - 1
    out = contract_window(counting, S, V, np.zeros((1, 1)), False, d, R, geo)
    assert out[0, 0, :, 0].tolist() == [big, 2 * big - 1, big - 1]


def test_user_defined_semiring_takes_the_generic_steps(graphs) -> None:
    class MaxTimes(type(get_semiring("viterbi"))):
        """A user's copy of Viterbi: no kernel code, so the torch steps run."""

        name = "maxtimes"

    graph = graphs["conv_variants"]
    engine = NumbaBackend()
    reference = graph.aggregate(MaxTimes(), backend="scipy", target=[1])
    assert_agree(reference, graph.aggregate(MaxTimes(), backend=engine, target=[1]))
    assert engine.fused_steps == 0


@pytest.mark.parametrize("spread", [5.0, 1000.0])
def test_tropical_factored_dense_equals_a_loop_over_edges(monkeypatch, spread: float) -> None:
    """Tropical, Θ = −log on a dense op: a narrow spread of costs runs the max-times product of
    the weights, a spread too wide for ``exp`` the weights' logarithms; both equal the plain
    ``min_k (−log(s_j v_jk / d_k) + R_k)``."""
    from provgraph.backends import numba_contract
    from provgraph.backends.numba_algebra import NEGLOG, TROPICAL
    from provgraph.backends.numba_contract import contract_window
    from provgraph.backends.numba_window import geometry

    logs = []
    step = numba_contract._logs_step
    monkeypatch.setattr(numba_contract, "_logs_step", lambda *a: logs.append(1) or step(*a))
    rng = np.random.default_rng(7)
    n_in, n_out = 6, 5
    tropical = EdgeAlgebra(False, TROPICAL, NEGLOG, 0.0, np.inf, 0.0)
    S = rng.uniform(0.1, 2.0, (1, 1, 1, n_in))
    V = rng.uniform(0.0, 1.0, (1, n_out, 1, n_in)).astype(np.float32)
    V[0, 1, 0, 2] = 0.0  # a zero weight: no finite cost through that edge
    d = rng.uniform(0.5, 3.0, (1, 1, n_out))
    R = np.linspace(0.0, spread, n_out).reshape(1, 1, 1, n_out)
    R[0, 0, 0, 3] = np.inf  # K's zero: skipped
    geo = geometry((1,), (1,), (1,), (1,), (1,), (0,), 1)
    out = contract_window(tropical, S, V, np.zeros((1, 1)), False, d, R, geo)
    assert bool(logs) == (spread > numba_contract.SPREAD)
    with np.errstate(divide="ignore"):
        for j in range(n_in):
            costs = [
                -np.log(S[0, 0, 0, j] * float(V[0, k, 0, j]) / d[0, 0, k]) + R[0, 0, 0, k]
                for k in range(n_out)
            ]
            assert out[0, 0, 0, j] == pytest.approx(min(costs), rel=1e-12)


def test_a_large_dense_weight_is_converted_in_blocks_for_the_trace(tmp_path, monkeypatch) -> None:
    """A float64 trace of a dense layer whose float64 weight would exceed the copy cache is
    computed a block of output columns at a time; it equals onnxruntime's forward pass and the
    reference trace."""
    import onnxruntime as ort

    from provgraph.backends import torch_device

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2100, 1000), nn.ReLU(), nn.Linear(1000, 3)).eval()
    model.input_shape = (2100,)
    path = export_onnx(model, tmp_path / "wide.onnx")
    net = importers.load_onnx(path)
    assert net.ops[0].weight.size * 8 > torch_device.CACHED_COPY_BYTES
    blocks = []
    forward = torch_device._dense_forward_in_blocks
    monkeypatch.setattr(torch_device, "_dense_forward_in_blocks",
                        lambda *a: blocks.append(1) or forward(*a))
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(2, 2100))
    logits = BatchGraph.from_inputs(net, x).logits
    assert blocks, "the blocked conversion did not run"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    expected = session.run(None, {name: x.astype(np.float32)})[0]
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits, forward_trace(net, x).logits, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("semiring", ["viterbi", "tropical", "fuzzy"])
def test_dense_max_norm_by_sources_equals_each_sample(monkeypatch, semiring: str) -> None:
    """A batch of real digits (mostly zero pixels) through the bundled MLP: the max-norm
    denominators computed by sources, zero sources skipped, equal per-sample scipy calls."""
    from importlib.resources import files

    from provgraph.backends import numba_dense

    calls = []
    by_sources = numba_dense.columns_absmax

    def spy(*args):
        calls.append(args[0].shape[1])
        return by_sources(*args)

    monkeypatch.setattr(numba_dense, "columns_absmax", spy)
    data = files("provgraph") / "data"
    net = importers.load_onnx(str(data / "mnist_mlp.onnx"))
    with np.load(str(data / "mnist_test.npz")) as digits:
        x = digits["x"][:6].astype(np.float64).reshape((6,) + net.input_shape)
    x = x / 255.0 if x.max() > 1.5 else x
    assert (x == 0).mean() > 0.5  # the sparsity the kernel skips
    batch = BatchGraph.from_inputs(net, x).aggregate(semiring, backend=NumbaBackend())
    assert calls == [6, 6, 6]  # every dense layer took the by-sources kernel
    for i in range(len(x)):
        single = AnnotatedGraph(net, forward_trace(net, x[i]))
        target = [int(t) for t in batch.targets[i]]
        reference = single.aggregate(semiring, backend="scipy", target=target)
        assert_agree(reference, batch[i], f"{semiring} digit {i}")


@pytest.mark.parametrize(("spatial", "c_in", "c_out", "kernel", "stride", "dil", "pad", "groups"), [
    ((7, 6), 3, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((9, 8), 34, 19, (3, 2), (2, 1), (1, 2), (1, 0), 1),   # channels past one chunk of 16
    ((8, 7), 6, 9, (2, 3), (1, 2), (2, 1), (0, 2), 3),     # groups, stride, dilation, padding
    ((11,), 20, 36, (3,), (2,), (2,), (2,), 4),             # 1-D
    ((3, 4, 5), 4, 8, (2, 2, 3), (1, 2, 1), (1, 1, 2), (1, 0, 1), 2),  # 3-D
])
@pytest.mark.parametrize("mode", ["threshold", "near", "one"])
@pytest.mark.parametrize("semiring", ["boolean", "counting"])
def test_by_inputs_equals_every_edge(spatial, c_in, c_out, kernel, stride, dil, pad, groups,
                                     mode, semiring) -> None:
    """Boolean and Counting by input neurons, and the scatter kernel, against every edge."""
    from provgraph.backends.numba_algebra import BOOL, THRESHOLD, reciprocal
    from provgraph.backends.numba_inputs import window_inputs
    from provgraph.backends.numba_window import geometry, window_integer

    rng = np.random.default_rng(len(spatial) * 100 + c_in)
    out_sp = tuple((n + 2 * p - g * (k - 1) - 1) // s + 1
                   for n, p, g, k, s in zip(spatial, pad, dil, kernel, stride))
    geo = geometry(spatial, out_sp, kernel, stride, dil, pad, groups)
    n_b, n_t, p_in, p_out = 2, 3, int(np.prod(spatial)), int(np.prod(out_sp))
    S = rng.normal(size=(1, n_b, p_in, c_in)) * (rng.uniform(size=(1, n_b, p_in, c_in)) < 0.6)
    VT = rng.normal(size=(1, groups, int(np.prod(kernel)), c_in // groups, c_out // groups))
    VT = VT.astype(np.float32)
    d = rng.normal(size=(n_b, p_out, c_out)) * (rng.uniform(size=(n_b, p_out, c_out)) < 0.9)
    sparse = rng.uniform(size=(n_b, n_t, p_out, c_out)) < 0.05
    R = sparse * (1 if semiring == "boolean" else rng.integers(1, 2**40, size=sparse.shape))
    theta = 0.8
    if mode == "near":  # θ equal to one edge's exact r: decided by the division, not 1/d
        theta = float(S[0, 0, 0, 0] * float(VT[0, 0, 0, 0, 0]) / d[0, 0, 0]) if d[0, 0, 0] else 0.8
    counts = count_by_edges(S, VT, d, R, geo, theta, mode == "one")
    expected = (counts > 0 if semiring == "boolean" else counts).astype(np.int64)
    assert 0 < np.count_nonzero(expected) < expected.size  # neither trivially empty nor full
    th = ONE if mode == "one" else THRESHOLD
    sr = BOOL if semiring == "boolean" else COUNT
    for checked in (False, True):
        out = np.zeros_like(expected)
        boolean = semiring == "boolean"
        assert not window_inputs(S, VT, d, reciprocal(d), R, out, geo, boolean, th, theta,
                                 checked)
        np.testing.assert_array_equal(out, expected)
    if semiring == "counting":  # in float64 (Counting's float carrier, real with a threshold)
        summed = np.zeros(expected.shape)
        window_inputs(S, VT, d, reciprocal(d), R.astype(np.float64), summed, geo, False, th,
                      theta, False)
        np.testing.assert_allclose(summed, counts.astype(np.float64), rtol=1e-15)
    # the scatter kernel (by outputs) on the same edges, weights by rows of input channels
    V = np.concatenate([VT[0, g].transpose(2, 0, 1) for g in range(groups)])[None]
    scattered = np.zeros_like(expected)
    window_integer(S, V, np.zeros((1, 1)), False, d, reciprocal(d), R, scattered, geo, sr, th,
                   theta)
    np.testing.assert_array_equal(scattered, expected)
    if semiring == "counting":  # sums past int64 are reported, not wrapped
        scale = (2**63 - 1) // int(R.max())  # every R within int64, some sums past it
        big = R * scale
        assert int(counts.max()) * scale > 2**63 - 1
        assert window_inputs(S, VT, d, reciprocal(d), big, np.zeros_like(out), geo, False, th,
                             theta, True)
