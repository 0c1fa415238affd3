"""The numba backend: fused CPU kernels for the linear steps of every built-in semiring.

It is the torch backend on the CPU (same relevance tensors ``(B, T, *shape)``, batches of
samples and targets, carriers, routing, max pooling, elementwise steps and Counting's overflow
check) whose dense, convolution and average-pooling steps run as fused
``@numba.njit(nogil=True, cache=True)`` kernels called from a thread pool
(:mod:`~provgraph.backends.numba_window`, :mod:`~provgraph.backends.numba_contract`,
:mod:`~provgraph.backends.numba_threads`; a dense op is a 1×1 convolution): channels-last, the
edge weight ``r_jk`` and ``Θ(r_jk)`` computed in registers and never stored, outputs whose
relevance is K's zero skipped. A per-token dense op takes samples × tokens as its rows; a
convolution whose windows tile its input is a dense op per patch
(:mod:`~provgraph.backends.numba_patches`); under ``cp`` the product of the attention weights and
the values is a dense op per sample and head (:mod:`~provgraph.backends.numba_attention`).

Algebra exploited:

- Viterbi with Θ = identity and a one-term rule with non-negative sources, weights and
  denominators (the max-normalised rule):
  ``max_k (s_j v_jk / d_k) R_k = s_j · max_k v_jk (R_k / d_k)``;
- tropical with Θ = −log: ``−log r_jk = −log s_j − log v_jk + log d_k``, and since ``−log`` is
  decreasing, ``min_k (−log v_jk + t_k) = c − log max_k v_jk exp(c − t_k)``: a max-times
  product of the weights themselves, logarithms only per neuron, never per edge or weight
  (:mod:`~provgraph.backends.numba_contract`);
- Counting in exact int64 (an overflow raises
  :class:`~provgraph.algebra.counting_carriers.CountOverflowError`), Boolean as 0/1; Counting in
  float64 (and real with a threshold Θ) through a branch-free float64 row;
- Counting over a convolution with a threshold Θ: away from θ an edge holds by the signs of its
  factors alone, so the sum is a few float64 transposed convolutions of the weights' sign masks
  (exact for integers, in limbs past ``2**53``), and only the edges with the smallest weights
  are decided one by one (:mod:`~provgraph.backends.numba_masks`).

Weights are prepared once per op in the kernels' layouts and the network's own dtype
(:mod:`~provgraph.backends.numba_weights`): no float64 weight copy, a ``Gemm`` weight read in
place; activations, denominators and relevance stay float64 (int64 for the integer carriers), so
every edge weight is the float64 reference's.

What the kernels do not cover takes the torch backend's step: the real semiring with
Θ = identity (its gradient form, already a pair of convolutions), a user-defined semiring or Θ
(codes are looked up by exact class, :mod:`~provgraph.backends.numba_algebra`), the log-domain
counting carrier and ops without a kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

import numpy as np
import torch

from provgraph.algebra.rule_form import RuleFormError
from provgraph.algebra.semirings import RealSemiring, Semiring
from provgraph.algebra.theta import IdentityTheta
from provgraph.backends.base import Capabilities, StepContext, StepResult
from provgraph.backends.numba_algebra import EdgeAlgebra, edge_algebra
from provgraph.backends.numba_patches import from_patches, patches, positions_last, tiles
from provgraph.backends.numba_weights import (
    conv_columns,
    conv_rows,
    dense_columns,
    dense_rows,
    modified,
    read_only,
    small_weights,
)
from provgraph.backends.torch_backend import DEFAULT_BUDGET, TorchBackend
from provgraph.backends.torch_conv import Window, window_denominator
from provgraph.backends.torch_device import device_values, op_tensor
from provgraph.backends.torch_linear import LinearStep, absorbed, bias_numerator, dense_denominator
from provgraph.backends.torch_rules import TorchForm, rule_form
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.backends.torch_theta import TorchTheta
from provgraph.errors import ProvgraphError
from provgraph.model.ops import AvgPool, Conv, Dense, GlobalAvgPool, LinearOp, MatProduct

#: kernels compute in float64 whatever the backend's dtype (Θ thresholds see float64 weights)
_F64 = torch.float64


def channels_last(t: torch.Tensor, lead: int) -> np.ndarray:
    """``(*lead axes, C, *spatial)`` as a contiguous float or int numpy ``(*lead, P, C)``."""
    shape = tuple(t.shape)
    flat = t.reshape(shape[: lead + 1] + (-1,)).transpose(-1, -2)
    return np.ascontiguousarray(flat.numpy())


class NumbaBackend(TorchBackend):
    """The torch backend on the CPU with fused numba kernels for dense, conv and pooling steps.

    Parameters are those of :class:`~provgraph.backends.torch_backend.TorchBackend`; the device
    can only be the CPU.
    """

    name = "numba"
    capabilities: ClassVar[Capabilities] = Capabilities(batches=True, devices=("cpu",))

    def __init__(
        self,
        device: str | torch.device | None = "cpu",
        dtype: str | torch.dtype = torch.float64,
        counting: str = "auto",
        budget: int = DEFAULT_BUDGET,
    ) -> None:
        if device is not None and str(device) not in ("cpu", "auto"):
            raise ProvgraphError(f"the numba backend runs on the CPU only, not {str(device)!r}")
        super().__init__("cpu", dtype, counting, budget)
        #: how many linear steps the fused kernels have run (the rest took the torch steps)
        self.fused_steps = 0

    def __repr__(self) -> str:
        return f"NumbaBackend(dtype={str(self.dtype)[6:]!r}, counting={self.counting!r})"

    def describe(self, semiring: Semiring) -> dict[str, Any]:
        return {**super().describe(semiring), "kernels": "numba"}

    # --- the linear step ---
    def linear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        kernel = next((_NUMBA[t] for t in type(op).__mro__ if t in _NUMBA), None)
        plan = None if kernel is None else self._plan(ctx)
        if plan is None:
            return super().linear(op, ctx)
        form, k_theta, algebra = plan
        c = self.carrier(ctx.semiring)
        step = LinearStep(form, k_theta, c, self.budget)
        values = device_values(ctx.graph, self.device, _F64)
        sent, bias_part = kernel(self, op, step, algebra, values, ctx.r_out)
        self.fused_steps += 1
        return list(zip(op.inputs, sent)), bias_part

    def bilinear(self, op: LinearOp, ctx: StepContext) -> StepResult:
        """A product of two computed tensors: under ``cp`` (edges from one operand) a fused
        dense kernel per sample and head (:mod:`~provgraph.backends.numba_attention`)."""
        plan = self._plan(ctx) if isinstance(op, MatProduct) else None
        if plan is None:
            return super().bilinear(op, ctx)
        from provgraph.backends.numba_attention import product_kernel

        form, k_theta, algebra = plan
        step = LinearStep(form, k_theta, self.carrier(ctx.semiring), self.budget)
        values = device_values(ctx.graph, self.device, _F64)
        a, b = (values[t] for t in op.inputs)
        sent = product_kernel(step, algebra, a, b, values[op.output], ctx.r_out,
                              op.edge_inputs(ctx.rule),
                              lambda r: self._kernel_input(algebra, r, 0))
        if sent is None:
            return super().bilinear(op, ctx)
        self.fused_steps += 1
        return [(t, self._carried(step.carrier, r)) for t, r in zip(op.inputs, sent)
                if r is not None], None

    def _plan(self, ctx: StepContext) -> tuple[TorchForm, TorchTheta, EdgeAlgebra] | None:
        if ctx.rule is None or ctx.theta is None or ctx.layer is None:
            return None
        if type(ctx.semiring) is RealSemiring and type(ctx.theta) is IdentityTheta:
            return None  # the gradient form of the torch backend
        try:
            form = rule_form(ctx.rule)
        except RuleFormError:
            return None
        algebra = edge_algebra(ctx.semiring, ctx.theta, ctx.layer)
        if algebra is None:
            return None
        k_theta = TorchTheta(ctx.theta, ctx.semiring, self.carrier(ctx.semiring), ctx.layer)
        return form, k_theta, algebra

    def _fused_window(
        self, op: LinearOp, step: LinearStep, algebra: EdgeAlgebra,
        values: dict[str, torch.Tensor], r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        from provgraph.backends.numba_contract import contract_window
        from provgraph.backends.numba_masks import applies as masks_apply
        from provgraph.backends.numba_window import geometry, window_absmax

        a, z = values[op.inputs[0]], values[op.output]
        in_shape, out_shape = tuple(a.shape[1:]), tuple(z.shape[1:])
        form = step.form
        weights = [t.weight for t in form.terms]
        conv = isinstance(op, Conv)
        if conv and (form.direct or form.maxnorm) and tiles(op, in_shape, out_shape):
            return self._fused_patches(op, step, algebra, values, r_out)
        # a sum denominator other than the output itself needs the torch window's convolutions
        win = None if conv and (form.direct or form.maxnorm) else _float64_window(
            self._window(op, in_shape, out_shape))
        kernel, strides, dilations, pad_begin, groups, bias = (
            self._conv_geometry(op, len(in_shape) - 1) if conv else
            (win.kernel, win.strides, win.dilations, win.pad_begin, win.groups, win.bias))
        geo = geometry(in_shape[1:], out_shape[1:], kernel, strides, dilations, pad_begin, groups)
        S = np.stack([channels_last(form.source(t, a, in_shape), 1) for t in form.terms])
        if conv:
            V, Vpos = conv_rows(op, weights), np.zeros((len(weights), 1))
        else:
            V = read_only(np.zeros((len(weights), 1, 1, 1), dtype=np.float32))
            Vpos = np.stack([t.weight(win.scale).reshape(-1).numpy() for t in form.terms])
        if form.maxnorm:
            top = channels_last(bias_numerator(form, bias, z).abs(), 1)
            VT = conv_columns(op, weights) if conv else V[..., None]
            window_absmax(S, V, VT, Vpos, not conv, top, geo)
            d = top + form.epsilon
        elif form.direct:
            d = channels_last(form.stabilize(z), 1)
        else:
            d = channels_last(window_denominator(step, a, z, win), 1)
        R = self._kernel_input(algebra, r_out, 2)
        if conv and masks_apply(algebra, len(weights), R):
            r_in = self._masked(op, step, algebra, S, d, R, r_out, geo, in_shape, out_shape)
        else:
            columns = conv_columns(op, weights) if conv and _by_inputs(algebra, weights) else None
            out = contract_window(algebra, S, V, Vpos, not conv, d, R, geo, columns)
            r_in = self._from_kernel(step.carrier, out, (out.shape[0], out.shape[1]) + in_shape)
        den = torch.from_numpy(np.ascontiguousarray(d.transpose(0, 2, 1))).reshape(
            (d.shape[0],) + out_shape)
        return [r_in], absorbed(step, bias, den, r_out)

    def _masked(
        self, op: Conv, step: LinearStep, algebra: EdgeAlgebra, S: np.ndarray, d: np.ndarray,
        R: np.ndarray, r_out: torch.Tensor, geo: np.ndarray, in_shape: tuple, out_shape: tuple,
    ) -> torch.Tensor:
        """A threshold sum over a convolution as transposed convolutions of sign masks with the
        edges near θ corrected (:mod:`~provgraph.backends.numba_masks`)."""
        from provgraph.backends.numba_masks import mask_contract

        weights = step.form.terms[0].weight
        w = np.asarray(op.weight)
        v = torch.from_numpy(np.ascontiguousarray(modified(w, weights)))
        win = self._window(op, in_shape, out_shape)
        r_in = mask_contract(win.adjoint, algebra, S, v, small_weights(op, weights),
                             conv_columns(op, [weights]), d, R, r_out, geo, in_shape)
        if step.carrier.storage == torch.bool:
            return r_in != 0
        return r_in.to(step.carrier.storage)

    def _conv_geometry(self, op: Conv, d: int) -> tuple:
        """Kernel, strides, dilations, leading pads, groups and ``(C_out, 1, …)`` bias of a Conv."""
        bias = op_tensor(op, "bias", self.device, _F64)
        return (tuple(op.weight.shape[2:]), tuple(op.strides), tuple(op.dilations),
                tuple(op.pads[:d]), op.groups,
                None if bias is None else bias.reshape((-1,) + (1,) * d))

    def _fused_dense(
        self, op: Dense, step: LinearStep, algebra: EdgeAlgebra,
        values: dict[str, torch.Tensor], r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        # a dense op is a 1×1 convolution over one position with C_in = n_in, C_out = n_out
        a, z = values[op.inputs[0]], values[op.output]
        b = op_tensor(op, "bias", self.device, _F64)
        n_in, n_out = op.weight.shape
        n_b, n_t = r_out.shape[:2]
        n_pos = Dense.positions(tuple(a.shape[1:]))  # per token: positions join the samples
        a2, z2 = a.reshape(n_b * n_pos, n_in), z.reshape(n_b * n_pos, n_out)
        rows = r_out.reshape(n_b, n_t, n_pos, n_out).transpose(1, 2).reshape(n_b * n_pos, n_t, -1)
        form = step.form
        S = np.stack([form.source(t, a2, (n_in,)).numpy() for t in form.terms])[:, :, None]
        V = dense_rows(op, [t.weight for t in form.terms])[:, :, None]  # (terms, n_out, 1, n_in)
        VT = dense_columns(op, form.terms[0].weight) if len(form.terms) == 1 else None
        w = None if form.direct or form.maxnorm else op_tensor(op, "weight", self.device, _F64)
        r_in, part = self._rows_step(step, algebra, S, V, VT, lambda: dense_denominator(
            step, a2, z2, w, b), z2, b, rows, n_b)
        r_in = r_in.reshape(n_b, n_pos, n_t, n_in).transpose(1, 2)
        return [r_in.reshape((n_b, n_t) + tuple(a.shape[1:]))], part

    def _fused_patches(
        self, op: Conv, step: LinearStep, algebra: EdgeAlgebra,
        values: dict[str, torch.Tensor], r_out: torch.Tensor,
    ) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """A convolution whose windows tile its input as a dense op per patch
        (:mod:`~provgraph.backends.numba_patches`; direct and max-norm denominators)."""
        a, z = values[op.inputs[0]], values[op.output]
        in_shape, kernel = tuple(a.shape[1:]), tuple(op.weight.shape[2:])
        n_b = r_out.shape[0]
        b = op_tensor(op, "bias", self.device, _F64)
        form = step.form
        S = np.stack([np.ascontiguousarray(patches(form.source(t, a, in_shape), kernel).numpy())
                      for t in form.terms])[:, :, None]
        flat = np.asarray(op.weight).reshape(op.weight.shape[0], -1)  # (C_out, C_in·K)
        terms = [modified(flat, t.weight) for t in form.terms]
        dtype = np.result_type(*terms)
        V = read_only(np.stack([np.ascontiguousarray(v, dtype=dtype) for v in terms])[:, :, None])
        z2 = positions_last(z, 1)
        r_in, part = self._rows_step(step, algebra, S, V, None, None, z2, b,
                                     positions_last(r_out, 2), n_b)
        return [from_patches(r_in, n_b, in_shape, kernel)], part

    def _rows_step(
        self, step: LinearStep, algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray,
        VT: np.ndarray | None, sum_denominator: Callable[[], torch.Tensor] | None,
        z2: torch.Tensor, b: torch.Tensor | None, rows: torch.Tensor, n_b: int,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The fused dense kernel on rows: ``S (terms, rows, 1, n_in)``, ``V (terms, n_out, 1,
        n_in)``, ``VT (n_in, n_out)`` of a one-term rule or ``None`` (read by the max-norm
        denominators by sources, and by Boolean and Counting by inputs), the output ``z2 (rows,
        n_out)`` and its relevance ``(rows, T, n_out)``, the rows being ``n_b`` samples × their
        positions → ``R_in (rows, T, n_in)`` and the bias part ``(n_b, T)``, ⊕ over positions."""
        from provgraph.backends import numba_dense
        from provgraph.backends.numba_contract import contract_window
        from provgraph.backends.numba_window import geometry, rows_absmax

        form = step.form
        geo = geometry((1,), (1,), (1,), (1,), (1,), (0,), 1)
        no_pos = np.zeros((len(form.terms), 1))
        if form.maxnorm:
            top = np.ascontiguousarray(bias_numerator(form, b, z2).abs().numpy())
            if VT is None:
                rows_absmax(S, V, top)
            else:
                numba_dense.columns_absmax(S, VT, top)
            d = top + form.epsilon
        elif form.direct or sum_denominator is None:
            d = np.ascontiguousarray(form.stabilize(z2).numpy())
        else:
            d = np.ascontiguousarray(sum_denominator().numpy())
        R = self._kernel_input(algebra, rows, 0)[:, :, None]
        by_inputs = VT is not None and _by_inputs(algebra, [t.weight for t in form.terms])
        columns = VT[None, None, None] if by_inputs else None
        out = contract_window(algebra, S, V, no_pos, False, d[:, None], R, geo, columns)[:, :, 0]
        r_in = self._from_kernel(step.carrier, out, tuple(out.shape))
        part = absorbed(step, b, torch.from_numpy(d), rows)
        n_pos = rows.shape[0] // n_b
        if part is not None and n_pos > 1:
            part = step.carrier.reduce(part.reshape(n_b, n_pos, -1), (1,))
        return r_in, part

    @staticmethod
    def _kernel_input(algebra: EdgeAlgebra, r_out: torch.Tensor, spatial: int) -> np.ndarray:
        """The relevance in the kernel's layout (channels-last when ``spatial``) and carrier."""
        dtype = torch.int64 if algebra.integer else _F64
        r = r_out.to(dtype)
        return channels_last(r, 2) if spatial else np.ascontiguousarray(r.numpy())

    @staticmethod
    def _carried(carrier: TorchSemiring, out: np.ndarray) -> torch.Tensor:
        """A kernel's result already in the relevance layout, as a carrier tensor."""
        t = torch.from_numpy(np.ascontiguousarray(out))
        return t != 0 if carrier.storage == torch.bool else t.to(carrier.storage)

    @staticmethod
    def _from_kernel(carrier: TorchSemiring, out: np.ndarray, shape: tuple[int, ...]
                     ) -> torch.Tensor:
        """A kernel's ``(B, T, P, C)`` (or ``(B, T, n)``) result as a carrier tensor."""
        t = torch.from_numpy(out)
        if t.dim() == 4:
            t = t.transpose(2, 3)
        t = t.reshape(shape)
        if carrier.storage == torch.bool:
            return t != 0
        return t.to(carrier.storage)


def _by_inputs(algebra: EdgeAlgebra, weights: list) -> bool:
    """Boolean or int64 Counting with a one-term rule: the kernel by input neurons may run."""
    return algebra.integer and len(weights) == 1


def _float64_window(win: Window) -> Window:
    """The window with float64 weights (a float32 backend still computes kernels in float64)."""
    def f64(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t.to(_F64)

    return replace(win, weight=f64(win.weight), scale=f64(win.scale), bias=f64(win.bias))


#: the fused kernel of each op class (looked up along the op's MRO)
_NUMBA = {
    Dense: NumbaBackend._fused_dense,
    Conv: NumbaBackend._fused_window,
    AvgPool: NumbaBackend._fused_window,
    GlobalAvgPool: NumbaBackend._fused_window,
}
