"""The torch backend: structured, batched propagation kernels on CPU or CUDA.

It never materialises a convolution's edge matrix. Relevance lives on the device as tensors of
shape ``(B, T, *tensor_shape)``: B samples (a :class:`~provgraph.engine.batch.BatchGraph`, or 1 for
an
:class:`~provgraph.engine.annotation.AnnotatedGraph`) and T explained targets, all propagated in
one pass.

- Real semiring, Θ = identity: the gradient form (transposed convolutions / matrix products over
  the rule's modified weights), about one forward plus one backward pass.
- Every other (semiring, Θ): exact chunked kernels that evaluate at most ``budget`` edge weights
  at a time (:mod:`~provgraph.backends.torch_conv`, :mod:`~provgraph.backends.torch_linear`).
- Counting: exact int64 with overflow detection (default), or ``counting="float64"`` /
  ``counting="log"`` for huge path counts; the mode is stated in ``Relevance.info["counting"]``.

The same code runs on CPU and CUDA tensors. Built-in semirings, rules and Θs run natively; a
user-defined Θ is evaluated by its numpy code (a round trip to the CPU); a user-defined semiring or
rule raises a :class:`~provgraph.errors.ProvgraphError` that points to the scipy backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from provgraph.algebra.counting_carriers import (
    COUNTING_MODES,
    CountOverflowError,
    counting_mode,
    counting_semiring,
)
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import CountingSemiring, RealSemiring, Semiring
from provgraph.algebra.theta import IdentityTheta, Layer, Theta
from provgraph.backends.base import Backend
from provgraph.backends.torch_conv import Window, window_step
from provgraph.backends.torch_device import (
    device_values,
    op_tensor,
    pool_winners,
    resolve_device,
    resolve_dtype,
)
from provgraph.backends.torch_linear import Step, dense_step, elementwise_step
from provgraph.backends.torch_routing import maxpool_step, route_step
from provgraph.backends.torch_rules import rule_form
from provgraph.backends.torch_semiring import TorchSemiring, torch_semiring
from provgraph.backends.torch_theta import TorchTheta
from provgraph.engine.initialisation import InitSpec, initial_relevance
from provgraph.errors import ProvgraphError
from provgraph.model.ops import (
    Add,
    Affine,
    AvgPool,
    Conv,
    Dense,
    GlobalAvgPool,
    LinearOp,
    MaxPool,
    Op,
    PassthroughOp,
    RouteOp,
    SelectOp,
)

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
        ``"int64"`` (exact, overflow raises
        :class:`~provgraph.algebra.counting_carriers.CountOverflowError`),
        ``"float64"`` or ``"log"`` (log-domain counts).
    budget
        Most edge values a non-real kernel holds at once (bounds memory).
    """

    name = "torch"

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = torch.float64,
        counting: str = "int64",
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

    def __repr__(self) -> str:
        return (
            f"TorchBackend(device={str(self.device)!r}, dtype={str(self.dtype)[6:]!r}, "
            f"counting={self.counting!r})"
        )

    # --- driver hooks ---
    def result_semiring(self, semiring: Semiring) -> Semiring:
        if type(semiring) is CountingSemiring and self.counting != "int64":
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

    def initial(
        self, graph: Any, init: InitSpec, semiring: Semiring, targets: Sequence[Any]
    ) -> torch.Tensor:
        c = self.carrier(semiring)
        logits = np.atleast_2d(graph.logits)
        n_b, n_c = logits.shape
        per_sample = np.stack([np.broadcast_to(np.asarray(t), (n_b,)) for t in targets], axis=1)
        # the numpy initialisation of the first sample validates (init, semiring, targets)
        first = initial_relevance(init, semiring, logits[0], list(per_sample[0]))
        if isinstance(init, str) and init.lower() in ("one", "logit"):
            out = c.zeros((n_b, per_sample.shape[1], n_c))
            index = torch.as_tensor(per_sample, device=self.device).unsqueeze(2)
            if init.lower() == "one":
                values = c.full(tuple(index.shape), c.one)
            else:
                picked = np.take_along_axis(logits, per_sample, axis=1)
                values = c.encode(picked[..., None])
            out.scatter_(2, index, values)
        else:
            rows = [first] + [
                initial_relevance(init, semiring, logits[b], list(per_sample[b]))
                for b in range(1, n_b)
            ]
            out = c.encode(np.stack(rows).transpose(0, 2, 1))
        shape = graph.network.shapes[graph.network.output_name]
        return out.reshape((n_b, out.shape[1]) + tuple(shape))

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

    # --- the propagation step ---
    def propagate(
        self,
        graph: Any,
        op: Op,
        rule: Rule | None,
        theta: Theta | None,
        layer: Layer | None,
        semiring: Semiring,
        r_out: torch.Tensor,
    ) -> tuple[list[tuple[str, torch.Tensor]], torch.Tensor | None]:
        c = self.carrier(semiring)
        values = device_values(graph, self.device, self.dtype)
        shapes = graph.network.shapes
        try:
            if isinstance(op, PassthroughOp):
                sent, absorbed = [r_out], None
            elif isinstance(op, RouteOp):
                sent, absorbed = route_step(c, op, [shapes[t] for t in op.inputs], r_out), None
            elif isinstance(op, SelectOp):
                if not isinstance(op, MaxPool):
                    raise ProvgraphError(f"the torch backend has no kernel for {op.describe()}")
                winners = pool_winners(values[op.output])
                x = values[op.inputs[0]]
                sent, absorbed = [maxpool_step(c, op, x, r_out, winners)], None
            elif isinstance(op, LinearOp):
                if rule is None or theta is None or layer is None:
                    raise ProvgraphError(f"{op.describe()} needs a rule and a Θ")
                sent, absorbed = self._linear(op, rule, theta, layer, semiring, c, values, r_out)
            else:
                raise ProvgraphError(f"{op.describe()} has no provenance role")
        except CountOverflowError as exc:
            raise CountOverflowError(f"{op.describe()}: {exc}") from None
        for t in sent:
            c.check(t)
        if absorbed is not None:
            c.check(absorbed)
        return list(zip(op.inputs, sent)), absorbed

    def _linear(
        self,
        op: LinearOp,
        rule: Rule,
        theta: Theta,
        layer: Layer,
        semiring: Semiring,
        c: TorchSemiring,
        values: dict[str, torch.Tensor],
        r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        form = rule_form(rule)
        gradient = type(semiring) is RealSemiring and type(theta) is IdentityTheta
        k_theta = None if gradient else TorchTheta(theta, semiring, c, layer)
        step = Step(form, k_theta, c, self.budget)
        shapes = {t: tuple(values[t].shape[1:]) for t in (*op.inputs, op.output)}
        z = values[op.output]
        a = values[op.inputs[0]]
        dev, dt = self.device, self.dtype
        if isinstance(op, Dense):
            w = op_tensor(op, "weight", dev, dt)
            r_in, absorbed = dense_step(step, a, z, w, op_tensor(op, "bias", dev, dt), r_out)
            return [r_in], absorbed
        if isinstance(op, (Conv, AvgPool, GlobalAvgPool)):
            win = self._window(op, shapes[op.inputs[0]], shapes[op.output])
            r_in, absorbed = window_step(step, a, z, win, r_out)
            return [r_in], absorbed
        if isinstance(op, (Affine, Add)):
            out_shape = shapes[op.output]
            if isinstance(op, Affine):
                weights = [self._broadcast(op, "scale", out_shape)]
                bias = self._broadcast(op, "shift", out_shape)
            else:
                weights = [torch.ones((), dtype=dt, device=dev)] * len(op.inputs)
                bias = None
            inputs = [(values[t], w) for t, w in zip(op.inputs, weights)]
            return elementwise_step(step, inputs, z, bias, r_out)
        raise ProvgraphError(f"the torch backend has no kernel for {op.describe()}")

    def _broadcast(self, op: Op, field: str, shape: tuple[int, ...]) -> torch.Tensor | None:
        value = getattr(op, field)
        if value is None:
            return None
        full = np.broadcast_to(np.asarray(value, dtype=np.float64), shape)
        return torch.as_tensor(np.ascontiguousarray(full)).to(self.device, self.dtype).unsqueeze(0)

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
