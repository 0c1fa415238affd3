"""Torch kernels of attention: the product of two computed tensors and the softmax.

Both ops' weights are constants of each sample's forward pass (see
:mod:`provgraph.model.ops.attention`), so every kernel works on a whole batch: activations
``(B, *shape)``, relevance ``(B, T, *shape)``.

:func:`product_step` (``z = a @ b``, leading axes flattened to ``L``): an edge ``a_ij → z_ik``
has ``z = s_t(a_ij) v_t(b_jk)`` summed over the rule's terms, an edge ``b_jk → z_ik``
``s_t(b_jk) v_t(a_ij)``; the rule's denominator runs over the edges that exist (one operand
under ``cp``, both under ``attnlrp``). The real semiring with Θ = identity and a sum
denominator takes the gradient form, matrix products only; every other case evaluates the
``(B, L, m, n, p)`` edge weights, maps them by Θ and contracts them in the semiring.

:func:`softmax_step`: edges ``x_i → s_k`` within each row with weights ``J_ik = s_k (δ_ik − s_i)``
and a bias source ``b_k = s_k − Σ_i J_ik x_i`` (``(B, rows, n, n)`` edge weights).
"""

from __future__ import annotations

import math

import torch

from provgraph.backends.torch_linear import LinearStep, bias_numerator
from provgraph.model.ops.attention import AttentionSoftmax, MatProduct


def _numerator(step: LinearStep, src: torch.Tensor, other: torch.Tensor,
               src_axis: str) -> torch.Tensor:
    """Edge numerators ``(B, L, m, n, p)``: ``Σ_t s_t(src) · v_t(other)`` where ``src`` is the
    operand the edges leave (``"a"``: ``(B, L, m, n)``, ``"b"``: ``(B, L, n, p)``)."""
    form = step.form
    num = None
    for t in form.terms:
        s = form.source(t, src, tuple(src.shape[1:]))
        v = t.weight(other)
        if src_axis == "a":
            term = s.unsqueeze(-1) * v.unsqueeze(2)
        else:
            term = v.unsqueeze(-1) * s.unsqueeze(2)
        num = term if num is None else num + term
    return num


def products_denominator(step: LinearStep, a: torch.Tensor, b: torch.Tensor,
                       live: tuple[int, ...]) -> torch.Tensor:
    """The sum denominator ``(B, L, m, p)`` by matrix products (no edge is materialised)."""
    form = step.form
    den = None
    for t in form.terms:
        if 0 in live:
            part = form.source(t, a, tuple(a.shape[1:])) @ t.weight(b)
            den = part if den is None else den + part
        if 1 in live:
            part = t.weight(a) @ form.source(t, b, tuple(b.shape[1:]))
            den = part if den is None else den + part
    return form.stabilize(den)


def product_step(
    step: LinearStep, op: MatProduct, a: torch.Tensor, b: torch.Tensor, r_out: torch.Tensor,
    live: tuple[int, ...], z: torch.Tensor | None = None,
) -> list[torch.Tensor | None]:
    """Relevance sent to ``a`` and ``b`` (``None`` for an operand without edges); ``z``, the
    op's output, spares the denominator's products when the rule's numerators are ``a w``."""
    n_b, n_t = r_out.shape[:2]
    a_shape, b_shape = tuple(a.shape), tuple(b.shape)
    n_l, m, n, p = MatProduct.dims([a_shape[1:], b_shape[1:]])
    a, b = a.reshape(n_b, n_l, m, n), b.reshape(n_b, n_l, n, p)
    r = r_out.reshape(n_b, n_t, n_l, m, p)
    form, c = step.form, step.carrier
    out: list[torch.Tensor | None] = [None, None]
    if step.gradient and not form.maxnorm:
        if form.direct and z is not None:  # every existing edge block sums to z
            den = form.stabilize(z.reshape(n_b, n_l, m, p) * len(live))
        else:
            den = products_denominator(step, a, b, live)
        s = form.divide(r, den.unsqueeze(1))
        for t in form.terms:
            if 0 in live:
                part = form.source(t, a, a_shape[1:]).unsqueeze(1) * (
                    s @ t.weight(b).unsqueeze(1).transpose(-1, -2))
                out[0] = part if out[0] is None else out[0] + part
            if 1 in live:
                part = form.source(t, b, b_shape[1:]).unsqueeze(1) * (
                    t.weight(a).unsqueeze(1).transpose(-1, -2) @ s)
                out[1] = part if out[1] is None else out[1] + part
    else:
        nums = {i: _numerator(step, (a, b)[i], (b, a)[i], "ab"[i]) for i in live}
        if form.maxnorm:
            den = torch.stack([x.abs().amax(dim=3) for x in nums.values()]).amax(dim=0)
            den = form.stabilize(den)
        else:
            den = form.stabilize(sum(x.sum(dim=3) for x in nums.values()))
        for i, num in nums.items():
            weights = form.divide(num, den.unsqueeze(3))
            if step.gradient:
                sent = (weights.unsqueeze(1) * r.unsqueeze(4)).sum(dim=-1 if i == 0 else 3)
            else:
                paths = c.mul(step.theta(weights).unsqueeze(1), r.unsqueeze(4))
                sent = c.reduce(paths, (-1,) if i == 0 else (3,))
            out[i] = sent
    shapes = ((n_b, n_t) + a_shape[1:], (n_b, n_t) + b_shape[1:])
    return [None if o is None else o.reshape(shape) for o, shape in zip(out, shapes)]


def softmax_step(
    step: LinearStep, x: torch.Tensor, r_out: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance of the softmax input ``(B, T, *shape)`` and of its bias source ``(B, T)``;
    ``y``, the op's output ``softmax(x)``, spares recomputing it."""
    n_b, n_t = r_out.shape[:2]
    n = x.shape[-1]
    rows = x.reshape(n_b, -1, n)
    r = r_out.reshape(n_b, n_t, rows.shape[1], n)
    form, c = step.form, step.carrier
    if step.gradient and form.direct:  # Σ_i x_i J_ik + b_k = s_k: no edge is materialised
        with torch.no_grad():
            s = torch.softmax(rows, dim=-1) if y is None else y.reshape(rows.shape)
            finite = rows
            if rows.numel() and not math.isfinite(rows.abs().amax().item()):  # masked: −∞ → 0
                finite = torch.where(torch.isfinite(rows), rows, torch.zeros((), dtype=rows.dtype))
            if not form.guarded:  # s_k R_k / (s_k + ε)
                sq = s.unsqueeze(1) * form.divide(r, form.stabilize(s).unsqueeze(1))
            elif s.numel() == 0 or s.amin().item() > 0:  # LRP-0: s_k · R_k / s_k = R_k
                sq = r
            else:  # and 0 where s_k = 0
                sq = torch.where(s.unsqueeze(1) != 0, r, torch.zeros((), dtype=r.dtype))
            total = sq.sum(dim=-1, keepdim=True)
            sent = torch.addcmul(sq, s.unsqueeze(1), total, value=-1).mul_(finite.unsqueeze(1))
            # Σ_k b_k q_k with b_k = s_k (1 − x_k + Σ_i s_i x_i), row by row
            sx = (s * finite).sum(dim=-1).unsqueeze(1)
            absorbed = (total.squeeze(-1) * (1 + sx)).sum(dim=-1) - (sq * finite.unsqueeze(1)).sum(
                dim=(2, 3))
        return sent.reshape(r_out.shape), absorbed
    with torch.no_grad():
        jac, bias, finite = AttentionSoftmax.jacobian(rows)
    num = None
    for t in form.terms:
        term = form.source(t, finite, tuple(finite.shape[1:])).unsqueeze(-1) * t.weight(jac)
        num = term if num is None else num + term
    b_num = bias_numerator(form, bias, bias)
    if form.maxnorm:
        den = form.stabilize(torch.maximum(b_num.abs(), num.abs().amax(dim=-2)))
    else:
        den = form.stabilize(num.sum(dim=-2) + b_num)
    weights = form.divide(num, den.unsqueeze(-2))
    r_bias = form.divide(b_num, den)
    if step.gradient:
        sent = (weights.unsqueeze(1) * r.unsqueeze(-2)).sum(dim=-1)
        absorbed = (r_bias.unsqueeze(1) * r).sum(dim=(2, 3))
    else:
        sent = c.reduce(c.mul(step.theta(weights).unsqueeze(1), r.unsqueeze(-2)), (-1,))
        absorbed = c.reduce(c.mul(step.theta(r_bias).unsqueeze(1), r), (2, 3))
    return sent.reshape(r_out.shape), absorbed
