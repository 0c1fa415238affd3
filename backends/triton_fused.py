"""The Triton backend's fused linear steps: dense, convolution and average pooling without edges.

For a :class:`~provgraph.model.ops.Conv`, :class:`~provgraph.model.ops.AvgPool`,
:class:`~provgraph.model.ops.GlobalAvgPool` or :class:`~provgraph.model.ops.Dense` op this module
prepares, on the device, the channels-last arrays of the rule's declaration
(:class:`~provgraph.algebra.rule_form.RuleForm`: sources ``s_t(a)``, modified weights ``v_t(w)``,
denominators ``d_k``) and launches :func:`~provgraph.backends.triton_window.window_gather`, which
computes

    R_in[j] = ⊕_k Θ(r_jk) ⊗ R_out[k],   r_jk = Σ_t s_t(a)_j v_t(w_jk) / d_k

with ``r_jk`` in registers. Denominators of a sum form are one convolution (or matrix product)
of the sources with the modified weights, as in the torch backend
(:func:`~provgraph.backends.torch_conv.window_denominator`); max-norm denominators are a second
fused kernel (:func:`~provgraph.backends.triton_window.window_absmax`). What the bias source
absorbs, ``⊕_k Θ(b'_k / d_k) ⊗ R_out[k]``, is an elementwise kernel and one ⊕-reduction.

A step is fused when the rule declares a form and Θ is built in (:data:`THETAS` of the backend);
:func:`fused_plan` returns ``None`` otherwise, and the backend takes the generic step over
materialised edges.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from provgraph.algebra.rule_form import RuleFormError
from provgraph.algebra.semirings import RealSemiring
from provgraph.backends.torch_conv import Window, window_denominator
from provgraph.backends.torch_device import device_values, op_tensor
from provgraph.backends.torch_linear import LinearStep, bias_numerator, dense_denominator
from provgraph.backends.torch_rules import TorchForm, rule_form
from provgraph.model.ops import AvgPool, Conv, Dense, GlobalAvgPool, LinearOp

if TYPE_CHECKING:
    from provgraph.backends.base import StepContext
    from provgraph.backends.torch_backend import TorchBackend
    from provgraph.backends.triton_backend import TritonCarrier

#: most numerator terms of a fused rule form (the gather kernel loads each term's sources once;
#: every built-in rule has at most three, z^B exactly three)
MAX_TERMS = 3
_F64 = torch.float64


def is_fused_op(op: Any) -> bool:
    """Whether ``op``'s class has a fused kernel (the step may still fall back, see
    :func:`fused_plan`)."""
    return operands_of(op) is not None


def operands_of(op: Any) -> Callable[..., Operands] | None:
    """The function preparing ``op``'s fused operands, looked up along its class's MRO."""
    return next((_OPERANDS[t] for t in type(op).__mro__ if t in _OPERANDS), None)


@dataclass(frozen=True)
class FusedPlan:
    """The compile-time choices of one fused step."""

    form: TorchForm
    carrier: TritonCarrier
    theta: str  # a Θ code name of backends.triton_kernels
    threshold: float


@dataclass
class Geometry:
    """Channels-last shape of a window step (spatial axes padded to three)."""

    c_in: int
    c_out: int
    groups: int
    in_sp: tuple[int, int, int]
    out_sp: tuple[int, int, int]
    kernel: tuple[int, int, int]
    strides: tuple[int, int, int]
    dilations: tuple[int, int, int]
    pad_begin: tuple[int, int, int]

    @classmethod
    def of(cls, c_in: int, c_out: int, groups: int, in_sp, out_sp, kernel, strides, dilations,
           pad_begin) -> Geometry:
        def three(v, fill: int) -> tuple[int, int, int]:
            v = tuple(int(x) for x in v) + (fill,) * (3 - len(v))
            return v[0], v[1], v[2]

        return cls(c_in, c_out, groups, three(in_sp, 1), three(out_sp, 1), three(kernel, 1),
                   three(strides, 1), three(dilations, 1), three(pad_begin, 0))

    @property
    def n_in(self) -> int:
        return math.prod(self.in_sp) * self.c_in

    @property
    def n_out(self) -> int:
        return math.prod(self.out_sp) * self.c_out

    def window_args(self) -> list[int]:
        return [*self.kernel, *self.strides, *self.dilations, *self.pad_begin]

    def gather_loops(self) -> tuple[list[int], list[int]]:
        """Per axis, the steps of the gather loop and how it walks the axis (the ``MODE`` of
        ``triton_window._edge_axis``): an axis the window leaves alone is the identity (0);
        otherwise the loop runs over the outputs whose window can hold a given
        input, ``⌈((k − 1)·dil + 1) / s⌉`` at most, when that is fewer than the ``k`` kernel
        offsets (2: strided and global windows), else over the offsets (1)."""
        steps, modes = [], []
        for k, s, d, p, n, m in zip(self.kernel, self.strides, self.dilations, self.pad_begin,
                                    self.in_sp, self.out_sp):
            outputs = min(m, -(-((k - 1) * d + 1) // s))
            if k == 1 and s == 1 and p == 0 and n == m:
                steps.append(1)
                modes.append(0)
            else:
                steps.append(min(k, outputs))
                modes.append(2 if outputs < k else 1)
        return steps, modes


@dataclass
class Operands:
    """The channels-last operands of one fused step, on the device (float64)."""

    geo: Geometry
    sources: torch.Tensor  # (terms, n_in)
    weights: torch.Tensor  # (terms, C_in·K·C_out/groups) or (terms, P_out) when pooled
    pooled: bool
    den: torch.Tensor  # (n_out,) channels-last
    r_bias: torch.Tensor | None  # (n_out,) in the tensor's own order, or None (no bias source)
    channels_first: bool = False  # the tensors' own layout is (C, *spatial), not channels-last


def fused_plan(ctx: StepContext, carrier: TritonCarrier, thetas: dict[type, str]
               ) -> FusedPlan | None:
    """The plan of a fused step, or ``None`` when the rule or Θ needs materialised edges."""
    if ctx.rule is None or ctx.theta is None or ctx.layer is None:
        return None
    theta = thetas.get(type(ctx.theta))
    if theta is None:
        return None
    try:
        form = rule_form(ctx.rule)
    except RuleFormError:
        return None
    if len(form.terms) > MAX_TERMS:
        return None
    ctx.theta(np.zeros(0), ctx.semiring, ctx.layer)  # its refusal, if K does not fit
    threshold = float(ctx.theta.threshold_for(ctx.layer)) if theta == "THETA_THRESHOLD" else 0.0
    return FusedPlan(form, carrier, theta, threshold)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    """``(1, C, *spatial)`` (or ``(C, *spatial)``) as a flat channels-last ``(P·C,)``."""
    c = t.shape[1] if t.dim() > 1 and t.shape[0] == 1 else t.shape[0]
    return t.reshape(c, -1).T.contiguous().reshape(-1)


def _bias_weights(form: TorchForm, bias: torch.Tensor | None, z: torch.Tensor,
                  den: torch.Tensor) -> torch.Tensor | None:
    """``r_0k = b'_k / d_k`` (0 where ``d_k = 0``), flat in the tensor's order."""
    if bias is None:
        return None
    return form.divide(bias_numerator(form, bias, z), den).reshape(-1).contiguous()


def window_operands(structured: TorchBackend, op: LinearOp, plan: FusedPlan, graph: Any
                    ) -> Operands:
    """Operands of a convolution or average pooling (geometry from the torch backend's
    :class:`~provgraph.backends.torch_conv.Window`)."""
    values = device_values(graph, structured.device, _F64)
    a, z = values[op.inputs[0]], values[op.output]
    in_shape, out_shape = tuple(a.shape[1:]), tuple(z.shape[1:])
    win: Window = structured._window(op, in_shape, out_shape)
    form = plan.form
    pooled = win.scale is not None
    c_out, cin_g = win.weight.shape[:2]
    geo = Geometry.of(in_shape[0], c_out, win.groups, in_shape[1:], out_shape[1:], win.kernel,
                      win.strides, win.dilations, win.pad_begin)
    sources = torch.stack([_channels_last(form.source(t, a, in_shape)) for t in form.terms])
    if pooled:
        weights = torch.stack([t.weight(win.scale).reshape(-1) for t in form.terms])
    else:
        g = win.groups
        weights = torch.stack([
            t.weight(win.weight).reshape(g, c_out // g, cin_g, -1).permute(0, 2, 3, 1)
            .reshape(-1) for t in form.terms
        ])
    step = LinearStep(form, None, structured.carrier(RealSemiring()), structured.budget)
    if form.maxnorm:
        top = _channels_last(bias_numerator(form, win.bias, z).abs())
        absmax(geo, sources.contiguous(), weights.contiguous(), pooled, top)
        den_cl = top + form.epsilon
        den = den_cl.reshape(-1, c_out).T.reshape(z.shape)
    else:
        den = window_denominator(step, a, z, win)
        den_cl = _channels_last(den)
    return Operands(geo, sources.contiguous(), weights.contiguous(), pooled, den_cl,
                    _bias_weights(form, win.bias, z, den), channels_first=True)


def dense_operands(structured: TorchBackend, op: Dense, plan: FusedPlan, graph: Any
                   ) -> Operands:
    """Operands of a dense op: a 1×1 convolution over its positions, whose natural layout
    ``(*positions, n)`` is already channels-last."""
    values = device_values(graph, structured.device, _F64)
    a, z = values[op.inputs[0]], values[op.output]
    w = op_tensor(op, "weight", structured.device, _F64)
    b = op_tensor(op, "bias", structured.device, _F64)
    n_in, n_out = w.shape
    n_pos = Dense.positions(tuple(a.shape[1:]))
    a2, z2 = a.reshape(n_pos, n_in), z.reshape(n_pos, n_out)
    form = plan.form
    geo = Geometry.of(n_in, n_out, 1, (n_pos,), (n_pos,), (1,), (1,), (1,), (0,))
    sources = torch.stack([form.source(t, a2, (n_in,)).reshape(-1) for t in form.terms])
    weights = [t.weight(w).contiguous().reshape(-1) for t in form.terms]
    stacked = weights[0][None] if len(weights) == 1 else torch.stack(weights)
    if form.maxnorm:
        top = bias_numerator(form, b, z2).abs().reshape(-1).contiguous()
        absmax(geo, sources.contiguous(), stacked, False, top)
        den = (top + form.epsilon).reshape(n_pos, n_out)
    else:
        step = LinearStep(form, None, structured.carrier(RealSemiring()), structured.budget)
        den = dense_denominator(step, a2, z2, w, b)
    return Operands(geo, sources.contiguous(), stacked, False, den.reshape(-1).contiguous(),
                    _bias_weights(form, b, z2, den))


#: the operands of each op class with a fused step: a dense op is a 1×1 convolution over its
#: positions, the others are windows
_OPERANDS: dict[type, Callable[..., Operands]] = {
    Dense: dense_operands,
    Conv: window_operands,
    AvgPool: window_operands,
    GlobalAvgPool: window_operands,
}


def absmax(geo: Geometry, sources: torch.Tensor, weights: torch.Tensor, pooled: bool,
           top: torch.Tensor) -> None:
    """Max-norm denominators in place: ``top[k] = max(top[k], max_j |z_jk|)``."""
    from provgraph.backends import triton_window as w

    block_k, block_c = w.tiles(geo.n_out, geo.c_in // geo.groups)
    w.window_absmax[(w.cdiv(geo.n_out, block_k),)](
        sources, weights, top, geo.n_out, geo.c_in, geo.c_out, geo.c_in // geo.groups,
        geo.c_out // geo.groups, *geo.in_sp, geo.out_sp[1], geo.out_sp[2], *geo.window_args(),
        sources.shape[1], weights.shape[1],
        N_TERMS=sources.shape[0], POOLED=pooled, BLOCK_K=block_k, BLOCK_C=block_c,
        enable_fp_fusion=False,
    )


def _theta_threshold(plan: FusedPlan, device: torch.device) -> torch.Tensor:
    """θ as a one-value float64 tensor: a float argument would reach the kernel as float32."""
    return torch.tensor([plan.threshold], dtype=_F64, device=device)


def _nonnegative(*tensors: torch.Tensor) -> bool:
    return all(t.numel() == 0 or float(t.min()) >= 0.0 for t in tensors)


#: ⊕ of each operation pair, as a torch reduction over axis 0
_REDUCE = {
    "SUM_PROD": lambda x: x.sum(dim=0),
    "MAX_PROD": lambda x: x.amax(dim=0),
    "MIN_SUM": lambda x: x.amin(dim=0),
    "MAX_MIN": lambda x: x.amax(dim=0),
    "LSE_SUM": lambda x: torch.logsumexp(x, dim=0),
}


def _skips(plan: FusedPlan, ops: Operands, r: torch.Tensor) -> bool:
    """Whether outputs whose relevance is K's zero may be left out: always unless ⊕ = max
    (Viterbi, fuzzy), where K's zero (0) is the identity only on contributions ≥ 0."""
    c = plan.carrier
    if c.ops not in ("MAX_PROD", "MAX_MIN") or c.boolean:
        return True
    if not _nonnegative(r):
        return False
    return plan.theta != "THETA_IDENTITY" or _nonnegative(ops.sources, ops.weights, ops.den)


def _factored(plan: FusedPlan, ops: Operands, r: torch.Tensor, skip: bool
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``(outer factor, inner weights, t)`` of a factored step, or ``None``.

    Viterbi, Θ = identity: ``s_j · max_k v_jk (R_k / d_k)``; tropical, Θ = −log:
    ``−log s_j + min_k (−log v_jk + log d_k + R_k)``; one term, sources, weights and
    denominators ≥ 0 (the max-normalised rule and LRP-0 on non-negative activations and
    weights)."""
    c = plan.carrier
    if ops.sources.shape[0] != 1 or c.integral or c.boolean:
        return None
    viterbi = c.ops == "MAX_PROD" and plan.theta == "THETA_IDENTITY" and skip
    tropical = c.ops == "MIN_SUM" and plan.theta == "THETA_NEGLOG"
    if not (viterbi or tropical) or not _nonnegative(ops.sources, ops.weights, ops.den):
        return None
    d = ops.den[:, None]
    if viterbi:
        inv = torch.where(d != 0, 1.0 / torch.where(d != 0, d, 1.0), 0.0)
        return ops.sources[0], ops.weights, r * inv
    t = torch.where(d > 0, torch.log(torch.where(d > 0, d, 1.0)) + r, math.inf)
    return -torch.log(ops.sources[0]), -torch.log(ops.weights), t


def contract_fused(plan: FusedPlan, ops: Operands, r_out: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """``(R_in (n_in, T), absorbed by the bias (T,) or None, variant)`` of a fused step;
    ``r_out`` is ``(n_out, T)`` in the output tensor's own order; the variant is
    ``"factored"``, ``"skipping"`` (zero outputs masked) or ``"every edge"``.

    The kernels are compiled without fused multiply-adds, so that numerators round as the
    reference's separate products and sums do (a threshold Θ decides on them)."""
    from provgraph.backends import triton_kernels as k
    from provgraph.backends import triton_window as w

    geo, c = ops.geo, plan.carrier
    n_t = r_out.shape[1]
    r = r_out.reshape(geo.c_out, -1, n_t).transpose(0, 1) if ops.channels_first else r_out
    r = r.reshape(geo.n_out, n_t).contiguous()
    skip = _skips(plan, ops, r)
    parts = _factored(plan, ops, r, skip)
    sources, weights, rk = (ops.sources, ops.weights, r) if parts is None else parts
    empty = c.zero if skip else -math.inf
    out = torch.empty((geo.n_in, n_t), dtype=_F64, device=r.device)
    block_j, block_c = w.tiles(geo.n_in, geo.c_out // geo.groups)
    steps, modes = geo.gather_loops()
    w.window_gather[(w.cdiv(geo.n_in, block_j), n_t)](
        sources.contiguous(), weights.contiguous(), ops.den, rk.contiguous(), out,
        geo.n_in, geo.c_in, geo.c_out, geo.c_in // geo.groups, geo.c_out // geo.groups, n_t,
        geo.in_sp[1], geo.in_sp[2], *geo.out_sp, *geo.window_args(), *steps,
        ops.sources.shape[1], weights.shape[-1] if weights.dim() > 1 else 0,
        _theta_threshold(plan, r.device), c.zero, c.one, empty,
        OPS=k.CODES[c.ops], THETA=k.CODES[plan.theta], INTEGRAL=c.integral,
        BOOLEAN=c.boolean, N_TERMS=ops.sources.shape[0], POOLED=ops.pooled,
        FACTORED=parts is not None, SKIP=skip, MODE0=modes[0], MODE1=modes[1], MODE2=modes[2],
        BLOCK_J=block_j, BLOCK_C=block_c, enable_fp_fusion=False,
    )
    if ops.channels_first:
        out = out.reshape(-1, geo.c_in, n_t).transpose(0, 1).reshape(geo.n_in, n_t)
    variant = "factored" if parts is not None else "skipping" if skip else "every edge"
    return out.contiguous(), absorbed(plan, ops.r_bias, r_out), variant


def absorbed(plan: FusedPlan, r_bias: torch.Tensor | None, r_out: torch.Tensor
             ) -> torch.Tensor | None:
    """``⊕_k Θ(r_0k) ⊗ R_out[k]`` per target: what the bias source absorbs."""
    if r_bias is None:
        return None
    from provgraph.backends import triton_kernels as k
    from provgraph.backends import triton_window as w

    c = plan.carrier
    r = r_out.reshape(r_bias.shape[0], -1).contiguous()
    x = torch.empty_like(r)
    block = 1024
    w.annotate_outputs[(w.cdiv(r.numel(), block),)](
        r_bias, r, x, r.shape[0], r.shape[1], _theta_threshold(plan, r.device), c.zero, c.one,
        OPS=k.CODES[c.ops], THETA=k.CODES[plan.theta], INTEGRAL=c.integral, BOOLEAN=c.boolean,
        BLOCK=block,
    )
    return _REDUCE[c.ops](x)
