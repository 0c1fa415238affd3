"""The innermost loops of the window kernels: one output neuron's edges into one input row.

For an output ``k`` (denominator ``d_k``, ``1/d_k``, relevance ``R_k``) and one kernel offset,
the edges reach a contiguous row of input channels. Each function ⊕-updates that row
(``orow``) with ``Θ(r_jk) ⊗ R_k``. The common case, a one-term rule on a convolution, runs a
branch-free loop per (semiring, Θ) that LLVM vectorises; other cases (several terms, pooling)
evaluate the numerator term by term.

A threshold Θ is decided on ``x = s·v·(1/d)``; where ``x`` lies within rounding of θ the edge is
left out of the vector loop and decided afterwards by the exact ``r = s·v / d``.
"""

from __future__ import annotations

import math

import numba

from provgraph.backends.numba_algebra import (
    BOOL,
    FUZZY,
    GUARD,
    IDENTITY,
    ONE,
    REAL,
    THRESHOLD,
    TROPICAL,
    VITERBI,
)

#: the largest count int64 holds; a sum is checked against it before it is formed (signed
#: overflow is undefined for the compiler, so a wrapped result cannot be tested afterwards)
INT_MAX = 2**63 - 1


@numba.njit(inline="always", cache=True)
def edge_ratio(num: float, dk: float, inv: float, th: int, theta: float) -> float:
    """``r = num / d`` (``0`` where ``d = 0``), exact near a threshold."""
    r = num * inv
    if th == THRESHOLD and dk != 0.0 and abs(r - theta) <= GUARD * (abs(theta) + 1e-300):
        r = num / dk
    return r


@numba.njit(inline="always", cache=True)
def exact_ratio(num: float, dk: float, x: float) -> float:
    """``r = num / d``; where ``d = 0`` it is ``x = num · 0``, the reference's ``r = 0``."""
    return num / dk if dk != 0.0 else x


@numba.njit(inline="always", cache=True)
def present(th: int, theta: float, r: float) -> bool:
    """Whether Θ maps ``r`` to K's one (threshold or constant one)."""
    return th == ONE or r >= theta


@numba.njit(inline="always", cache=True)
def theta_value(th: int, theta: float, r: float, zero: float, one: float) -> float:
    """``Θ(r)`` in a float carrier."""
    if th == IDENTITY:
        return r
    if th == THRESHOLD:
        return one if r >= theta else zero
    if th == ONE:
        return one
    return -math.log(r) if r > 0.0 else math.inf


@numba.njit(inline="always", cache=True)
def times(sr: int, a: float, b: float) -> float:
    """``a ⊗ b`` of a float semiring."""
    if sr == TROPICAL:
        return a + b
    if sr == FUZZY:
        return min(a, b)
    return a * b


@numba.njit(inline="always", cache=True)
def plus(sr: int, a: float, b: float) -> float:
    """``a ⊕ b`` of a float semiring."""
    if sr == REAL:
        return a + b
    if sr == TROPICAL:
        return min(a, b)
    return max(a, b)


@numba.njit(inline="always", cache=True)
def numerator(S, V, Vpos, pooled, b, ip, c, co, kap, ci, o):
    """``Σ_t s_t(a)_j v_t(w_jk)`` in the order of the reference."""
    num = 0.0
    for t in range(S.shape[0]):
        v = Vpos[t, o] if pooled else V[t, co, kap, ci]
        num += S[t, b, ip, c] * v
    return num


@numba.njit(cache=True)
def row_integer(orow, srow, vrow, S, V, Vpos, pooled, fast, b, ip, cb, co, kap, o, dk, ik, rk,
                sr, th, theta):
    """Counting (``orow += R_k`` where Θ holds) or Boolean (``orow = 1``); returns overflows."""
    overflow = 0
    n = orow.shape[0]
    if not fast:
        for ci in range(n):
            num = numerator(S, V, Vpos, pooled, b, ip, cb + ci, co, kap, ci, o)
            if present(th, theta, edge_ratio(num, dk, ik, th, theta)):
                if sr == BOOL:
                    orow[ci] = 1
                else:
                    overflow += orow[ci] > INT_MAX - rk
                    orow[ci] += rk
        return overflow
    if th == ONE:
        if sr == BOOL:
            for ci in range(n):
                orow[ci] = 1
        else:
            for ci in range(n):
                overflow += orow[ci] > INT_MAX - rk
                orow[ci] += rk
        return overflow
    tol = GUARD * (abs(theta) + 1e-300)
    near = 0
    if sr == BOOL:
        for ci in range(n):
            x = srow[ci] * vrow[ci] * ik
            close = abs(x - theta) <= tol
            near += close
            orow[ci] |= (x >= theta) & (not close)
    else:
        for ci in range(n):
            x = srow[ci] * vrow[ci] * ik
            close = abs(x - theta) <= tol
            near += close
            add = rk * ((x >= theta) & (not close))
            overflow += orow[ci] > INT_MAX - add
            orow[ci] += add
    if near > 0:
        for ci in range(n):
            x = srow[ci] * vrow[ci] * ik
            if abs(x - theta) <= tol and exact_ratio(srow[ci] * vrow[ci], dk, x) >= theta:
                if sr == BOOL:
                    orow[ci] = 1
                else:
                    overflow += orow[ci] > INT_MAX - rk
                    orow[ci] += rk
    return overflow


@numba.njit(cache=True)
def row_float(orow, srow, vrow, S, V, Vpos, pooled, fast, b, ip, cb, co, kap, o, dk, ik, rk,
              sr, th, theta, zero, one):
    """``orow ⊕= Θ(r) ⊗ R_k`` for the float semirings."""
    n = orow.shape[0]
    if fast and th == IDENTITY:
        if sr == VITERBI:
            for ci in range(n):
                x = srow[ci] * vrow[ci] * ik * rk
                orow[ci] = x if x > orow[ci] else orow[ci]
        elif sr == FUZZY:
            for ci in range(n):
                x = srow[ci] * vrow[ci] * ik
                x = x if x < rk else rk
                orow[ci] = x if x > orow[ci] else orow[ci]
        elif sr == REAL:
            for ci in range(n):
                orow[ci] += srow[ci] * vrow[ci] * ik * rk
        else:
            for ci in range(n):
                x = srow[ci] * vrow[ci] * ik + rk
                orow[ci] = x if x < orow[ci] else orow[ci]
        return
    if fast and th == THRESHOLD and sr == REAL:
        row_threshold_sum(orow, srow, vrow, dk, ik, rk, theta)
        return
    for ci in range(n):
        if fast:
            num = srow[ci] * vrow[ci]
        else:
            num = numerator(S, V, Vpos, pooled, b, ip, cb + ci, co, kap, ci, o)
        e = theta_value(th, theta, edge_ratio(num, dk, ik, th, theta), zero, one)
        orow[ci] = plus(sr, orow[ci], times(sr, e, rk))


@numba.njit(cache=True)
def row_factored(orow, vrow, x, sr):
    """``orow ⊕= v ⊗ x``: Viterbi (max, ×) or tropical (min, +)."""
    n = orow.shape[0]
    if sr == TROPICAL:
        for ci in range(n):
            y = vrow[ci] + x
            orow[ci] = y if y < orow[ci] else orow[ci]
    else:
        for ci in range(n):
            y = vrow[ci] * x
            orow[ci] = y if y > orow[ci] else orow[ci]


@numba.njit(cache=True)
def row_absmax(trow, vrow, s):
    """``trow = max(trow, |s · v|)`` over a row of output channels."""
    for c in range(trow.shape[0]):
        a = abs(s * vrow[c])
        trow[c] = a if a > trow[c] else trow[c]


@numba.njit(cache=True)
def row_threshold_sum(orow, srow, vrow, dk, ik, rk, theta):
    """Counting in float64 (⊕ = +, Θ a threshold): ``orow += R_k`` where ``r ≥ θ``.

    A branch-free loop adds ``R_k`` where ``x = s·v·(1/d)`` lies above the band
    ``[θ − tol, θ + tol]`` of rounding around θ and counts the ``x`` near it (within ``2 tol``,
    a margin over the band's own rounding); only then are the band's edges decided afterwards
    by the exact ``r = s·v / d``.
    """
    n = orow.shape[0]
    tol = GUARD * (abs(theta) + 1e-300)
    hi, wide, near = theta + tol, 2.0 * tol, 0
    for ci in range(n):
        x = srow[ci] * vrow[ci] * ik
        near += abs(x - theta) <= wide
        orow[ci] += rk if x > hi else 0.0
    if near > 0:
        row_near_threshold(orow, srow, vrow, dk, ik, rk, theta)


@numba.njit(cache=True)
def row_near_threshold(orow, srow, vrow, dk, ik, rk, theta):
    """``orow += R_k`` on the edges in the band ``θ − tol ≤ x ≤ θ + tol`` (left out by
    :func:`row_threshold_sum`) whose exact ``r = s·v / d ≥ θ``."""
    tol = GUARD * (abs(theta) + 1e-300)
    lo, hi = theta - tol, theta + tol
    for ci in range(orow.shape[0]):
        x = srow[ci] * vrow[ci] * ik
        if lo <= x <= hi and exact_ratio(srow[ci] * vrow[ci], dk, x) >= theta:
            orow[ci] += rk
