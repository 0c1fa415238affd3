"""Rows of four output channels at once: ⊕ = max or min, and threshold sums.

A window kernel visits, for one output position and one kernel offset, the edges of each
output channel ``k`` into a contiguous row of input channels. Where ⊕ is max or min its result
does not depend on the order of the updates, so four channels that share an input row are
folded into it in one pass: the row and the sources are read and written once for four
channels' edges instead of once for each (the weights are read once either way). A threshold
sum adds the four channels' terms to each element in the order of the channels, as one channel
after the other would (only the few edges within rounding of θ, settled afterwards, are added
later). Every edge term is computed exactly as the one-channel rows of
:mod:`~provgraph.backends.numba_rows` compute it.
"""

from __future__ import annotations

import numba

from provgraph.backends.numba_algebra import GUARD, TROPICAL

#: output channels folded into an input row together
BLOCK = 4


@numba.njit(cache=True)
def row_viterbi4(orow, srow, v0, v1, v2, v3, i0, i1, i2, i3, r0, r1, r2, r3):
    """``orow = max(orow, s·v_k·(1/d_k)·R_k)`` for four channels ``k`` (Viterbi, Θ = id)."""
    for ci in range(orow.shape[0]):
        s, m = srow[ci], orow[ci]
        x = s * v0[ci] * i0 * r0
        m = x if x > m else m
        x = s * v1[ci] * i1 * r1
        m = x if x > m else m
        x = s * v2[ci] * i2 * r2
        m = x if x > m else m
        x = s * v3[ci] * i3 * r3
        orow[ci] = x if x > m else m


@numba.njit(cache=True)
def row_fuzzy4(orow, srow, v0, v1, v2, v3, i0, i1, i2, i3, r0, r1, r2, r3):
    """``orow = max(orow, min(s·v_k·(1/d_k), R_k))`` for four channels ``k`` (fuzzy, Θ = id)."""
    for ci in range(orow.shape[0]):
        s, m = srow[ci], orow[ci]
        x = s * v0[ci] * i0
        x = x if x < r0 else r0
        m = x if x > m else m
        x = s * v1[ci] * i1
        x = x if x < r1 else r1
        m = x if x > m else m
        x = s * v2[ci] * i2
        x = x if x < r2 else r2
        m = x if x > m else m
        x = s * v3[ci] * i3
        x = x if x < r3 else r3
        orow[ci] = x if x > m else m


@numba.njit(cache=True)
def row_factored4(orow, v0, v1, v2, v3, x0, x1, x2, x3, sr):
    """``orow ⊕= v_k ⊗ x_k`` for four channels: Viterbi (max, ×) or tropical (min, +)."""
    if sr == TROPICAL:
        for ci in range(orow.shape[0]):
            m = orow[ci]
            y = v0[ci] + x0
            m = y if y < m else m
            y = v1[ci] + x1
            m = y if y < m else m
            y = v2[ci] + x2
            m = y if y < m else m
            y = v3[ci] + x3
            orow[ci] = y if y < m else m
        return
    for ci in range(orow.shape[0]):
        m = orow[ci]
        y = v0[ci] * x0
        m = y if y > m else m
        y = v1[ci] * x1
        m = y if y > m else m
        y = v2[ci] * x2
        m = y if y > m else m
        y = v3[ci] * x3
        orow[ci] = y if y > m else m


@numba.njit(inline="always", cache=True)
def live_channels(values, skip, zero, live):
    """Write into ``live`` the channels whose value is not ``zero`` (all when not ``skip``);
    returns how many."""
    n = 0
    for c in range(values.shape[0]):
        if not skip or values[c] != zero:
            live[n] = c
            n += 1
    return n


@numba.njit(cache=True)
def row_absmax4(trow, v0, v1, v2, v3, s0, s1, s2, s3):
    """``trow = max(trow, |s_j · v_j|)`` over a row of output channels, for four sources ``j``."""
    for c in range(trow.shape[0]):
        m = trow[c]
        a = abs(s0 * v0[c])
        m = a if a > m else m
        a = abs(s1 * v1[c])
        m = a if a > m else m
        a = abs(s2 * v2[c])
        m = a if a > m else m
        a = abs(s3 * v3[c])
        trow[c] = a if a > m else m


@numba.njit(cache=True)
def row_threshold_sum4(orow, srow, v0, v1, v2, v3, i0, i1, i2, i3, r0, r1, r2, r3, theta):
    """``orow += R_k`` where ``s·v_k·(1/d_k)`` lies above the band of rounding around θ, for
    four channels; returns whether an edge came near the band (then settled by
    :func:`~provgraph.backends.numba_rows.row_near_threshold`, as
    :func:`~provgraph.backends.numba_rows.row_threshold_sum` does)."""
    tol = GUARD * (abs(theta) + 1e-300)
    hi, wide, near = theta + tol, 2.0 * tol, 0
    for ci in range(orow.shape[0]):
        s, acc = srow[ci], orow[ci]
        x0, x1, x2, x3 = s * v0[ci] * i0, s * v1[ci] * i1, s * v2[ci] * i2, s * v3[ci] * i3
        near += ((abs(x0 - theta) <= wide) + (abs(x1 - theta) <= wide)
                 + (abs(x2 - theta) <= wide) + (abs(x3 - theta) <= wide))
        acc += r0 if x0 > hi else 0.0
        acc += r1 if x1 > hi else 0.0
        acc += r2 if x2 > hi else 0.0
        orow[ci] = acc + (r3 if x3 > hi else 0.0)
    return near > 0


@numba.njit(cache=True)
def rows_factored4x2(oa, ob, v0, v1, v2, v3, a0, a1, a2, a3, b0, b1, b2, b3):
    """:func:`row_factored4` (Viterbi: max, ×) for two rows that share the weight rows: each
    weight is read once for both."""
    for ci in range(oa.shape[0]):
        w0, w1, w2, w3 = v0[ci], v1[ci], v2[ci], v3[ci]
        m = oa[ci]
        y = w0 * a0
        m = y if y > m else m
        y = w1 * a1
        m = y if y > m else m
        y = w2 * a2
        m = y if y > m else m
        y = w3 * a3
        oa[ci] = y if y > m else m
        m = ob[ci]
        y = w0 * b0
        m = y if y > m else m
        y = w1 * b1
        m = y if y > m else m
        y = w2 * b2
        m = y if y > m else m
        y = w3 * b3
        ob[ci] = y if y > m else m


@numba.njit(cache=True)
def rows_absmax4x2(ta, tb, v0, v1, v2, v3, a0, a1, a2, a3, b0, b1, b2, b3):
    """:func:`row_absmax4` for two rows of outputs that share the weight rows."""
    for c in range(ta.shape[0]):
        w0, w1, w2, w3 = v0[c], v1[c], v2[c], v3[c]
        m = ta[c]
        x = abs(a0 * w0)
        m = x if x > m else m
        x = abs(a1 * w1)
        m = x if x > m else m
        x = abs(a2 * w2)
        m = x if x > m else m
        x = abs(a3 * w3)
        ta[c] = x if x > m else m
        m = tb[c]
        x = abs(b0 * w0)
        m = x if x > m else m
        x = abs(b1 * w1)
        m = x if x > m else m
        x = abs(b2 * w2)
        m = x if x > m else m
        x = abs(b3 * w3)
        tb[c] = x if x > m else m


@numba.njit(cache=True)
def rows_fuzzy4x2(oa, ob, sa, sb, v0, v1, v2, v3, ia, ib, ra, rb):
    """:func:`row_fuzzy4` for two rows that share the weight rows; ``ia, ib, ra, rb``: the
    four channels' ``1/d`` and ``R`` of each row."""
    ia0, ia1, ia2, ia3 = ia[0], ia[1], ia[2], ia[3]
    ib0, ib1, ib2, ib3 = ib[0], ib[1], ib[2], ib[3]
    ra0, ra1, ra2, ra3 = ra[0], ra[1], ra[2], ra[3]
    rb0, rb1, rb2, rb3 = rb[0], rb[1], rb[2], rb[3]
    for ci in range(oa.shape[0]):
        w0, w1, w2, w3 = v0[ci], v1[ci], v2[ci], v3[ci]
        s, m = sa[ci], oa[ci]
        x = s * w0 * ia0
        x = x if x < ra0 else ra0
        m = x if x > m else m
        x = s * w1 * ia1
        x = x if x < ra1 else ra1
        m = x if x > m else m
        x = s * w2 * ia2
        x = x if x < ra2 else ra2
        m = x if x > m else m
        x = s * w3 * ia3
        x = x if x < ra3 else ra3
        oa[ci] = x if x > m else m
        s, m = sb[ci], ob[ci]
        x = s * w0 * ib0
        x = x if x < rb0 else rb0
        m = x if x > m else m
        x = s * w1 * ib1
        x = x if x < rb1 else rb1
        m = x if x > m else m
        x = s * w2 * ib2
        x = x if x < rb2 else rb2
        m = x if x > m else m
        x = s * w3 * ib3
        x = x if x < rb3 else rb3
        ob[ci] = x if x > m else m
