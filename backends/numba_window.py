r"""Fused numba kernels of the sliding-window linear ops (Conv 1-D/2-D/3-D, AveragePool,
GlobalAveragePool): stride, dilation, groups and padding, channels-last, never an edge list.

Arrays are channels-last with the spatial axes flattened (positions ``P``) after being padded on
the right to three axes (a 1-D op is ``(W, 1, 1)``, a 2-D op ``(H, W, 1)``):

- ``S (n_terms, B, P_in, C_in)``: the rule's sources ``s_t(a)``;
- ``V (n_terms, C_out, K, C_in/groups)``: the modified weights ``v_t(w)`` (K: kernel offsets),
  or for pooling (``pooled``) ``Vpos (n_terms, P_out)``: ``v_t(1/n_o)`` per output position;
- ``d, inv (B, P_out, C_out)``: the denominator and ``1/d`` (0 where ``d = 0``);
- ``R (B, T, P_out, C_out)`` the output's relevance, ``out (B, T, P_in, C_in)`` the input's.

The edge ``j → k`` joins input ``(o·s − p + κ·dil, c_in)`` to output ``(o, c_out)``; an input
position outside the input (padding) has no edge. The kernels scatter from every output ``k``
whose relevance is not K's zero (it would contribute nothing: sparsity), so ``r_jk`` and
``Θ(r_jk)`` exist only in registers:

.. math::

    R_{in}[j] \mathrel{⊕}= Θ(r_{jk}) ⊗ R_k, \qquad
    r_{jk} = \frac{\sum_t s_t(a)_j\, v_t(w_{jk})}{d_k}.

Where ⊕ is max or min (Viterbi, fuzzy, the factored Viterbi and tropical steps, the max-norm
denominators) four output channels, or four sources, share each pass over an input row
(:mod:`~provgraph.backends.numba_blocks`). Output rows are cut into blocks tall enough that two
blocks apart never write the same input row; even blocks run in parallel, then odd ones (no
races, no atomics), each from the thread pool of
:func:`~provgraph.backends.numba_threads.over_rows` (no parfors to compile). A dense op runs
in tiles instead (:mod:`~provgraph.backends.numba_dense`).
"""

from __future__ import annotations

import numba
import numpy as np

from provgraph.backends.numba_algebra import FUZZY, IDENTITY, VITERBI
from provgraph.backends.numba_blocks import (
    BLOCK,
    live_channels,
    row_absmax4,
    row_factored4,
    row_fuzzy4,
    row_viterbi4,
)
from provgraph.backends.numba_rows import (
    numerator,
    row_absmax,
    row_factored,
    row_float,
    row_integer,
)
from provgraph.backends.numba_threads import borrowed, over_rows


def geometry(
    in_sp: tuple[int, ...], out_sp: tuple[int, ...], kernel: tuple[int, ...],
    strides: tuple[int, ...], dilations: tuple[int, ...], pad_begin: tuple[int, ...],
    groups: int,
) -> np.ndarray:
    """The int64 geometry vector the kernels read (spatial axes padded to three)."""
    def three(v: tuple[int, ...], fill: int) -> list[int]:
        return list(v) + [fill] * (3 - len(v))

    k0, s0, d0 = (kernel + (1,))[0], (strides + (1,))[0], (dilations + (1,))[0]
    block = max(1, -(-((k0 - 1) * d0) // s0))
    return np.array(
        three(in_sp, 1) + three(out_sp, 1) + three(kernel, 1) + three(strides, 1)
        + three(dilations, 1) + three(pad_begin, 0) + [groups, block],
        dtype=np.int64,
    )


def _phases(geo: np.ndarray) -> list[tuple[int, int]]:
    """``(phase, n_ph)``: the even blocks of output rows, then the odd ones (``n_ph`` each)."""
    hb = int(geo[19])
    n_blocks = (int(geo[3]) + hb - 1) // hb
    return [(phase, (n_blocks - phase + 1) // 2) for phase in range(2)]


def window_float(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero, one, skip):
    """General float kernel: ⊕, ⊗ and Θ by code (see :mod:`numba_algebra`)."""
    for phase, n_ph in _phases(geo):
        over_rows(_float_rows, R.shape[0] * n_ph, S, V, Vpos, pooled, d, inv, R, out, geo, sr,
                  th, theta, zero, one, skip, phase, n_ph)


@numba.njit(nogil=True, cache=True)
def _float_rows(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero, one, skip,
                phase, n_ph, start, stop):
    S, V, Vpos, d, inv, R, out = (
        borrowed(S), borrowed(V), borrowed(Vpos), borrowed(d), borrowed(inv), borrowed(R),
        borrowed(out))
    for item in range(start, stop):
        _float_block(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero, one, skip,
                     item // n_ph, phase + 2 * (item % n_ph))


@numba.njit(inline="always", cache=True)
def window_taps(geo, o0, o1, o2, ips, kaps):
    """The edges of output position ``(o0, o1, o2)``: input positions ``ips[:n]`` and kernel
    offsets ``kaps[:n]`` (padding has none); returns ``n``."""
    in0, in1, in2 = geo[0], geo[1], geo[2]
    kk0, kk1, kk2, s0, s1, s2 = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    d0, d1, d2, p0, p1, p2 = geo[12], geo[13], geo[14], geo[15], geo[16], geo[17]
    n = 0
    for q0 in range(kk0):
        i0 = o0 * s0 - p0 + q0 * d0
        if i0 < 0 or i0 >= in0:
            continue
        for q1 in range(kk1):
            i1 = o1 * s1 - p1 + q1 * d1
            if i1 < 0 or i1 >= in1:
                continue
            for q2 in range(kk2):
                i2 = o2 * s2 - p2 + q2 * d2
                if i2 < 0 or i2 >= in2:
                    continue
                ips[n] = (i0 * in1 + i1) * in2 + i2
                kaps[n] = (q0 * kk1 + q1) * kk2 + q2
                n += 1
    return n


@numba.njit(cache=True)
def _float_block(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero, one, skip, b,
                 blk):
    out0, out1, out2, hb = geo[3], geo[4], geo[5], geo[19]
    n_k = geo[6] * geo[7] * geo[8]
    ips, kaps = np.empty(n_k, dtype=np.int64), np.empty(n_k, dtype=np.int64)
    live = np.empty(R.shape[3], dtype=np.int64)
    for t in range(R.shape[1]):
        for o0 in range(blk * hb, min(out0, (blk + 1) * hb)):
            for o1 in range(out1):
                for o2 in range(out2):
                    o = (o0 * out1 + o1) * out2 + o2
                    n_taps = window_taps(geo, o0, o1, o2, ips, kaps)
                    n_live = live_channels(R[b, t, o], skip, zero, live)
                    _float_position(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero,
                                    one, b, t, o, ips[:n_taps], kaps[:n_taps], live[:n_live])


@numba.njit(cache=True)
def _float_position(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, zero, one, b, t, o,
                    ips, kaps, live):
    """Every edge of output position ``o`` from the channels ``live``."""
    groups = geo[18]
    cin_g, cout_g = out.shape[3] // groups, R.shape[3] // groups
    fast = S.shape[0] == 1 and not pooled
    blocked = fast and th == IDENTITY and (sr == FUZZY or sr == VITERBI)
    ir, rr = inv[b, o], R[b, t, o]
    i, n_live = 0, live.shape[0]
    while i < n_live:
        co = live[i]
        cb = (co // cout_g) * cin_g
        if blocked and i + BLOCK <= n_live and live[i + BLOCK - 1] // cout_g == co // cout_g:
            c1, c2, c3 = live[i + 1], live[i + 2], live[i + 3]
            for tap in range(ips.shape[0]):
                ip, kap = ips[tap], kaps[tap]
                orow, srow = out[b, t, ip, cb:cb + cin_g], S[0, b, ip, cb:cb + cin_g]
                v0, v1, v2, v3 = V[0, co, kap], V[0, c1, kap], V[0, c2, kap], V[0, c3, kap]
                if sr == FUZZY:
                    row_fuzzy4(orow, srow, v0, v1, v2, v3, ir[co], ir[c1], ir[c2], ir[c3],
                               rr[co], rr[c1], rr[c2], rr[c3])
                else:
                    row_viterbi4(orow, srow, v0, v1, v2, v3, ir[co], ir[c1], ir[c2], ir[c3],
                                 rr[co], rr[c1], rr[c2], rr[c3])
            i += BLOCK
            continue
        for tap in range(ips.shape[0]):
            ip, kap = ips[tap], kaps[tap]
            vrow = V[0, co, kap] if fast else V[0, 0, 0]
            row_float(out[b, t, ip, cb:cb + cin_g], S[0, b, ip, cb:cb + cin_g], vrow, S, V, Vpos,
                      pooled, fast, b, ip, cb, co, kap, o, d[b, o, co], ir[co], rr[co], sr, th,
                      theta, zero, one)
        i += 1


def window_integer(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta) -> bool:
    """Counting (exact int64, returns whether a sum overflowed) and Boolean (0/1)."""
    overflow = 0
    for phase, n_ph in _phases(geo):
        overflow += sum(over_rows(_integer_rows, R.shape[0] * n_ph, S, V, Vpos, pooled, d, inv,
                                  R, out, geo, sr, th, theta, phase, n_ph))
    return overflow > 0


@numba.njit(nogil=True, cache=True)
def _integer_rows(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, phase, n_ph, start,
                  stop):
    S, V, Vpos, d, inv, R, out = (
        borrowed(S), borrowed(V), borrowed(Vpos), borrowed(d), borrowed(inv), borrowed(R),
        borrowed(out))
    overflow = 0
    for item in range(start, stop):
        overflow += _integer_block(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta,
                                   item // n_ph, phase + 2 * (item % n_ph))
    return overflow


@numba.njit(cache=True)
def _integer_block(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta, b, blk):
    n_t, c_out = R.shape[1], R.shape[3]
    out0, out1, out2, groups, hb = geo[3], geo[4], geo[5], geo[18], geo[19]
    cin_g, cout_g = out.shape[3] // groups, c_out // groups
    fast = S.shape[0] == 1 and not pooled
    n_k = geo[6] * geo[7] * geo[8]
    ips, kaps = np.empty(n_k, dtype=np.int64), np.empty(n_k, dtype=np.int64)
    overflow = 0
    for t in range(n_t):
        for o0 in range(blk * hb, min(out0, (blk + 1) * hb)):
            for o1 in range(out1):
                for o2 in range(out2):
                    o = (o0 * out1 + o1) * out2 + o2
                    n_taps = window_taps(geo, o0, o1, o2, ips, kaps)
                    for co in range(c_out):
                        rk = R[b, t, o, co]
                        if rk == 0:
                            continue
                        dk, ik = d[b, o, co], inv[b, o, co]
                        cb = (co // cout_g) * cin_g
                        for tap in range(n_taps):
                            ip, kap = ips[tap], kaps[tap]
                            vrow = V[0, co, kap] if fast else V[0, 0, 0]
                            overflow += row_integer(
                                out[b, t, ip, cb:cb + cin_g], S[0, b, ip, cb:cb + cin_g], vrow,
                                S, V, Vpos, pooled, fast, b, ip, cb, co, kap, o, dk, ik, rk, sr,
                                th, theta)
    return overflow


def window_factored(V, Vpos, pooled, tk, out, geo, sr, skip_value):
    """The inner ⊕ of a factored step: ``out[j] ⊕= v_jk ⊗ t_k`` (``skip_value``: K's zero).

    Viterbi, Θ = identity: ``t = R/d``, ⊗ = ×, ⊕ = max; tropical, Θ = −log:
    ``v = −log |v(w)|``, ``t = log d + R``, ⊗ = +, ⊕ = min. The caller ⊗-multiplies the source
    factor (``s_j``, or ``−log s_j``) afterwards.
    """
    for phase, n_ph in _phases(geo):
        over_rows(_factored_rows, tk.shape[0] * n_ph, V, Vpos, pooled, tk, out, geo, sr,
                  skip_value, phase, n_ph)


@numba.njit(nogil=True, cache=True)
def _factored_rows(V, Vpos, pooled, tk, out, geo, sr, skip_value, phase, n_ph, start, stop):
    V, Vpos, tk, out = borrowed(V), borrowed(Vpos), borrowed(tk), borrowed(out)
    for item in range(start, stop):
        _factored_block(V, Vpos, pooled, tk, out, geo, sr, skip_value, item // n_ph,
                        phase + 2 * (item % n_ph))


@numba.njit(cache=True)
def _factored_block(V, Vpos, pooled, tk, out, geo, sr, skip_value, b, blk):
    n_t, c_out = tk.shape[1], tk.shape[3]
    out0, out1, out2, groups, hb = geo[3], geo[4], geo[5], geo[18], geo[19]
    cin_g, cout_g = out.shape[3] // groups, c_out // groups
    n_k = geo[6] * geo[7] * geo[8]
    ips, kaps = np.empty(n_k, dtype=np.int64), np.empty(n_k, dtype=np.int64)
    live = np.empty(c_out, dtype=np.int64)
    for t in range(n_t):
        for o0 in range(blk * hb, min(out0, (blk + 1) * hb)):
            for o1 in range(out1):
                for o2 in range(out2):
                    o = (o0 * out1 + o1) * out2 + o2
                    n_taps = window_taps(geo, o0, o1, o2, ips, kaps)
                    n_live = live_channels(tk[b, t, o], True, skip_value, live)
                    i = 0
                    while i < n_live:
                        co = live[i]
                        cb = (co // cout_g) * cin_g
                        if (not pooled and i + BLOCK <= n_live
                                and live[i + BLOCK - 1] // cout_g == co // cout_g):
                            c1, c2, c3 = live[i + 1], live[i + 2], live[i + 3]
                            tr = tk[b, t, o]
                            x0, x1, x2, x3 = tr[co], tr[c1], tr[c2], tr[c3]
                            for tap in range(n_taps):
                                kap = kaps[tap]
                                row_factored4(out[b, t, ips[tap], cb:cb + cin_g], V[0, co, kap],
                                              V[0, c1, kap], V[0, c2, kap], V[0, c3, kap], x0,
                                              x1, x2, x3, sr)
                            i += BLOCK
                            continue
                        x = tk[b, t, o, co]
                        for tap in range(n_taps):
                            orow = out[b, t, ips[tap], cb:cb + cin_g]
                            if pooled:
                                row_factored(orow, Vpos[0, o:o + 1], x, sr)
                            else:
                                row_factored(orow, V[0, co, kaps[tap]], x, sr)
                        i += 1


def window_absmax(S, V, VT, Vpos, pooled, top, geo):
    """``top[b, o, c_out] = max(top, max_j |Σ_t s_t(a)_j v_t(w_jk)|)`` (max-norm denominators).

    One term on a convolution: ``VT (G, K, C_in/groups, C_out/groups)``, the rows of output
    channels updated from every non-zero source; otherwise the numerator term by term. In
    parallel over samples × rows of outputs (each writes its own outputs only).
    """
    over_rows(_absmax_rows, top.shape[0] * int(geo[3]), S, V, VT, Vpos, pooled, top, geo)


@numba.njit(nogil=True, cache=True)
def _absmax_rows(S, V, VT, Vpos, pooled, top, geo, start, stop):
    S, V, VT, Vpos, top = borrowed(S), borrowed(V), borrowed(VT), borrowed(Vpos), borrowed(top)
    out0 = geo[3]
    for item in range(start, stop):
        _absmax_row(S, V, VT, Vpos, pooled, top, geo, item // out0, item % out0)


@numba.njit(cache=True)
def _absmax_row(S, V, VT, Vpos, pooled, top, geo, b, o0):
    out1, out2, groups = geo[4], geo[5], geo[18]
    cin_g, cout_g = S.shape[3] // groups, top.shape[2] // groups
    fast = S.shape[0] == 1 and not pooled
    n_k = geo[6] * geo[7] * geo[8]
    ips, kaps = np.empty(n_k, dtype=np.int64), np.empty(n_k, dtype=np.int64)
    live = np.empty(cin_g, dtype=np.int64)
    for o1 in range(out1):
        for o2 in range(out2):
            o = (o0 * out1 + o1) * out2 + o2
            for tap in range(window_taps(geo, o0, o1, o2, ips, kaps)):
                ip, kap = ips[tap], kaps[tap]
                for g in range(groups):
                    trow = top[b, o, g * cout_g:(g + 1) * cout_g]
                    if fast:
                        srow, vt = S[0, b, ip, g * cin_g:(g + 1) * cin_g], VT[0, g, kap]
                        n_live = live_channels(srow, True, 0.0, live)
                        _absmax_live(trow, srow, vt, live[:n_live])
                        continue
                    for ci in range(cin_g):
                        for cg in range(cout_g):
                            a = abs(numerator(S, V, Vpos, pooled, b, ip, g * cin_g + ci,
                                              g * cout_g + cg, kap, ci, o))
                            trow[cg] = a if a > trow[cg] else trow[cg]


@numba.njit(cache=True)
def _absmax_live(trow, srow, vt, live):
    """``trow = max(trow, |s_j v_j·|)`` over the non-zero sources ``live`` (four at a time)."""
    i, n = 0, live.shape[0]
    while i + BLOCK <= n:
        j0, j1, j2, j3 = live[i], live[i + 1], live[i + 2], live[i + 3]
        row_absmax4(trow, vt[j0], vt[j1], vt[j2], vt[j3], srow[j0], srow[j1], srow[j2],
                    srow[j3])
        i += BLOCK
    while i < n:
        row_absmax(trow, vt[live[i]], srow[live[i]])
        i += 1


def rows_absmax(S, V, top):
    """A dense op's ``top[b, k] = max(top, max_j |Σ_t s_t(a)_j v_t(w_jk)|)``.

    ``S (n_terms, B, 1, n_in)``, ``V (n_terms, n_out, 1, n_in)``, ``top (B, n_out)``: each output
    reads its own row of weights (how a ``Gemm`` stores them), in parallel over outputs.
    """
    over_rows(_rows_absmax, top.shape[0] * V.shape[1], S, V, top)


@numba.njit(nogil=True, cache=True)
def _rows_absmax(S, V, top, start, stop):
    S, V, top = borrowed(S), borrowed(V), borrowed(top)
    n_terms, n_in, n_out = S.shape[0], S.shape[3], V.shape[1]
    for item in range(start, stop):
        b, k = item // n_out, item % n_out
        m = top[b, k]
        for j in range(n_in):
            num = 0.0
            for t in range(n_terms):
                num += S[t, b, 0, j] * V[t, k, 0, j]
            a = abs(num)
            m = a if a > m else m
        top[b, k] = m
