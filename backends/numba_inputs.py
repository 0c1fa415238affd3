r"""Boolean and Counting by input neurons: a zero source's edges are never read.

The kernel visits inputs, not outputs (no two tasks write the same neuron: no races, and the
sum of an input's contributions is formed in a register), reading each input's edges as a
contiguous row of output channels per kernel offset. With a threshold ``θ > 0`` a zero source
has ``r_jk = 0 < θ`` on every edge and is not read at all (after a ReLU, about half the inputs).

- Boolean: ⊕ = ∨ has ⊤ as its absorbing element, so an input is ⊤ as soon as one edge
  ``j → k`` has ``Θ(r_jk)`` true and ``R_k`` set; its edges are read in chunks of
  :data:`CHUNK`, stopping at the first chunk with an edge that holds.
- Counting (int64 or float64) and the real semiring with a threshold Θ:
  ``R_j = Σ_k Θ(r_jk) R_k``. Where the caller cannot bound an int64 sum below ``2**63``
  (``checked``), each addition is checked before it is formed, as in
  :func:`~provgraph.backends.numba_rows.row_integer`; otherwise the row is a branch-free sum.

Arrays (channels-last, spatial axes padded to three, as in
:mod:`~provgraph.backends.numba_window`): ``S (1, B, P_in, C_in)`` the one term's sources,
``VT (1, groups, K, C_in/groups, C_out/groups)`` its modified weights by rows of output channels,
``d, inv (B, P_out, C_out)``, ``R (B, T, P_out, C_out)`` (0/1), ``out (B, T, P_in, C_in)``.
Each edge is decided as the scatter kernels decide it: ``x = s·v·(1/d)`` against θ, and the exact
``r = s·v / d`` within :data:`~provgraph.backends.numba_algebra.GUARD` of θ.
"""

from __future__ import annotations

import numba

from provgraph.backends.numba_algebra import GUARD, ONE
from provgraph.backends.numba_rows import INT_MAX
from provgraph.backends.numba_threads import borrowed, over_rows

#: output channels decided together before the kernel checks for an edge that holds
CHUNK = 16


@numba.njit(inline="always", cache=True)
def reaching_output(i: int, p: int, q: int, dil: int, s: int, n_out: int) -> int:
    """The output position whose window reaches input ``i`` at offset ``q`` (−1: none)."""
    m = i + p - q * dil
    if m < 0 or m % s != 0:
        return -1
    o = m // s
    return o if o < n_out else -1


@numba.njit(cache=True)
def any_edge(vrow, sv, irow, drow, rrow, th, theta, tol) -> bool:
    """Whether one of the edges ``s·v_c / d_c`` (with ``R_c`` set) passes Θ."""
    n = vrow.shape[0]
    for c0 in range(0, n, CHUNK):
        c1 = min(n, c0 + CHUNK)
        hit, near = 0, 0
        if th == ONE:
            for c in range(c0, c1):
                hit |= rrow[c] != 0
        else:
            for c in range(c0, c1):
                x = sv * vrow[c] * irow[c]
                close = abs(x - theta) <= tol
                live = rrow[c] != 0
                hit |= live & (x >= theta) & (not close)
                near |= live & close
        if hit:
            return True
        if near:
            for c in range(c0, c1):
                x = sv * vrow[c] * irow[c]  # the exact r where d = 0 (1/d = 0: r = 0)
                r = sv * vrow[c] / drow[c] if drow[c] != 0.0 else x
                if rrow[c] != 0 and abs(x - theta) <= tol and r >= theta:
                    return True
    return False


@numba.njit(inline="always", cache=True)
def _held(x: float, theta: float, tol: float) -> bool:
    """``x ≥ θ`` and not within rounding of θ (those are decided by the exact ratio)."""
    return (x >= theta) & (abs(x - theta) > tol)


@numba.njit(cache=True)
def sum_held(acc, vrow, sv, irow, rrow, th, theta, tol):
    """``(acc + Σ R_c`` over the edges that hold and are not within rounding of θ, how many
    are within it``)``.

    Four partial sums, so that the loop vectorises without reassociating float64 additions
    (which the compiler may not do): a float64 sum of counts is exact below ``2**53`` and
    otherwise within rounding of the reference's order.
    """
    n = vrow.shape[0]
    near = 0
    a0, a1, a2, a3 = acc * 0, acc * 0, acc * 0, acc * 0
    m = n - n % 4
    if th == ONE:
        for c in range(0, m, 4):
            a0 += rrow[c]
            a1 += rrow[c + 1]
            a2 += rrow[c + 2]
            a3 += rrow[c + 3]
        for c in range(m, n):
            a0 += rrow[c]
        return acc + ((a0 + a1) + (a2 + a3)), near
    for c in range(n):
        near += abs(sv * vrow[c] * irow[c] - theta) <= tol
    for c in range(0, m, 4):
        a0 += rrow[c] * _held(sv * vrow[c] * irow[c], theta, tol)
        a1 += rrow[c + 1] * _held(sv * vrow[c + 1] * irow[c + 1], theta, tol)
        a2 += rrow[c + 2] * _held(sv * vrow[c + 2] * irow[c + 2], theta, tol)
        a3 += rrow[c + 3] * _held(sv * vrow[c + 3] * irow[c + 3], theta, tol)
    for c in range(m, n):
        a0 += rrow[c] * _held(sv * vrow[c] * irow[c], theta, tol)
    return acc + ((a0 + a1) + (a2 + a3)), near


@numba.njit(cache=True)
def count_edges(acc, vrow, sv, irow, drow, rrow, th, theta, tol, checked):
    """``(acc + Σ_c Θ(s·v_c / d_c) R_c, overflows)``."""
    n = vrow.shape[0]
    near, overflow = 0, 0
    if checked:
        for c in range(n):
            x = sv * vrow[c] * irow[c]
            close = abs(x - theta) <= tol
            near += close
            add = rrow[c] * ((th == ONE) | ((x >= theta) & (not close)))
            overflow += acc > INT_MAX - add
            acc += add
    else:
        acc, near = sum_held(acc, vrow, sv, irow, rrow, th, theta, tol)
    if near > 0 and th != ONE:
        for c in range(n):
            x = sv * vrow[c] * irow[c]
            r = sv * vrow[c] / drow[c] if drow[c] != 0.0 else x
            if abs(x - theta) <= tol and r >= theta:
                overflow += acc > INT_MAX - rrow[c]
                acc += rrow[c]
    return acc, overflow


def window_inputs(S, VT, d, inv, R, out, geo, boolean, th, theta, checked) -> bool:
    """``out[b, t, j] = ⊕_k Θ(r_jk) ⊗ R_k`` by input neurons, in parallel over input rows
    (:func:`~provgraph.backends.numba_threads.over_rows`).

    ``boolean``: Boolean (∨, ∧, the first edge that holds), else a sum (+, ×) in ``out``'s
    carrier (Counting in int64 or float64, the real semiring with a threshold Θ); returns whether
    an int64 sum overflowed (only computed when ``checked``).
    """
    n_rows = R.shape[0] * int(geo[0])
    return sum(over_rows(_inputs_rows, n_rows, S, VT, d, inv, R, out, geo, boolean, th, theta,
                         checked)) > 0


@numba.njit(nogil=True, cache=True)
def _inputs_rows(S, VT, d, inv, R, out, geo, boolean, th, theta, checked, start, stop):
    """:func:`window_inputs` for the rows ``start … stop`` of samples × ``i0``."""
    S, VT, d, inv, R, out = (
        borrowed(S), borrowed(VT), borrowed(d), borrowed(inv), borrowed(R), borrowed(out))
    in0, overflow = geo[0], 0
    for item in range(start, stop):
        overflow += _inputs_slab(S, VT, d, inv, R, out, geo, boolean, th, theta, checked,
                                 item // in0, item % in0)
    return overflow


@numba.njit(cache=True)
def _inputs_slab(S, VT, d, inv, R, out, geo, boolean, th, theta, checked, b, i0):
    """:func:`window_inputs` for the inputs ``(b, i0, ·, ·, ·)``; returns its overflows."""
    n_t, c_out, c_in = R.shape[1], R.shape[3], out.shape[3]
    in1, in2, out0, out1, out2 = geo[1], geo[2], geo[3], geo[4], geo[5]
    kk0, kk1, kk2, s0, s1, s2 = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    d0, d1, d2, p0, p1, p2, groups = (
        geo[12], geo[13], geo[14], geo[15], geo[16], geo[17], geo[18])
    cin_g, cout_g = c_in // groups, c_out // groups
    tol = GUARD * (abs(theta) + 1e-300)
    silent = th != ONE and theta > tol  # r = 0 on every edge of a zero source: none holds
    overflow = 0
    for i1 in range(in1):
        for i2 in range(in2):
            ip = (i0 * in1 + i1) * in2 + i2
            for cj in range(c_in):
                sv = S[0, b, ip, cj]
                if silent and sv == 0.0:
                    continue
                g, ci = cj // cin_g, cj % cin_g
                cb = g * cout_g
                for t in range(n_t):
                    found = False
                    acc = out[b, t, ip, cj]  # the blank: 0 in the carrier
                    for q0 in range(kk0):
                        o0 = reaching_output(i0, p0, q0, d0, s0, out0)
                        if o0 < 0:
                            continue
                        for q1 in range(kk1):
                            o1 = reaching_output(i1, p1, q1, d1, s1, out1)
                            if o1 < 0:
                                continue
                            for q2 in range(kk2):
                                o2 = reaching_output(i2, p2, q2, d2, s2, out2)
                                if o2 < 0:
                                    continue
                                o = (o0 * out1 + o1) * out2 + o2
                                kap = (q0 * kk1 + q1) * kk2 + q2
                                if not boolean:
                                    acc, over = count_edges(
                                        acc, VT[0, g, kap, ci], sv,
                                        inv[b, o, cb:cb + cout_g], d[b, o, cb:cb + cout_g],
                                        R[b, t, o, cb:cb + cout_g], th, theta, tol, checked)
                                    overflow += over
                                elif any_edge(VT[0, g, kap, ci], sv,
                                            inv[b, o, cb:cb + cout_g],
                                            d[b, o, cb:cb + cout_g],
                                            R[b, t, o, cb:cb + cout_g], th, theta, tol):
                                    found = True
                                    break
                            if found:
                                break
                        if found:
                            break
                    out[b, t, ip, cj] = found if boolean else acc
    return overflow

