"""The torch backend: structured, batched propagation kernels on CPU or CUDA.

It never materialises a convolution's edge matrix. Relevance lives on the device as tensors of
shape ``(B, T, *tensor_shape)``: B samples (a :class:`~provgraph.engine.batch.BatchGraph`, or 1
for an :class:`~provgraph.engine.annotation.AnnotatedGraph`) and T explained targets, all
propagated in one pass. Each role's step is a structured kernel; a linear op without one (and a
winner-takes-all op other than max pooling) takes the generic step of
:class:`~provgraph.backends.base.Backend` over :meth:`TorchBackend.contract` (one sample only).

- Real semiring, Θ = identity: the gradient form (transposed convolutions / matrix products over
  the rule's modified weights), about one forward plus one backward pass.
- Every other (semiring, Θ): exact chunked kernels that evaluate at most ``budget`` edge weights
  at a time (:mod:`~provgraph.backends.torch_conv`, :mod:`~provgraph.backends.torch_linear`).
- Counting: exact int64 with overflow detection; under the default ``counting="auto"`` the
  driver switches to float64 (then log) counts at the op that overflows, ``counting="int64"``
  raises instead, ``counting="float64"`` / ``counting="log"`` ask for those carriers directly;
  the carrier is stated in ``Relevance.info["counting"]``.

The same code runs on CPU and CUDA tensors. Built-in semirings, rules and Θs run natively; a
user-defined Θ is evaluated by its numpy code (a round trip to the CPU); a user-defined semiring or
rule raises a :class:`~provgraph.errors.ProvgraphError` that points to the scipy backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch

from provgraph.algebra.counting_carriers import (
    COUNTING_MODES,
    CountOverflowError,
    counting_mode,
    counting_semiring,
    recast_counts,
)
from provgraph.algebra.semirings import CountingSemiring, RealSemiring, Semiring
from provgraph.algebra.theta import IdentityTheta
from provgraph.backends.base import Backend, Capabilities, Edges, StepContext, StepResult
from provgraph.backends.torch_attention import product_step, softmax_step
from provgraph.backends.torch_carriers import torch_semiring
from provgraph.backends.torch_conv import Window, window_step
from provgraph.backends.torch_device import device_values, op_tensor, resolve_device, resolve_dtype
from provgraph.backends.torch_linear import LinearStep, dense_step, elementwise_step
from provgraph.backends.torch_routing import maxpool_step, route_step
from provgraph.backends.torch_rules import TorchForm, rule_form
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.backends.torch_theta import TorchTheta
from provgraph.backends.torch_tokens import constant_concat_step
from provgraph.errors import ProvgraphError
from provgraph.model.ops import (
    Add,
    Affine,
    AttentionSoftmax,
    AvgPool,
    Conv,
    Dense,
    GlobalAvgPool,
    LinearOp,
    MatProduct,
    MaxPool,
    Op,
    RouteOp,
    SampleAffineOp,
    SelectOp,
)
from provgraph.model.ops.tokens import ConstantConcat

DEFAULT_BUDGET = 2**22


class TorchBackend(Backend):
    """Structured kernels on a torch device.

    Parameters
    ----------
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available). Asking for CUDA
        where it is absent raises a :class:`~provgraph.errors.ProvgraphError`.
    dtype
        ``float64`` (default; agrees with the scipy reference to rounding) or ``float32``
        (faster; Θ thresholds then see float32 edge weights).
    counting
        ``"auto"`` (default: exact int64; where counts outgrow it the driver goes on in float64,
        then log counts, from the op that overflowed, and says so in ``info["counting"]`` and a
        warning), ``"int64"`` (exact,
        overflow raises :class:`~provgraph.algebra.counting_carriers.CountOverflowError`),
        ``"float64"`` or ``"log"`` (log-domain counts).
    budget
        Most edge values a non-real kernel holds at once (bounds memory).
    """

    name = "torch"
    capabilities: ClassVar[Capabilities] = Capabilities(batches=True, devices=("cpu", "cuda"))

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = torch.float64,
        counting: str = "auto",
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        if counting not in COUNTING_MODES:
            raise ProvgraphError(
                f"unknown counting mode {counting!r}; use {', '.join(COUNTING_MODES)}"
            )
        self.counting = counting
        self.budget = int(budget)
        self._carriers: dict[type, TorchSemiring] = {}
        self._forms: dict[int, tuple[Any, TorchForm]] = {}

    def __repr__(self) -> str:
        return (
            f"TorchBackend(device={str(self.device)!r}, dtype={str(self.dtype)[6:]!r}, "
            f"counting={self.counting!r})"
        )

    # --- driver hooks ---
    def result_semiring(self, semiring: Semiring) -> Semiring:
        if type(semiring) is CountingSemiring and self.counting not in ("auto", "int64"):
            return counting_semiring(self.counting)
        return semiring

    def describe(self, semiring: Semiring) -> dict[str, Any]:
        info: dict[str, Any] = {"device": str(self.device), "dtype": str(self.dtype)[6:]}
        mode = counting_mode(semiring)
        if mode is not None:
            info["counting"] = mode
        return info

    def carrier(self, semiring: Semiring) -> TorchSemiring:
        key = type(semiring)
        if key not in self._carriers:
            self._carriers[key] = torch_semiring(semiring, self.dtype, self.device)
        return self._carriers[key]

    def seed(self, graph: Any, semiring: Semiring, initial: np.ndarray) -> torch.Tensor:
        out = self.carrier(semiring).encode(np.ascontiguousarray(initial.transpose(0, 2, 1)))
        shape = graph.network.shapes[graph.network.output_name]
        return out.reshape(tuple(out.shape[:2]) + tuple(shape))

    def accumulate(self, semiring: Semiring, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c = self.carrier(semiring)
        try:
            return c.add(a, b)
        except CountOverflowError as exc:
            raise CountOverflowError(f"where relevance fans in: {exc}") from None

    def to_numpy(self, graph: Any, semiring: Semiring, value: Any, bias: bool = False) -> Any:
        arr = self.carrier(semiring).decode(value)
        batched = getattr(graph, "batched", False)
        if not bias:
            arr = arr.reshape(arr.shape[0], arr.shape[1], -1).transpose(0, 2, 1)
        return arr if batched else arr[0]

    def recast(self, source: Semiring, target: Semiring, value: Any) -> torch.Tensor:
        counts = recast_counts(self.carrier(source).decode(value), source, target)
        return self.carrier(target).encode(counts)

    # --- layout of the contraction primitive: (n, B, T) ---
    def neuron_first(self, graph: Any, value: torch.Tensor) -> torch.Tensor:
        return value.reshape(value.shape[0], value.shape[1], -1).permute(2, 0, 1)

    def from_neuron_first(self, graph: Any, tensor: str, value: torch.Tensor) -> torch.Tensor:
        shape = tuple(graph.network.shapes[tensor])
        return value.permute(1, 2, 0).reshape(tuple(value.shape[1:]) + shape)

    def zeros(self, semiring: Semiring, n: int, like: torch.Tensor) -> torch.Tensor:
        return self.carrier(semiring).zeros((n,) + tuple(like.shape[1:]))

    def contract(self, ctx: StepContext, edges: Edges, r_out: torch.Tensor) -> torch.Tensor:
        c = self.carrier(ctx.semiring)
        cols = torch.as_tensor(edges.cols, device=self.device)
        src = r_out[cols]
        if edges.values is not None:
            annotations = c.encode(edges.values)
        elif edges.weights is not None:
            if ctx.theta is None or ctx.layer is None:
                raise ProvgraphError("weighted edges need a Θ")
            w = torch.as_tensor(np.asarray(edges.weights)).to(self.device, self.dtype)
            annotations = TorchTheta(ctx.theta, ctx.semiring, c, ctx.layer)(w)
        else:
            annotations = None
        if annotations is not None:
            src = c.mul(annotations.reshape((-1,) + (1,) * (src.dim() - 1)), src)
        rows = torch.repeat_interleave(
            torch.arange(edges.rows, device=self.device),
            torch.as_tensor(np.diff(edges.indptr), device=self.device),
        )
        moved = src.permute(*range(1, src.dim()), 0)
        index = rows.reshape((1,) * (moved.dim() - 1) + (-1,))
        return c.scatter(moved, index, edges.rows).permute(-1, *range(moved.dim() - 1))

    # --- the per-role steps ---
    def step(self, op: Op, ctx: StepContext) -> StepResult:
        c = self.carrier(ctx.semiring)
        try:
            # no autograd bookkeeping on the steps' tensors (measured: 6% of ViT-Tiny's call)
            with torch.inference_mode():
                sent, absorbed = op.provenance_step(self, ctx)
        except CountOverflowError as exc:
            raise CountOverflowError(f"{op.describe()}: {exc}") from None
        for _, t in sent:
            c.check(t)
        if absorbed is not None:
            c.check(absorbed)
        return sent, absorbed

    def route(self, op: RouteOp, ctx: StepContext) -> StepResult:
        c = self.carrier(ctx.semiring)
        shapes = ctx.graph.network.shapes
        sent = route_step(c, op, [shapes[t] for t in op.inputs], ctx.r_out, shapes[op.output])
        return list(zip(op.inputs, sent)), None

    def select(self, op: SelectOp, ctx: StepContext) -> StepResult:
        if not isinstance(op, MaxPool):  # another winner-takes-all op: the generic step
            return super().select(op, ctx)
        values = device_values(ctx.graph, self.device, self.dtype)
        c = self.carrier(ctx.semiring)
        return [(op.inputs[0], maxpool_step(c, op, values[op.inputs[0]], ctx.r_out))], None

    def linear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        kernel = next((_KERNELS[t] for t in type(op).__mro__ if t in _KERNELS), None)
        if kernel is None:  # no structured kernel: the generic step over materialised edges
            return super().linear(op, ctx)
        kernel_step, values = self._kernel_step(op, ctx)
        sent, absorbed = kernel(self, op, kernel_step, values, ctx.r_out)
        return list(zip(op.inputs, sent)), absorbed

    def bilinear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        """A product of two computed tensors, batched (see :mod:`.torch_attention`)."""
        if not isinstance(op, MatProduct):
            return super().bilinear(op, ctx)
        kernel_step, values = self._kernel_step(op, ctx)
        a, b = (values[t] for t in op.inputs)
        sent = product_step(kernel_step, op, a, b, ctx.r_out, op.edge_inputs(ctx.rule),
                            values[op.output])
        return [(t, r) for t, r in zip(op.inputs, sent) if r is not None], None

    def _kernel_step(
        self, op: LinearOp, ctx: StepContext
    ) -> tuple[LinearStep, dict[str, torch.Tensor]]:
        if ctx.rule is None or ctx.theta is None or ctx.layer is None:
            raise ProvgraphError(f"{op.describe()} needs a rule and a Θ")
        c = self.carrier(ctx.semiring)
        values = device_values(ctx.graph, self.device, self.dtype)
        kept = self._forms.get(id(ctx.rule))
        if kept is None or kept[0] is not ctx.rule:  # one form per rule object, a few kept
            if len(self._forms) >= 64:
                self._forms.clear()
            kept = self._forms[id(ctx.rule)] = (ctx.rule, rule_form(ctx.rule))
        form = kept[1]
        gradient = type(ctx.semiring) is RealSemiring and type(ctx.theta) is IdentityTheta
        k_theta = None if gradient else TorchTheta(ctx.theta, ctx.semiring, c, ctx.layer)
        return LinearStep(form, k_theta, c, self.budget), values

    def _dense(
        self, op: Dense, step: LinearStep, values: dict[str, torch.Tensor], r_out: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        dev, dt = self.device, self.dtype
        w, b = op_tensor(op, "weight", dev, dt), op_tensor(op, "bias", dev, dt)
        a, z = values[op.inputs[0]], values[op.output]
        if a.dim() == 2:
            r_in, absorbed = dense_step(step, a, z, w, b, r_out)
            return [r_in], absorbed
        # per token: the positions join the sample axis, (B, T, *pos, n) → (B·P, T, n)
        n_b, n_t, n_pos = a.shape[0], r_out.shape[1], math.prod(a.shape[1:-1])
        if n_t == 1:  # one target: the rows are a view
            rows = r_out.reshape(n_b * n_pos, 1, -1)
        else:
            rows = r_out.reshape(n_b, n_t, n_pos, -1).transpose(1, 2).reshape(n_b * n_pos, n_t, -1)
        r_in, absorbed = dense_step(
            step, a.reshape(n_b * n_pos, -1), z.reshape(n_b * n_pos, -1), w, b, rows
        )
        if n_t > 1:
            r_in = r_in.reshape(n_b, n_pos, n_t, -1).transpose(1, 2)
        r_in = r_in.reshape(tuple(r_out.shape[:2]) + tuple(a.shape[1:]))
        if absorbed is not None:
            absorbed = step.carrier.reduce(absorbed.reshape(n_b, n_pos, n_t), (1,))
        return [r_in], absorbed

    def _windowed(
        self, op: LinearOp, step: LinearStep, values: dict[str, torch.Tensor], r_out: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        a, z = values[op.inputs[0]], values[op.output]
        win = self._window(op, tuple(a.shape[1:]), tuple(z.shape[1:]))
        r_in, absorbed = window_step(step, a, z, win, r_out)
        return [r_in], absorbed

    def _elementwise(
        self, op: LinearOp, step: LinearStep, values: dict[str, torch.Tensor], r_out: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        out_shape = tuple(values[op.output].shape[1:])
        if isinstance(op, Affine):
            weights = [self._broadcast(op, "scale", out_shape)]
            bias = self._broadcast(op, "shift", out_shape)
        else:  # weights one
            weights = [None] * len(op.inputs)
            bias = None
        inputs = [(values[t], w) for t, w in zip(op.inputs, weights)]
        return elementwise_step(step, inputs, values[op.output], bias, r_out)

    def _sample_affine(
        self,
        op: SampleAffineOp,
        step: LinearStep,
        values: dict[str, torch.Tensor],
        r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        a = values[op.inputs[0]]
        with torch.no_grad():
            scale, shift = op.scale_shift(a)
        return elementwise_step(step, [(a, scale)], values[op.output], shift, r_out, True)

    def _softmax(
        self,
        op: AttentionSoftmax,
        step: LinearStep,
        values: dict[str, torch.Tensor],
        r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        sent, absorbed = softmax_step(step, values[op.inputs[0]], r_out, values[op.output])
        return [sent], absorbed

    def _broadcast(self, op: Op, field: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        """``op.<field>`` broadcast to one sample's ``shape`` (a view of the cached tensor)."""
        value = op_tensor(op, field, self.device, self.dtype)
        return None if value is None else value.expand(shape).unsqueeze(0)

    def _window(self, op: LinearOp, in_shape: tuple, out_shape: tuple) -> Window:
        dev, dt = self.device, self.dtype
        d = len(in_shape) - 1
        if isinstance(op, Conv):
            bias = op_tensor(op, "bias", dev, dt)
            return Window(
                weight=op_tensor(op, "weight", dev, dt),
                scale=None,
                bias=None if bias is None else bias.reshape((-1,) + (1,) * d),
                groups=op.groups,
                strides=tuple(op.strides),
                dilations=tuple(op.dilations),
                pad_begin=tuple(op.pads[:d]),
                in_shape=in_shape,
                out_shape=out_shape,
            )
        channels = in_shape[0]
        if isinstance(op, AvgPool):
            probe = torch.zeros((1,) + tuple(in_shape), dtype=torch.float64)
            divisor = op._divisor(probe).reshape(tuple(out_shape[1:]))  # the op's own 1/n
            kernel, strides, pad_begin = tuple(op.kernel), tuple(op.strides), tuple(op.pads[:2])
        else:
            divisor = torch.full(tuple(out_shape[1:]), float(np.prod(in_shape[1:])))
            kernel, strides, pad_begin = tuple(in_shape[1:]), (1,) * d, (0,) * d
        return Window(
            weight=torch.ones((channels, 1) + kernel, dtype=dt, device=dev),
            scale=(1.0 / divisor.double()).to(dev, dt),
            bias=None,
            groups=channels,
            strides=strides,
            dilations=(1,) * d,
            pad_begin=pad_begin,
            in_shape=in_shape,
            out_shape=out_shape,
        )


#: the structured linear kernel of each op class (looked up along the op's MRO)
_KERNELS: dict[type, Callable[..., tuple[list[torch.Tensor], torch.Tensor | None]]] = {
    Dense: TorchBackend._dense,
    Conv: TorchBackend._windowed,
    AvgPool: TorchBackend._windowed,
    GlobalAvgPool: TorchBackend._windowed,
    Affine: TorchBackend._elementwise,
    Add: TorchBackend._elementwise,
    SampleAffineOp: TorchBackend._sample_affine,
    AttentionSoftmax: TorchBackend._softmax,
    ConstantConcat: constant_concat_step,
}
