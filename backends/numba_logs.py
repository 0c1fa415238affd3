"""Tropical's logarithms around a factored step, each in one pass over its array.

The factored tropical step (:func:`~provgraph.backends.numba_contract.contract_window`, Θ = −log)
runs ``−log s_j + c − log max_k v_jk exp(c − t_k)`` with ``t = log d + R`` and ``c`` the least
finite ``t`` of each sample and target. These kernels compute ``t`` with its range, then
``exp(c − t)``, and afterwards the logarithms of the result, each in one pass (numpy takes a
dozen passes and temporaries for the same), in parallel over rows of channels
(:func:`~provgraph.backends.numba_threads.over_rows`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from provgraph.backends.numba_threads import borrowed, over_rows


def scaled_exponent(d: np.ndarray, R: np.ndarray, spread: float):
    """``(t, x, c)``: ``t = log d + R`` (``+∞`` where ``d ≤ 0``) of ``R (B, T, P, C)`` and
    ``d (B, P, C)``, ``c (B, T, 1, 1)`` the least finite ``t`` of each sample and target (0 if
    none), and ``x = exp(c − t)``, or ``x = None`` where the finite ``t`` spread wider than
    ``spread`` (``exp`` would underflow)."""
    n_b, n_t, n_p, _ = R.shape
    n_rows = n_b * n_t * n_p
    t = np.empty(R.shape)
    if n_rows == 0:
        return t, np.zeros(R.shape), np.zeros((n_b, n_t, 1, 1))
    low, high = np.empty(n_rows), np.empty(n_rows)
    over_rows(_log_rows, n_rows, d, R, t, low, high)
    low, high = low.reshape(n_b, n_t, n_p).min(axis=2), high.reshape(n_b, n_t, n_p).max(axis=2)
    c = np.where(np.isfinite(low), low, 0.0)
    if np.any(np.isfinite(high) & (high - c > spread)):
        return t, None, c[:, :, None, None]
    x = np.empty(R.shape)
    over_rows(_exp_rows, n_rows, t, c, x)
    return t, x, c[:, :, None, None]


@numba.njit(nogil=True, cache=True)
def _log_rows(d, R, t, low, high, start, stop):
    d, R, t, low, high = borrowed(d), borrowed(R), borrowed(t), borrowed(low), borrowed(high)
    n_t, n_p, n_c = R.shape[1], R.shape[2], R.shape[3]
    for row in range(start, stop):
        b, tt, p = row // (n_t * n_p), (row // n_p) % n_t, row % n_p
        lo, hi = math.inf, -math.inf
        for ch in range(n_c):
            dv = d[b, p, ch]
            v = math.log(dv) + R[b, tt, p, ch] if dv > 0.0 else math.inf
            t[b, tt, p, ch] = v
            if abs(v) < math.inf:
                lo = v if v < lo else lo
                hi = v if v > hi else hi
        low[row], high[row] = lo, hi


@numba.njit(nogil=True, cache=True)
def _exp_rows(t, c, x, start, stop):
    t, c, x = borrowed(t), borrowed(c), borrowed(x)
    n_t, n_p, n_c = t.shape[1], t.shape[2], t.shape[3]
    for row in range(start, stop):
        b, tt, p = row // (n_t * n_p), (row // n_p) % n_t, row % n_p
        shift = c[b, tt]
        for ch in range(n_c):
            x[b, tt, p, ch] = math.exp(shift - t[b, tt, p, ch])


def tropical_result(out: np.ndarray, c: np.ndarray, S0: np.ndarray) -> np.ndarray:
    """``c − log out − log s`` in place in ``out (B, T, P, C)`` (``−log 0 = +∞``), with the
    sources ``S0 (B, P, C)`` and ``c (B, T, 1, 1)``."""
    n_b, n_t, n_p, _ = out.shape
    over_rows(_result_rows, n_b * n_t * n_p, out, np.ascontiguousarray(c[:, :, 0, 0]), S0)
    return out


@numba.njit(nogil=True, cache=True)
def _result_rows(out, c, S0, start, stop):
    out, c, S0 = borrowed(out), borrowed(c), borrowed(S0)
    n_t, n_p, n_c = out.shape[1], out.shape[2], out.shape[3]
    for row in range(start, stop):
        b, tt, p = row // (n_t * n_p), (row // n_p) % n_t, row % n_p
        shift = c[b, tt]
        for ch in range(n_c):
            o, s = out[b, tt, p, ch], S0[b, p, ch]
            inner = -math.log(o) if o > 0.0 else math.inf
            source = -math.log(s) if s > 0.0 else math.inf
            out[b, tt, p, ch] = shift + inner + source
