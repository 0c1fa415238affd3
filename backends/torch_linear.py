"""Torch kernels of the dense and elementwise linear ops (Gemm/MatMul, Affine, residual Add).

A kernel receives the op's activations ``a (B, *in)``, its output ``z (B, *out)`` and the incoming
relevance ``R (B, T, *out)`` (B samples, T targets) and returns the relevance of each input and of
the bias source. Real semiring with Θ = identity: the gradient form (one matrix product per rule
term). Other semirings: edge weights evaluated chunk by chunk (never more than ``budget``
elements at once), Θ applied, then ``⊕_k Θ(r_jk) ⊗ R_k`` by the carrier's contraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from provgraph.algebra.rule_form import Weights
from provgraph.backends.torch_rules import TorchForm
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.backends.torch_theta import TorchTheta, factored


@dataclass
class LinearStep:
    """What one propagation step needs besides the tensors.

    ``theta`` is ``None`` for the gradient form (real semiring, Θ = identity).
    """

    form: TorchForm
    theta: TorchTheta | None
    carrier: TorchSemiring
    budget: int

    @property
    def gradient(self) -> bool:
        return self.theta is None

    @property
    def broadcasts(self) -> bool:
        """Whether the contraction materialises a target axis (non-matmul carriers)."""
        return not self.carrier.matmul_contraction


def bias_numerator(form: TorchForm, bias: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """``b'`` broadcast like ``like`` (zeros when the op or the rule gives the bias nothing)."""
    if bias is None or form.bias is None:
        return torch.zeros((), dtype=like.dtype, device=like.device).expand_as(like)
    return form.bias(bias).expand_as(like)


def gradient_ratio(
    form: TorchForm, r_out: torch.Tensor, den: torch.Tensor, z: torch.Tensor
) -> torch.Tensor:
    """``s = R / den`` of the gradient form, written over ``den`` when that is a fresh tensor
    of the right shape (one target): large networks then allocate one tensor less per op."""
    if den is not z and r_out.shape[1] == 1 and not form.guarded and den.is_contiguous():
        fresh = den.unsqueeze(1)
        return torch.div(r_out, fresh, out=fresh)
    return form.divide(r_out, den.unsqueeze(1))


def absorbed(
    step: LinearStep,
    bias: torch.Tensor | None,
    den: torch.Tensor,
    r_out: torch.Tensor,
    per_sample: bool = False,
) -> torch.Tensor | None:
    """What the bias source absorbs: ``⊕_k Θ(b'_k / den_k) ⊗ R_k`` → ``(B, T)``.

    In the gradient form pass ``r_out = R / den`` and ``den = None``: the sum is ``Σ_k b'_k s_k``.
    ``per_sample``: ``bias`` is ``(B, *out)``, one bias per sample (per-sample statistics).
    """
    if bias is None:
        return None
    dims = tuple(range(2, r_out.dim()))
    if step.gradient:
        if step.form.bias is None:
            return torch.zeros(r_out.shape[:2], dtype=r_out.dtype, device=r_out.device)
        b = step.form.bias(bias)
        if per_sample:
            return (r_out * b.unsqueeze(1)).sum(dim=dims)
        if b.dim() <= 1 or all(n == 1 for n in b.shape[1:]):  # one value per channel
            per_channel = r_out.sum(dim=dims[1:]) if len(dims) > 1 else r_out
            return per_channel @ b.reshape(-1)
        return (r_out * b).sum(dim=dims)
    r0 = step.form.divide(bias_numerator(step.form, bias, den), den)
    c = step.carrier
    return c.reduce(c.mul(step.theta(r0).unsqueeze(1), r_out), dims)


# --- dense: z_k = Σ_j a_j W_jk + b_k with W of shape (n_in, n_out) ---


def dense_denominator(
    step: LinearStep, a: torch.Tensor, z: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    form = step.form
    if form.direct:
        return form.stabilize(z)
    n_in, n_out = w.shape
    srcs = [form.source(t, a, (n_in,)) for t in form.terms]
    if form.maxnorm:
        den = bias_numerator(form, bias, z).abs()
        for b, k in _dense_chunks(a.shape[0], n_in, n_out, 1, step.budget):
            num = _dense_numerator(form, srcs, w, b, k)
            den[b, k] = torch.maximum(den[b, k], num.abs_().amax(dim=1))
        return form.stabilize(den)
    den = bias_numerator(form, bias, z).clone()
    for t, src in zip(form.terms, srcs):
        den = den + _mapped_product(src, t.weight, w, step.budget)
    return form.stabilize(den)


def dense_step(
    step: LinearStep,
    a: torch.Tensor,
    z: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    r_out: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Relevance of a dense op's input ``(B, T, n_in)`` and of its bias source."""
    form = step.form
    den = dense_denominator(step, a, z, w, bias)
    n_in, n_out = w.shape
    srcs = [form.source(t, a, (n_in,)) for t in form.terms]
    if step.gradient:
        # LRP-0 with a bias: the bias's sum Σ_k b_k s_k is non-finite exactly when some
        # R_k / z_k is, so it tests the quotients for a zero z_k (then guarded) at no extra pass
        fused = form.direct and form.guarded and bias is not None and den.device.type == "cpu"
        s = r_out / den.unsqueeze(1) if fused else gradient_ratio(form, r_out, den, z)
        bias_part = absorbed(step, bias, den, s)
        if fused and not math.isfinite(bias_part.sum().item()):
            s = form.divide(r_out, den.unsqueeze(1))
            bias_part = absorbed(step, bias, den, s)
        r_in = None
        for t, src in zip(form.terms, srcs):
            term = _mapped_product(s, t.weight, w.T, step.budget).mul_(src.unsqueeze(1))
            r_in = term if r_in is None else r_in.add_(term)
        return r_in, bias_part
    c = step.carrier
    n_b, n_t = r_out.shape[:2]
    r_in = c.blank((n_b, n_t, n_in))
    factor = n_t if step.broadcasts else 1
    fast = factored(form, step.theta, srcs[0], den, r_out)
    if fast is not None:
        for b, k in _dense_chunks(n_b, n_in, n_out, factor, step.budget):
            v = fast.inner(form.terms[0].weight(w[:, k]))
            part = c.reduce(c.mul(v, fast.t[b, :, None, k]), (-1,))
            r_in[b] = c.add(r_in[b], part)
        r_in = c.mul(fast.outer(srcs[0]).unsqueeze(1), c.settle(r_in))
        return r_in, absorbed(step, bias, den, r_out)
    nonzero = form.nonzero(den)
    for b, k in _dense_chunks(n_b, n_in, n_out, factor, step.budget):
        num = _dense_numerator(form, srcs, w, b, k)
        r = form.divide_(num, den[b, k].unsqueeze(1), nonzero)
        part = c.contract(step.theta(r), r_out[b, :, k])
        r_in[b] = c.add(r_in[b], part)
    return c.settle(r_in), absorbed(step, bias, den, r_out)


def _mapped_product(x: torch.Tensor, v: Weights, w: torch.Tensor, budget: int) -> torch.Tensor:
    """``x @ v(w)``, mapping at most ``budget`` weights at a time (no full copy)."""
    if v.is_identity:
        return x @ w
    n_in, n_out = w.shape
    rows = max(1, budget // max(1, n_out))
    out = None
    for j in range(0, n_in, rows):
        part = x[..., j : j + rows] @ v(w[j : j + rows])
        out = part if out is None else out + part
    return out


def _dense_numerator(
    form: TorchForm, srcs: list[torch.Tensor], w: torch.Tensor, b: slice, k: slice
) -> torch.Tensor:
    """``z[b, j, k] = Σ_t s_t[b, j] · v_t[j, k]`` for a chunk of samples and outputs."""
    num = None
    for t, src in zip(form.terms, srcs):
        term = src[b].unsqueeze(2) * t.weight(w[:, k]).unsqueeze(0)
        num = term if num is None else num + term
    return num


def _dense_chunks(n_b: int, n_in: int, n_out: int, factor: int, budget: int):
    """Slices ``(samples, outputs)`` with ``samples · n_in · outputs · factor ≤ budget``."""
    k_size = max(1, min(n_out, budget // max(1, n_in * factor)))
    b_size = max(1, budget // max(1, n_in * k_size * factor))
    for b0 in range(0, n_b, b_size):
        for k0 in range(0, n_out, k_size):
            yield slice(b0, b0 + b_size), slice(k0, k0 + k_size)


# --- elementwise: z_k = Σ_i a_i,k w_i,k + b_k (Affine: one input, Add: two) ---


def elementwise_step(
    step: LinearStep,
    inputs: list[tuple[torch.Tensor, torch.Tensor | None]],
    z: torch.Tensor,
    bias: torch.Tensor | None,
    r_out: torch.Tensor,
    per_sample: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """``inputs``: (activation ``(B, *out)``, weight broadcastable to it, ``None`` for one) per
    input tensor; ``per_sample``: weights and ``bias`` are ``(B, *out)`` (computed from each
    sample)."""
    form = step.form
    if step.gradient and form.direct and form.guarded and bias is None and len(inputs) == 1:
        # z_k = a_k w_k is the one term of z_k: LRP-0 sends R_k itself (0 where z_k = 0)
        return [_where_nonzero(z, r_out)], None
    shape = tuple(z.shape[1:])
    nums = []
    for a, w in inputs:
        num = None
        for t in form.terms:
            src = form.source(t, a, shape)
            if w is None and t.weight.is_identity:
                term = src
            else:
                one = torch.ones((), dtype=a.dtype, device=a.device)
                term = src * t.weight(one if w is None else w)
            num = term if num is None else num + term
        nums.append(num)
    if form.direct:
        den = form.stabilize(z)
    elif form.maxnorm:
        den = bias_numerator(form, bias, z).abs()
        for num in nums:
            den = torch.maximum(den, num.abs())
        den = form.stabilize(den)
    else:
        den = sum(nums) + bias_numerator(form, bias, z)
        den = form.stabilize(den)
    c = step.carrier
    if step.gradient:
        s = form.divide(r_out, den.unsqueeze(1))
        return [num.unsqueeze(1) * s for num in nums], absorbed(step, bias, den, s, per_sample)
    sent = []
    for num in nums:
        r = form.divide(num, den).unsqueeze(1)
        sent.append(c.mul(step.theta(r), r_out))
    return sent, absorbed(step, bias, den, r_out, per_sample)


def _where_nonzero(z: torch.Tensor, r_out: torch.Tensor) -> torch.Tensor:
    """``R`` where ``z ≠ 0``, else 0 (``z (B, *out)``, ``R (B, T, *out)``)."""
    if z.numel() == 0 or z.abs().amin().item() > 0:
        return r_out
    return torch.where(z.unsqueeze(1) != 0, r_out, torch.zeros((), dtype=r_out.dtype,
                                                                device=r_out.device))
