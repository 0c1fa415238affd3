"""Window partitions: the Hugging Face Swin classifier (shifted windows, relative-position bias,
the shifted-window attention mask), and a small window model with an independent oracle.

Swin folds its windows into the batch axis, ``(B, H, W, C) → (B·nW, ws, ws, C)``; provgraph holds
that tensor as ``(B, nW, ws, ws, C)``, a route within each sample
(:mod:`provgraph.importers.batch_layout`).

Oracles: onnxruntime (forward; on a batch of three for the window model, whose batch is dynamic),
the scipy reference for every semiring on every CPU backend, conservation, and for the window
model, which is linear without biases, gradient × input by torch autograd (LRP-0 from the logit
equals it exactly).
"""

from __future__ import annotations

import functools
import io
import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch
from backend_lists import check_every_semiring_on_every_backend
from onnx import TensorProto, helper
from transformer_models import example_inputs, exported

import provgraph as pg
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, get_semiring
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.model.ops import Affine, AttentionSoftmax, MatProduct
from provgraph.model.trace import forward_trace


@functools.cache
def swin_graph() -> AnnotatedGraph:
    net = load_onnx(exported("swin").onnx)
    x = example_inputs("swin")["pixel_values"][0].astype(np.float64)
    return AnnotatedGraph(net, forward_trace(net, x))


def test_swin_forward_equals_onnxruntime() -> None:
    e = exported("swin")
    session = ort.InferenceSession(e.onnx)
    net = load_onnx(e.onnx)
    for seed in (0, 1):
        inputs = example_inputs("swin", seed)
        want = session.run(None, inputs)[0][0]
        got = forward_trace(net, inputs["pixel_values"][0].astype(np.float64)).logits[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    kinds = {type(op) for op in net.ops}
    assert MatProduct in kinds and AttentionSoftmax in kinds
    # the shifted block's mask plus the relative-position bias: one (heads, T, T) slice per
    # window, which differ between windows
    shifts = [np.asarray(op.shift) for op in net.ops
              if isinstance(op, Affine) and op.shift is not None and np.ndim(op.shift) == 4]
    assert any(np.ptp(s, axis=0).max() > 0 for s in shifts), "no per-window attention mask"


@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_swin_explained_in_every_semiring(rule: str) -> None:
    g = swin_graph()
    for semiring in BUILTIN_SEMIRINGS:
        k = get_semiring(semiring)
        composite = pg.Composite(default=k.default_rule, entries=[
            pg.Entry("MatProduct", rule), pg.Entry("AttentionSoftmax", rule)])
        values = np.asarray(g.aggregate(k, rule=composite, backend="torch").input,
                            dtype=np.float64)
        zero = float(k.zero)
        assert not np.isnan(values).any(), semiring
        assert (np.isfinite(values) | (values == zero)).all(), semiring
        assert (values != zero).any(), f"{semiring}: no relevance reaches the input"


@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_swin_conservation(rule: str) -> None:
    g = swin_graph()
    rel = g.aggregate("real", rule=rule, init="logit", backend="torch")
    total = rel.input.sum() + sum(float(np.sum(v)) for v in rel.biases.values())
    assert total == pytest.approx(g.logits[g.predicted_class], rel=1e-6)


def test_swin_every_semiring_on_every_backend() -> None:
    check_every_semiring_on_every_backend(swin_graph(), [0, 3], rtol=1e-7, atol=1e-10,
                                          atol_of_largest=True)


class ShiftedWindows(torch.nn.Module):
    """Swin's data movement around linear maps, without biases: channels last, cyclic shift,
    window partition into the batch axis, a per-token map and a token mixing within each
    window (through a transpose of the windows), window reverse, shift back, a linear head."""

    def __init__(self, side: int = 8, window: int = 4, channels: int = 3, width: int = 5) -> None:
        super().__init__()
        self.side, self.window, self.width = side, window, width
        self.mix = torch.nn.Linear(channels, width, bias=False)
        self.tokens = torch.nn.Linear(window * window, window * window, bias=False)
        self.head = torch.nn.Linear(side * side * width, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, w = x.shape[0], self.side, self.window
        n = s // w
        h = torch.roll(x.permute(0, 2, 3, 1), shifts=(-1, -1), dims=(1, 2))
        windows = h.reshape(b, n, w, n, w, -1).permute(0, 1, 3, 2, 4, 5).reshape(-1, w * w,
                                                                                  h.shape[-1])
        mixed = self.tokens(self.mix(windows).transpose(1, 2)).transpose(1, 2)
        back = mixed.reshape(-1, n, n, w, w, self.width).permute(0, 1, 3, 2, 4, 5)
        back = torch.roll(back.reshape(b, s, s, self.width), shifts=(1, 1), dims=(1, 2))
        return self.head(back.reshape(b, -1))


@functools.cache
def window_model() -> tuple[ShiftedWindows, bytes]:
    torch.manual_seed(0)
    model = ShiftedWindows().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.randn(2, 3, 8, 8), buffer, dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return model, buffer.getvalue()


def test_window_partition_forward_on_a_batch() -> None:
    _, data = window_model()
    net = load_onnx(data)
    x = np.random.default_rng(0).normal(size=(3, 3, 8, 8)).astype(np.float32)
    want = ort.InferenceSession(data).run(None, {"x": x})[0]
    np.testing.assert_allclose(forward_trace(net, x).logits, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_window_partition_is_a_route_within_the_sample(backend: str) -> None:
    """Without biases the network is linear, so LRP-0 from the logit is gradient × input."""
    model, data = window_model()
    net = load_onnx(data)
    x = np.random.default_rng(1).normal(size=(3, 8, 8))
    target = 2
    rel = AnnotatedGraph(net, forward_trace(net, x)).aggregate(
        "real", rule="lrp0", init="logit", target=target, backend=backend)
    xt = torch.tensor(x[None], dtype=torch.float64, requires_grad=True)
    model.double()(xt)[0, target].backward()
    model.float()
    np.testing.assert_allclose(rel.input, (xt * xt.grad)[0].detach().numpy(), rtol=1e-9,
                               atol=1e-12)


def test_reshape_of_a_moved_batch_axis_is_refused() -> None:
    """A permutation that moves the batch axis may be undone, not reshaped across."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0, 2], name="move"),
             helper.make_node("Reshape", ["t", "shape"], ["y"], name="merge")]
    graph = helper.make_graph(
        nodes, "moved", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    expected = "Reshape node 'merge'.*has its batch axis on axis 1"
    with pytest.raises(UnsupportedOpError, match=expected):
        load_onnx(model.SerializeToString())


def _folding_model(per_sample_constant: bool) -> bytes:
    """``x (N, 4, 2)`` folded to ``(4N, 2)``, plus one constant row per window, unfolded to
    ``(N, 8)``; the constant is tiled with the batch size, or a literal of batch 1."""
    window = np.arange(8, dtype=np.float32).reshape(4, 2)
    nodes = [helper.make_node("Reshape", ["x", "fold"], ["w"], name="partition")]
    if per_sample_constant:
        nodes += [
            helper.make_node("Shape", ["x"], ["s"]),
            helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
            helper.make_node("Unsqueeze", ["n", "zero1"], ["n1"]),
            helper.make_node("Concat", ["n1", "one1"], ["reps"], axis=0),
            helper.make_node("Tile", ["c", "reps"], ["ct"]),
        ]
    nodes += [helper.make_node("Add", ["w", "ct" if per_sample_constant else "c"], ["m"],
                               name="shift"),
              helper.make_node("Reshape", ["m", "unfold"], ["y"], name="reverse")]
    init = [helper.make_tensor("fold", TensorProto.INT64, [2], [-1, 2]),
            helper.make_tensor("unfold", TensorProto.INT64, [2], [-1, 8]),
            helper.make_tensor("c", TensorProto.FLOAT, [4, 2], window.reshape(-1)),
            helper.make_tensor("zero", TensorProto.INT64, [], [0]),
            helper.make_tensor("zero1", TensorProto.INT64, [1], [0]),
            helper.make_tensor("one1", TensorProto.INT64, [1], [1])]
    graph = helper.make_graph(
        nodes, "windows", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 8])], init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_a_constant_per_window_repeated_for_every_sample() -> None:
    data = _folding_model(per_sample_constant=True)
    x = np.random.default_rng(2).normal(size=(3, 4, 2)).astype(np.float32)
    want = ort.InferenceSession(data).run(None, {"x": x})[0]
    np.testing.assert_allclose(forward_trace(load_onnx(data), x).logits, want, rtol=1e-6)


def test_a_constant_per_window_of_batch_one_is_refused() -> None:
    """A literal of the windows of one sample does not broadcast at batch 2 in ONNX either."""
    with pytest.raises(UnsupportedOpError, match="Add node 'shift'.*not the same entries for "
                       "every sample"):
        load_onnx(_folding_model(per_sample_constant=False))


@pytest.mark.parametrize(("axis", "fold"), [(0, 1), (0, 3), (1, 1), (2, 3)])
def test_batch_layout_holds_each_sample_first(axis: int, fold: int) -> None:
    """The imported tensor of a layout is the ONNX tensor with its batch axis split into
    ``(B, fold)`` and moved in front (numpy as the oracle), for a batch of two."""
    from provgraph.importers.batch_layout import BatchLayout

    onnx_shape = [4, 5, 6]
    onnx_shape[axis] = 2 * fold
    layout = BatchLayout(axis, fold, 3)
    value = np.arange(np.prod(onnx_shape)).reshape(onnx_shape)
    split = value.reshape(onnx_shape[:axis] + [2, fold] + onnx_shape[axis + 1:])
    ours = np.moveaxis(split, [axis, axis + 1], [0, 1])
    if fold == 1:
        ours = ours[:, 0]
    batch1 = list(onnx_shape)
    batch1[axis] = fold
    assert layout.full_shape(tuple(batch1)) == (1, *ours.shape[1:])
    assert layout.onnx_shape(layout.full_shape(tuple(batch1))) == tuple(batch1)
    others = [a for a in range(3) if a != axis]
    for a in others:  # ONNX axis a of sample 1 is the layout's axis position(a)
        assert ours.shape[layout.position(a)] == onnx_shape[a]
    if axis == 0:  # a fold: each sample is one contiguous block of the row-major buffer
        half = value.size // 2
        np.testing.assert_array_equal(ours[1].reshape(-1), value.reshape(-1)[half:])
