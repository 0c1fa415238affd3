r"""Dense steps in tiles: blocks of rows × chunks of columns, each weight row read once a block.

A dense op's step (a ``Gemm`` or ``MatMul`` per token, the product of the attention weights and
the values under ``cp``) runs over ``rows`` (samples × token positions) with the weight matrix
``V (n_out, n_in)``. Visiting each row on its own reads the whole matrix once per row: for
BERT-base's feed-forward layers, 9.4 MB (beyond the cache) 128 times. Here each task owns
:data:`ROWS` rows and :data:`COLUMNS` input columns of ``R_in``: it reads every weight row's
chunk once and applies it to all of its rows, whose accumulators stay in the cache. No two
tasks write the same element (no races); tasks run from
:func:`~provgraph.backends.numba_threads.over_rows`, so a single row (a dense layer of VGG-16)
still runs on every thread.

Every edge term is computed by the row functions of :mod:`~provgraph.backends.numba_rows` and
:mod:`~provgraph.backends.numba_blocks`, as the window kernels compute it; only the order in
which a row's ⊕ meets the edges changes, and only for ⊕ = max or min (four output channels at
a time), where the order does not change the result. Sums keep the order of
:mod:`~provgraph.backends.numba_window` (outputs ascending), except the few edges within
rounding of θ, which a threshold sum settles after its block of four outputs.

Arrays (one rule term): ``S (1, rows, 1, n_in)``, ``V (1, n_out, 1, n_in)``,
``d, inv (rows, 1, n_out)``, ``R (rows, T, 1, n_out)``, ``out (rows, T, 1, n_in)``.
"""

from __future__ import annotations

import numba
import numpy as np

from provgraph.backends.numba_algebra import FUZZY, IDENTITY, REAL, THRESHOLD, VITERBI
from provgraph.backends.numba_blocks import (
    BLOCK,
    row_absmax4,
    row_factored4,
    row_fuzzy4,
    row_threshold_sum4,
    row_viterbi4,
    rows_absmax4x2,
    rows_factored4x2,
    rows_fuzzy4x2,
)
from provgraph.backends.numba_rows import (
    row_absmax,
    row_factored,
    row_float,
    row_integer,
    row_near_threshold,
)
from provgraph.backends.numba_threads import borrowed, over_rows

#: rows of a tile: each weight row's chunk is read once for this many rows
ROWS = 8
#: input (or, for the denominators, output) columns of a tile
COLUMNS = 512


def is_dense(geo: np.ndarray) -> bool:
    """Whether a window geometry is a dense op's (one position, a 1×1 kernel, one group)."""
    return bool((geo[:9] == 1).all() and geo[18] == 1)


def _tiles(n_rows: int, n_columns: int) -> tuple[int, int]:
    """``(row blocks, column chunks)`` of a tiling."""
    return -(-n_rows // ROWS), -(-n_columns // COLUMNS)


def dense_float(S, V, Vpos, d, inv, R, out, sr, th, theta, zero, one, skip) -> None:
    """``out[r, t, j] ⊕= Θ(r_jk) ⊗ R_k`` of a float semiring (see :func:`window_float`)."""
    blocks, chunks = _tiles(R.shape[0], out.shape[3])
    # the row functions' flags and offsets as run-time values: one compilation for every caller
    over_rows(_float_tiles, blocks * chunks, S, V, Vpos, d, inv, R, out, sr, th, theta, zero,
              one, skip, chunks, False, True, 0)


@numba.njit(nogil=True, cache=True)
def _float_tiles(S, V, Vpos, d, inv, R, out, sr, th, theta, zero, one, skip, chunks, pooled,
                 fast, origin, start, stop):
    S, V, d, inv, R, out = (
        borrowed(S), borrowed(V), borrowed(d), borrowed(inv), borrowed(R), borrowed(out))
    n_rows, n_t, n_out, n_in = R.shape[0], R.shape[1], R.shape[3], out.shape[3]
    blocked = th == IDENTITY and (sr == FUZZY or sr == VITERBI)
    sums = th == THRESHOLD and sr == REAL
    for task in range(start, stop):
        r0, j0 = (task // chunks) * ROWS, (task % chunks) * COLUMNS
        r1, j1 = min(n_rows, r0 + ROWS), min(n_in, j0 + COLUMNS)
        for t in range(n_t):
            k = origin
            while k < n_out:
                if sums and k + BLOCK <= n_out:
                    _threshold_block(S, V, d, inv, R, out, theta, t, k, r0, r1, j0, j1)
                    k += BLOCK
                    continue
                if blocked and k + BLOCK <= n_out:
                    v0, v1 = V[0, k, 0, j0:j1], V[0, k + 1, 0, j0:j1]
                    v2, v3 = V[0, k + 2, 0, j0:j1], V[0, k + 3, 0, j0:j1]
                    r = r0
                    while sr == FUZZY and r + 2 <= r1:  # two rows share each weight
                        rows_fuzzy4x2(out[r, t, 0, j0:j1], out[r + 1, t, 0, j0:j1],
                                      S[0, r, 0, j0:j1], S[0, r + 1, 0, j0:j1], v0, v1, v2, v3,
                                      inv[r, 0, k:k + BLOCK], inv[r + 1, 0, k:k + BLOCK],
                                      R[r, t, 0, k:k + BLOCK], R[r + 1, t, 0, k:k + BLOCK])
                        r += 2
                    for q in range(r, r1):
                        rr, ir = R[q, t, 0], inv[q, 0]
                        orow, srow = out[q, t, 0, j0:j1], S[0, q, 0, j0:j1]
                        if sr == FUZZY:
                            row_fuzzy4(orow, srow, v0, v1, v2, v3, ir[k], ir[k + 1], ir[k + 2],
                                       ir[k + 3], rr[k], rr[k + 1], rr[k + 2], rr[k + 3])
                        else:
                            row_viterbi4(orow, srow, v0, v1, v2, v3, ir[k], ir[k + 1],
                                         ir[k + 2], ir[k + 3], rr[k], rr[k + 1], rr[k + 2],
                                         rr[k + 3])
                    k += BLOCK
                    continue
                vrow = V[0, k, 0, j0:j1]
                for r in range(r0, r1):
                    rk = R[r, t, 0, k]
                    if skip and rk == zero:
                        continue
                    row_float(out[r, t, 0, j0:j1], S[0, r, 0, j0:j1], vrow, S, V, Vpos, pooled,
                              fast, r, origin, j0, k, origin, origin, d[r, 0, k], inv[r, 0, k],
                              rk, sr, th, theta, zero, one)
                k += 1


@numba.njit(cache=True)
def _threshold_block(S, V, d, inv, R, out, theta, t, k, r0, r1, j0, j1):
    """The threshold sums of the four output channels from ``k`` into a tile's rows."""
    v0, v1 = V[0, k, 0, j0:j1], V[0, k + 1, 0, j0:j1]
    v2, v3 = V[0, k + 2, 0, j0:j1], V[0, k + 3, 0, j0:j1]
    for r in range(r0, r1):
        rr, ir = R[r, t, 0], inv[r, 0]
        if rr[k] == 0.0 and rr[k + 1] == 0.0 and rr[k + 2] == 0.0 and rr[k + 3] == 0.0:
            continue  # every term is 0 · [r ≥ θ] = 0
        orow, srow = out[r, t, 0, j0:j1], S[0, r, 0, j0:j1]
        if row_threshold_sum4(orow, srow, v0, v1, v2, v3, ir[k], ir[k + 1], ir[k + 2],
                              ir[k + 3], rr[k], rr[k + 1], rr[k + 2], rr[k + 3], theta):
            for q in range(BLOCK):
                row_near_threshold(orow, srow, V[0, k + q, 0, j0:j1], d[r, 0, k + q],
                                   ir[k + q], rr[k + q], theta)


def dense_integer(S, V, Vpos, d, inv, R, out, sr, th, theta) -> bool:
    """Counting (int64) or Boolean (see :func:`window_integer`); returns whether a sum
    overflowed."""
    blocks, chunks = _tiles(R.shape[0], out.shape[3])
    return sum(over_rows(_integer_tiles, blocks * chunks, S, V, Vpos, d, inv, R, out, sr, th,
                         theta, chunks, False, True, 0)) > 0


@numba.njit(nogil=True, cache=True)
def _integer_tiles(S, V, Vpos, d, inv, R, out, sr, th, theta, chunks, pooled, fast, origin,
                   start, stop):
    S, V, d, inv, R, out = (
        borrowed(S), borrowed(V), borrowed(d), borrowed(inv), borrowed(R), borrowed(out))
    n_rows, n_t, n_out, n_in = R.shape[0], R.shape[1], R.shape[3], out.shape[3]
    overflow = 0
    for task in range(start, stop):
        r0, j0 = (task // chunks) * ROWS, (task % chunks) * COLUMNS
        r1, j1 = min(n_rows, r0 + ROWS), min(n_in, j0 + COLUMNS)
        for t in range(n_t):
            for k in range(n_out):
                vrow = V[0, k, 0, j0:j1]
                for r in range(r0, r1):
                    rk = R[r, t, 0, k]
                    if rk == 0:
                        continue
                    overflow += row_integer(out[r, t, 0, j0:j1], S[0, r, 0, j0:j1], vrow, S, V,
                                            Vpos, pooled, fast, r, origin, j0, k, origin, origin,
                                            d[r, 0, k], inv[r, 0, k], rk, sr, th, theta)
    return overflow


def dense_factored(V, X, out, sr, skip_value) -> None:
    """``out[r, t, j] ⊕= v_kj ⊗ x_k`` (see :func:`window_factored`); ``X (rows, T, 1, n_out)``."""
    blocks, chunks = _tiles(X.shape[0], out.shape[3])
    over_rows(_factored_tiles, blocks * chunks, V, X, out, sr, skip_value, chunks)


@numba.njit(nogil=True, cache=True)
def _factored_tiles(V, X, out, sr, skip_value, chunks, start, stop):
    V, X, out = borrowed(V), borrowed(X), borrowed(out)
    n_rows, n_t, n_out, n_in = X.shape[0], X.shape[1], X.shape[3], out.shape[3]
    for task in range(start, stop):
        r0, j0 = (task // chunks) * ROWS, (task % chunks) * COLUMNS
        r1, j1 = min(n_rows, r0 + ROWS), min(n_in, j0 + COLUMNS)
        for t in range(n_t):
            k = 0
            while k < n_out:
                if k + BLOCK <= n_out:
                    v0, v1 = V[0, k, 0, j0:j1], V[0, k + 1, 0, j0:j1]
                    v2, v3 = V[0, k + 2, 0, j0:j1], V[0, k + 3, 0, j0:j1]
                    # K's zero (the skipped value) leaves max and min unchanged here
                    r = r0
                    while sr == VITERBI and r + 2 <= r1:  # two rows share each weight
                        xa, xb = X[r, t, 0], X[r + 1, t, 0]
                        rows_factored4x2(out[r, t, 0, j0:j1], out[r + 1, t, 0, j0:j1], v0, v1,
                                         v2, v3, xa[k], xa[k + 1], xa[k + 2], xa[k + 3], xb[k],
                                         xb[k + 1], xb[k + 2], xb[k + 3])
                        r += 2
                    for q in range(r, r1):
                        xr = X[q, t, 0]
                        row_factored4(out[q, t, 0, j0:j1], v0, v1, v2, v3, xr[k], xr[k + 1],
                                      xr[k + 2], xr[k + 3], sr)
                    k += BLOCK
                    continue
                vrow = V[0, k, 0, j0:j1]
                for r in range(r0, r1):
                    x = X[r, t, 0, k]
                    if x != skip_value:
                        row_factored(out[r, t, 0, j0:j1], vrow, x, sr)
                k += 1


def columns_absmax(S, VT, top) -> None:
    """A one-term dense op's ``top[r, k] = max(top, max_j |s(a)_rj v(w_jk)|)``, by sources.

    ``S (1, rows, 1, n_in)``, ``VT (n_in, n_out)``, ``top (rows, n_out) ≥ 0``: each non-zero
    source ``s_rj`` updates its row's chunk of outputs from the contiguous row ``v(w)_j·`` (a
    zero source's edges are ``|0| = 0``, never above ``top``), four sources at a time.
    """
    blocks, chunks = _tiles(S.shape[1], top.shape[1])
    over_rows(_absmax_tiles, blocks * chunks, S, VT, top, chunks)


@numba.njit(nogil=True, cache=True)
def _absmax_tiles(S, VT, top, chunks, start, stop):
    S, VT, top = borrowed(S), borrowed(VT), borrowed(top)
    n_rows, n_in, n_out = S.shape[1], S.shape[3], top.shape[1]
    for task in range(start, stop):
        r0, k0 = (task // chunks) * ROWS, (task % chunks) * COLUMNS
        r1, k1 = min(n_rows, r0 + ROWS), min(n_out, k0 + COLUMNS)
        j = 0
        while j < n_in:
            if j + BLOCK <= n_in:
                v0, v1, v2, v3 = VT[j, k0:k1], VT[j + 1, k0:k1], VT[j + 2, k0:k1], VT[j + 3, k0:k1]
                r = r0
                while r + 2 <= r1:
                    sa, sb = S[0, r, 0, j:j + BLOCK], S[0, r + 1, 0, j:j + BLOCK]
                    if _nonzero(sa) + _nonzero(sb) > BLOCK:  # two rows share each weight
                        rows_absmax4x2(top[r, k0:k1], top[r + 1, k0:k1], v0, v1, v2, v3, sa[0],
                                       sa[1], sa[2], sa[3], sb[0], sb[1], sb[2], sb[3])
                    else:
                        _absmax_sources(top[r, k0:k1], sa, v0, v1, v2, v3)
                        _absmax_sources(top[r + 1, k0:k1], sb, v0, v1, v2, v3)
                    r += 2
                for q in range(r, r1):
                    _absmax_sources(top[q, k0:k1], S[0, q, 0, j:j + BLOCK], v0, v1, v2, v3)
                j += BLOCK
                continue
            for r in range(r0, r1):
                s = S[0, r, 0, j]
                if s != 0.0:
                    row_absmax(top[r, k0:k1], VT[j, k0:k1], s)
            j += 1


@numba.njit(inline="always", cache=True)
def _nonzero(s) -> int:
    return (s[0] != 0.0) + (s[1] != 0.0) + (s[2] != 0.0) + (s[3] != 0.0)


@numba.njit(cache=True)
def _absmax_sources(trow, s, v0, v1, v2, v3):
    """``trow = max(trow, |s_q v_q|)`` for the four sources ``s`` (zero sources skipped: their
    edges are ``|0| = 0``, never above ``trow ≥ 0``)."""
    n = _nonzero(s)
    if n > 2:
        row_absmax4(trow, v0, v1, v2, v3, s[0], s[1], s[2], s[3])
        return
    if n == 0:
        return
    if s[0] != 0.0:
        row_absmax(trow, v0, s[0])
    if s[1] != 0.0:
        row_absmax(trow, v1, s[1])
    if s[2] != 0.0:
        row_absmax(trow, v2, s[2])
    if s[3] != 0.0:
        row_absmax(trow, v3, s[3])
