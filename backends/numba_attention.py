"""The product of two computed tensors under ``cp`` as fused numba dense kernels.

``z = a @ b`` (:class:`~provgraph.model.ops.MatProduct`, leading axes flattened to ``L``) under
``cp`` has edges from one operand only; the other (the attention weights) is a constant of the
sample. For each sample and head ``(B, L)`` the step is then a dense op whose weight matrix is
that constant operand, applied at the positions of the free axis:

- edges from ``a`` (``a_ij → z_ik``, weight ``b_jk``): rows ``i``, inputs ``j``, outputs ``k``,
  the weight ``bᵀ`` in the kernels' ``(n_out, n_in)`` layout;
- edges from ``b`` (``b_jk → z_ik``, weight ``a_ij``, A·V of attention): rows ``k``, inputs ``j``,
  outputs ``i``, the weight ``a`` itself.

Each ``(sample, head)`` runs :func:`~provgraph.backends.numba_contract.contract_window` with the
1×1 geometry of a dense op, so the edge weights ``r = s_t(src) v_t(other) / d`` and ``Θ(r)``
exist only in registers, as for a ``Gemm``; nothing of size ``m·n·p`` is materialised. The
denominators are those of :func:`~provgraph.backends.torch_attention.product_step` over the
edges that exist: ``z`` (direct rules), the largest ``|numerator|`` (max-norm, by
:func:`~provgraph.backends.numba_window.rows_absmax`), or the matrix products of a sum.

``attnlrp`` (edges from both operands, one denominator over both) keeps the torch step.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from provgraph.backends.numba_algebra import EdgeAlgebra
from provgraph.backends.numba_weights import read_only
from provgraph.backends.torch_attention import products_denominator
from provgraph.backends.torch_linear import LinearStep
from provgraph.model.ops.attention import MatProduct

_F64 = torch.float64


def _layout(t: torch.Tensor, perm: tuple[int, ...]) -> np.ndarray:
    """``t`` permuted, as a contiguous numpy array."""
    return np.ascontiguousarray(t.permute(perm).numpy())


def product_kernel(
    step: LinearStep, algebra: EdgeAlgebra, a: torch.Tensor, b: torch.Tensor, z: torch.Tensor,
    r_out: torch.Tensor, live: tuple[int, ...], integer_input: Callable[[torch.Tensor], np.ndarray],
) -> list[np.ndarray | None] | None:
    """``R_in`` of each operand in the kernel's carrier (``None``: no edges), or ``None`` when
    the step has edges from both operands (the torch step applies).

    Parameters
    ----------
    step, algebra
        The rule form, Θ and carrier, and the kernels' codes for them.
    a, b, z
        The operands ``(B, …, m, n)``, ``(B, …, n, p)`` and the output, float64.
    r_out
        The output's relevance ``(B, T, …, m, p)``.
    live
        The operands the rule gives edges (``op.edge_inputs(rule)``).
    integer_input
        Converts a relevance tensor into the kernel's carrier (int64 or float64 numpy).

    Returns
    -------
    list
        ``[R_a, R_b]``: arrays ``(B, T, *operand shape)`` or ``None``.
    """
    from provgraph.backends.numba_contract import contract_window
    from provgraph.backends.numba_window import geometry, rows_absmax

    if len(live) != 1:
        return None
    n_b, n_t = r_out.shape[:2]
    n_l, m, n, p = MatProduct.dims([tuple(a.shape[1:]), tuple(b.shape[1:])])
    form = step.form
    src, other = (a, b) if live == (0,) else (b, a)
    sources = [form.source(t, src, tuple(src.shape[1:])) for t in form.terms]
    weights = [t.weight(other) for t in form.terms]
    a4, b4 = a.reshape(n_b * n_l, m, n), b.reshape(n_b * n_l, n, p)
    z3 = z.reshape(n_b * n_l, m, p)
    r5 = r_out.reshape(n_b, n_t, n_l, m, p)
    if live == (0,):  # rows i, inputs j, outputs k
        S = np.stack([_layout(s.reshape(-1, m, n), (0, 1, 2)) for s in sources])
        V = np.stack([_layout(w.reshape(-1, n, p), (0, 2, 1)) for w in weights])
        zt, rows_r = z3, integer_input(r5.permute(0, 2, 3, 1, 4))
        n_rows, n_out = m, p
    else:  # rows k, inputs j, outputs i
        S = np.stack([_layout(s.reshape(-1, n, p), (0, 2, 1)) for s in sources])
        V = np.stack([_layout(w.reshape(-1, m, n), (0, 1, 2)) for w in weights])
        zt, rows_r = z3.transpose(1, 2), integer_input(r5.permute(0, 2, 4, 1, 3))
        n_rows, n_out = p, m
    R = rows_r.reshape(n_b * n_l, n_rows, n_t, 1, n_out)
    if form.direct:
        den: np.ndarray | None = _layout(form.stabilize(zt), (0, 1, 2))
    elif form.maxnorm:
        den = None
    else:
        sums = products_denominator(step, a4, b4, live)
        den = _layout(sums if live == (0,) else sums.transpose(1, 2), (0, 1, 2))
    geo = geometry((1,), (1,), (1,), (1,), (1,), (0,), 1)
    no_pos = np.zeros((len(form.terms), 1))
    dtype = np.int64 if algebra.integer else np.float64
    out = np.empty((n_b * n_l, n_rows, n_t, 1, n), dtype=dtype)
    for g in range(n_b * n_l):
        s_g = np.ascontiguousarray(S[:, g])[:, :, None]  # (terms, rows, 1, n_in)
        v_g = read_only(np.ascontiguousarray(V[:, g])[:, :, None])  # (terms, n_out, 1, n_in)
        if den is None:
            top = np.zeros((n_rows, n_out))
            rows_absmax(s_g, v_g, top)
            d_g = top + form.epsilon
        else:
            d_g = den[g]
        out[g] = contract_window(algebra, s_g, v_g, no_pos, False, d_g[:, None], R[g], geo)
    res = out.reshape(n_b, n_l, n_rows, n_t, n)
    if live == (0,):  # (B, L, i, T, j) → (B, T, L, i, j)
        sent = res.transpose(0, 3, 1, 2, 4).reshape((n_b, n_t) + tuple(a.shape[1:]))
        return [sent, None]
    # (B, L, k, T, j) → (B, T, L, j, k)
    sent = res.transpose(0, 3, 1, 4, 2).reshape((n_b, n_t) + tuple(b.shape[1:]))
    return [None, sent]
