r"""Fused numba kernels of the dense linear op (Gemm/MatMul ``z = a W + b``), batched.

Arrays: ``S (n_terms, B, n_in)`` the rule's sources, ``V (n_terms, n_in, n_out)`` the modified
weights, ``d, inv (B, n_out)`` the denominator and ``1/d``, ``R (B, T, n_out)`` the output's
relevance and ``out (B, T, n_in)`` the input's. Each input neuron ``j`` of each sample gathers

.. math::

    R_{in}[j] = ⊕_k Θ(r_{jk}) ⊗ R_k, \qquad r_{jk} = \frac{\sum_t s_t(a)_j\, v_t(w_{jk})}{d_k},

over the outputs ``k`` whose relevance is not K's zero (when ``skip``), one parallel task per
(sample, input neuron): no two tasks write the same entry.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from provgraph.backends.numba_algebra import BOOL
from provgraph.backends.numba_rows import INT_MAX, edge_ratio, plus, present, theta_value, times


@numba.njit(inline="always", cache=True)
def _numerator(S, V, b, j, k):
    num = 0.0
    for t in range(S.shape[0]):
        num += S[t, b, j] * V[t, j, k]
    return num


@numba.njit(parallel=True, cache=True)
def dense_float(S, V, d, inv, R, out, sr, th, theta, zero, one, skip, empty):
    """General float kernel (⊕, ⊗ and Θ by code); ``empty`` starts each ⊕."""
    n_b, n_t, n_out = R.shape
    n_in = out.shape[2]
    for item in prange(n_b * n_in):
        b, j = item // n_in, item % n_in
        for t in range(n_t):
            acc = empty
            for k in range(n_out):
                rk = R[b, t, k]
                if skip and rk == zero:
                    continue
                r = edge_ratio(_numerator(S, V, b, j, k), d[b, k], inv[b, k], th, theta)
                acc = plus(sr, acc, times(sr, theta_value(th, theta, r, zero, one), rk))
            out[b, t, j] = acc


@numba.njit(parallel=True, cache=True)
def dense_integer(S, V, d, inv, R, out, sr, th, theta):
    """Counting (exact int64; returns whether a sum overflowed) and Boolean (0/1)."""
    n_b, n_t, n_out = R.shape
    n_in = out.shape[2]
    overflows = np.zeros(n_b * n_in, dtype=np.int64)  # one slot per task: no shared sum
    for item in prange(n_b * n_in):
        b, j = item // n_in, item % n_in
        for t in range(n_t):
            acc = 0
            for k in range(n_out):
                rk = R[b, t, k]
                if rk == 0:
                    continue
                r = edge_ratio(_numerator(S, V, b, j, k), d[b, k], inv[b, k], th, theta)
                if not present(th, theta, r):
                    continue
                if sr == BOOL:
                    acc = 1
                else:
                    overflows[item] += acc > INT_MAX - rk
                    acc += rk
            out[b, t, j] = acc
    return overflows.sum() > 0


@numba.njit(parallel=True, cache=True)
def dense_absmax(S, V, top):
    """``top[b, k] = max(top, max_j |Σ_t s_t(a)_j v_t(w_jk)|)`` (max-norm denominators)."""
    n_b, n_out = top.shape
    n_in = S.shape[2]
    chunk = 64
    n_chunks = (n_out + chunk - 1) // chunk
    for item in prange(n_b * n_chunks):
        b, k0 = item // n_chunks, (item % n_chunks) * chunk
        k1 = min(n_out, k0 + chunk)
        for j in range(n_in):
            for k in range(k0, k1):
                top[b, k] = max(top[b, k], abs(_numerator(S, V, b, j, k)))
