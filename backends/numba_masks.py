r"""Threshold sums over a convolution as transposed convolutions of sign masks.

Counting (and the real semiring with a threshold Θ, for relevance ``≥ 0``) sums
``R_in[j] = Σ_k [r_jk ≥ θ] R_k`` with ``r_jk = s_j v_jk / d_k`` and ``θ > 0``. Away from θ the
condition is one of signs, ``r_jk > 0`` iff ``sign(s_j) sign(v_jk) sign(d_k) > 0``, so

.. math::

    G_j = [s_j > 0]\,\big(\mathrm{conv}^T(R^+, [v > 0]) + \mathrm{conv}^T(R^-, [v < 0])\big)_j
        + [s_j < 0]\,\big(\mathrm{conv}^T(R^+, [v < 0]) + \mathrm{conv}^T(R^-, [v > 0])\big)_j

with ``R⁺ = R·[d > 0]``, ``R⁻ = R·[d < 0]``: float64 matrix products, exact for integer counts
whose sums stay below ``2**53`` (every partial sum is an integer there, whatever the order).
Larger int64 counts are cut into limbs of ``53 − bits(fan)`` bits, each summed exactly, and
joined in int64 with an overflow check.

``G`` also counts the edges with ``0 < r_jk < θ`` (and decides those within rounding of θ by
sign alone). They are found without visiting every edge: ``|r_jk| ≥ |s_j| |v_jk| m`` with ``m``
the least ``|1/d_k|`` over the outputs that carry relevance, so only the weights
``|v_jk| < τ_j = θ(1 + δ) / (|s_j| m)`` can fail. Each input channel keeps its smallest weights
sorted (:func:`~provgraph.backends.numba_weights.small_weights`, cached on the op). An input
whose ``τ_j`` lies within that list checks its prefix: each edge is decided as the scatter
kernels decide it (``x = s·v·(1/d)`` against θ, the exact ``s·v / d`` within
:data:`~provgraph.backends.numba_algebra.GUARD` of θ) and the failed edges' ``R_k`` are taken
off ``G_j``. An input with a larger ``τ_j`` (a tiny ``s_j``), or whose float64 sum would lose
more than half to that subtraction, is summed edge by edge instead.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from provgraph.algebra.counting_carriers import CountOverflowError
from provgraph.backends.numba_algebra import (
    COUNT,
    GUARD,
    REAL,
    THRESHOLD,
    EdgeAlgebra,
    reciprocal,
)
from provgraph.backends.numba_contract import OVERFLOW
from provgraph.backends.numba_inputs import count_edges, reaching_output
from provgraph.backends.numba_rows import INT_MAX
from provgraph.backends.numba_threads import borrowed, over_rows

#: relative margin between ``|s_j| |v| m`` and θ beyond which an edge is decided by signs alone
MARGIN = 1e-6
#: integer sums below this are exact in float64 whatever the order of the additions
EXACT_F64 = 2**53


def applies(algebra: EdgeAlgebra, n_terms: int, R: np.ndarray) -> bool:
    """Whether a step may run as sign masks: a threshold ``θ > 0``, one rule term, and a sum of
    relevance ``≥ 0`` (Counting, the real semiring with a threshold Θ).

    Boolean does not: by inputs it stops at an input's first edge that holds (measured on
    VGG-16: a tenth of the time of the masks' matrix products)."""
    if algebra.theta != THRESHOLD or algebra.threshold <= 0.0 or n_terms != 1 or R.size == 0:
        return False
    if algebra.integer:
        return algebra.semiring == COUNT
    return algebra.semiring == REAL and float(R.min()) >= 0.0


def limb_bits(R: np.ndarray, fan: int) -> tuple[int, int]:
    """``(bits, n)``: counts ``0 ≤ R < 2**63`` cut into ``n`` limbs of ``bits`` bits, so that a
    sum of ``fan`` values of one limb is exact in float64."""
    bits = 53 - int(fan).bit_length()
    top = int(R.max()) if R.size else 0
    return bits, max(1, -(-top.bit_length() // bits))


def split_by_sign(R, d, bits, out) -> np.ndarray:
    """``out[i, 0 | 1, b, t, c, p]``: limb ``i`` of ``R (B, T, C, P)`` where ``d (B, C, P)`` is
    ``> 0`` (0) or ``< 0`` (1), 0 elsewhere (one limb: ``R`` itself, float or integer); returns
    whether any ``R ≠ 0`` lies where ``d > 0`` and where ``d < 0``."""
    n_rows = R.shape[0] * R.shape[2]
    seen = np.zeros((n_rows, 2), dtype=np.int64)  # one row per sample and channel
    over_rows(_split_rows, n_rows, R, d, bits, out, seen)
    return seen.any(axis=0)


@numba.njit(nogil=True, cache=True)
def _split_rows(R, d, bits, out, seen, start, stop):
    """:func:`split_by_sign` for the rows ``start … stop`` of samples × channels."""
    R, d, out, seen = borrowed(R), borrowed(d), borrowed(out), borrowed(seen)
    c = R.shape[2]
    for item in range(start, stop):
        _split_channel(R, d, bits, out, item // c, item % c, seen[item])


@numba.njit(cache=True)
def _split_channel(R, d, bits, out, b, ch, seen):
    """:func:`split_by_sign` for the channel ``ch`` of sample ``b``."""
    n_limbs, n_t, p = out.shape[0], R.shape[1], R.shape[3]
    mod = np.int64(1) << bits
    for t in range(n_t):
        for q in range(p):
            r, dk = R[b, t, ch, q], d[b, ch, q]
            side = 0 if dk > 0.0 else 1
            live = r != 0 and dk != 0.0
            seen[side] += live
            div = np.int64(1)
            for i in range(n_limbs):
                x = r if n_limbs == 1 else (r // div) % mod
                out[i, side, b, t, ch, q] = x if live else 0
                out[i, 1 - side, b, t, ch, q] = 0
                div *= mod


def join_limbs(sums: list[torch.Tensor], bits: int) -> torch.Tensor:
    """``Σ_i sums_i · 2**(bits·i)`` in int64; raises
    :class:`~provgraph.algebra.counting_carriers.CountOverflowError` past ``2**63 − 1``."""
    total = sums[-1].to(torch.int64)
    for part in reversed(sums[:-1]):
        low = part.to(torch.int64)
        if bool((total > (INT_MAX - low) >> bits).any()):
            raise CountOverflowError(OVERFLOW)
        total = (total << bits) + low
    return total


class SignMasks:
    """``[v > 0]`` and ``[v < 0]`` of the modified weights in float64, made when first used."""

    def __init__(self, v: torch.Tensor) -> None:
        self.v = v
        self._masks: dict[bool, torch.Tensor] = {}

    def __call__(self, positive: bool) -> torch.Tensor:
        if positive not in self._masks:
            self._masks[positive] = ((self.v > 0) if positive else (self.v < 0)).to(torch.float64)
        return self._masks[positive]


def sign_counts(adjoint, parts: dict[bool, torch.Tensor], S: torch.Tensor, masks: SignMasks,
                shape: tuple[int, ...]) -> torch.Tensor:
    """``G (B, T, C_in, *in)`` of the module docstring in float64, except where ``s_j = 0``
    (the caller's kernel sets those to 0).

    ``adjoint(s, weight)``: the op's transposed convolution; ``parts``: the relevance
    ``(B·T, C_out, *out)`` where ``d > 0`` (``True``) and where ``d < 0`` (``False``), each
    present only where it is not all 0; ``S (B, C_in, *in)`` the sources.
    """
    if not parts:
        return torch.zeros(shape, dtype=torch.float64)

    def total(source_positive: bool) -> torch.Tensor:
        # an edge is counted when sign(s) · sign(v) · sign(d) > 0
        terms = [adjoint(part, masks(d_positive == source_positive))
                 for d_positive, part in parts.items()]
        return (terms[0] if len(terms) == 1 else terms[0] + terms[1]).reshape(shape)

    counted = total(True)
    negative = S < 0
    if bool(negative.any()):
        counted = torch.where(negative.unsqueeze(1), total(False), counted)
    return counted


def least_reciprocal(inv: np.ndarray, R: np.ndarray) -> np.ndarray:
    """``m (B,)``: the least ``|1/d_k|`` over the outputs whose relevance is not 0 (0: none)."""
    live = (R != 0).any(axis=1) & (inv != 0)
    mag = np.where(live, np.abs(inv), np.inf).reshape(inv.shape[0], -1).min(axis=1)
    return np.where(np.isfinite(mag), mag, 0.0)


def correct_near_threshold(S, VT, d, inv, R, G, geo, values, index, cut, least, integer,
                           theta) -> int:
    """Settle ``G (B, T, C_in, P_in)`` in place into ``Σ_k [r_jk ≥ θ] R_k``; returns how many
    int64 sums overflowed.

    ``integer``: ``G`` is int64 (Counting: every subtraction exact), else float64
    (there an input that would lose more than half of ``G_j`` to the subtraction is summed
    anew). In parallel over samples × the first input axis (each task owns its inputs).
    """
    # Θ's code is passed at run time, so that the edge sums compile once for every caller
    return sum(over_rows(_settle_rows, R.shape[0] * int(geo[0]), S, VT, d, inv, R, G, geo,
                         values, index, cut, least, integer, THRESHOLD, theta))


@numba.njit(nogil=True, cache=True)
def _settle_rows(S, VT, d, inv, R, G, geo, values, index, cut, least, integer, th, theta,
                 start, stop):
    """:func:`correct_near_threshold` for the rows ``start … stop`` of samples × ``i0``."""
    S, VT, d, inv, R, G = (
        borrowed(S), borrowed(VT), borrowed(d), borrowed(inv), borrowed(R), borrowed(G))
    values, index, least = borrowed(values), borrowed(index), borrowed(least)
    in0, overflow = geo[0], 0
    for item in range(start, stop):
        b, i0 = item // in0, item % in0
        overflow += _settle_slab(S, VT, d, inv, R, G, geo, values, index, cut, least[b],
                                 integer, th, theta, b, i0)
    return overflow


@numba.njit(cache=True)
def _settle_slab(S, VT, d, inv, R, G, geo, values, index, cut, m, integer, th, theta, b, i0):
    """:func:`correct_near_threshold` for the inputs ``(b, i0, ·, ·, ·)``."""
    n_t, c_out, c_in = R.shape[1], R.shape[3], G.shape[2]
    in1, in2, out0, out1, out2 = geo[1], geo[2], geo[3], geo[4], geo[5]
    kk1, kk2, s0, s1, s2 = geo[7], geo[8], geo[9], geo[10], geo[11]
    d0, d1, d2, p0, p1, p2, groups = (
        geo[12], geo[13], geo[14], geo[15], geo[16], geo[17], geo[18])
    cin_g, cout_g = c_in // groups, c_out // groups
    tol = GUARD * (abs(theta) + 1e-300)
    overflow = 0
    corr = np.zeros_like(G[b, :, 0, 0])
    for i1 in range(in1):
        for i2 in range(in2):
            ip = (i0 * in1 + i1) * in2 + i2
            for cj in range(c_in):
                sv = S[0, b, ip, cj]
                if sv == 0.0 or m == 0.0:
                    for t in range(n_t):
                        G[b, t, cj, ip] = 0
                    continue
                g, ci = cj // cin_g, cj % cin_g
                tau = theta * (1.0 + MARGIN) / (abs(sv) * m)
                anew = tau > cut[g, ci]
                if not anew:
                    corr[:] = 0
                    for e in range(values.shape[2]):
                        v = values[g, ci, e]
                        if abs(v) >= tau:
                            break
                        if v == 0.0:
                            continue
                        kap, co = index[g, ci, e] // cout_g, index[g, ci, e] % cout_g
                        o0 = reaching_output(i0, p0, kap // (kk1 * kk2), d0, s0, out0)
                        o1 = reaching_output(i1, p1, (kap // kk2) % kk1, d1, s1, out1)
                        o2 = reaching_output(i2, p2, kap % kk2, d2, s2, out2)
                        if o0 < 0 or o1 < 0 or o2 < 0:
                            continue
                        o, k = (o0 * out1 + o1) * out2 + o2, g * cout_g + co
                        ik = inv[b, o, k]
                        if ik == 0.0:
                            continue
                        counted = ((sv < 0.0) + (v < 0.0) + (ik < 0.0)) % 2 == 0
                        x = sv * v * ik
                        if abs(x - theta) <= tol:
                            held = sv * v / d[b, o, k] >= theta
                        else:
                            held = x >= theta
                        if counted and not held:
                            for t in range(n_t):
                                corr[t] += R[b, t, o, k]
                        elif held and not counted:
                            for t in range(n_t):
                                corr[t] -= R[b, t, o, k]
                    for t in range(n_t):
                        if not integer and corr[t] > 0.5 * G[b, t, cj, ip]:
                            anew = True
                        G[b, t, cj, ip] -= corr[t]
                if anew:
                    overflow += _sum_anew(S, VT, d, inv, R, G, geo, b, i0, i1, i2, ip, cj,
                                          integer, th, theta, tol)
    return overflow


@numba.njit(cache=True)
def _sum_anew(S, VT, d, inv, R, G, geo, b, i0, i1, i2, ip, cj, integer, th, theta, tol):
    """``G[b, :, cj, ip]`` from every edge of that input (as the kernel by inputs sums it)."""
    n_t, c_out, c_in = R.shape[1], R.shape[3], G.shape[2]
    out0, out1, out2 = geo[3], geo[4], geo[5]
    kk0, kk1, kk2, s0, s1, s2 = geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]
    d0, d1, d2, p0, p1, p2, groups = (
        geo[12], geo[13], geo[14], geo[15], geo[16], geo[17], geo[18])
    cin_g, cout_g = c_in // groups, c_out // groups
    g, ci = cj // cin_g, cj % cin_g
    cb = g * cout_g
    sv = S[0, b, ip, cj]
    overflow = 0
    for t in range(n_t):
        acc = G[b, t, cj, ip] - G[b, t, cj, ip]  # 0 in G's carrier
        for q0 in range(kk0):
            o0 = reaching_output(i0, p0, q0, d0, s0, out0)
            for q1 in range(kk1):
                o1 = reaching_output(i1, p1, q1, d1, s1, out1)
                for q2 in range(kk2):
                    o2 = reaching_output(i2, p2, q2, d2, s2, out2)
                    if o0 < 0 or o1 < 0 or o2 < 0:
                        continue
                    o = (o0 * out1 + o1) * out2 + o2
                    kap = (q0 * kk1 + q1) * kk2 + q2
                    vrow, irow = VT[0, g, kap, ci], inv[b, o, cb:cb + cout_g]
                    drow, rrow = d[b, o, cb:cb + cout_g], R[b, t, o, cb:cb + cout_g]
                    acc, over = count_edges(acc, vrow, sv, irow, drow, rrow, th, theta,
                                            tol, integer)
                    overflow += over
        G[b, t, cj, ip] = acc
    return overflow


def mask_contract(adjoint, algebra: EdgeAlgebra, S: np.ndarray, v: torch.Tensor,
                  small: tuple[np.ndarray, np.ndarray, np.ndarray], columns: np.ndarray,
                  d: np.ndarray, R: np.ndarray, r_out: torch.Tensor, geo: np.ndarray,
                  in_shape: tuple[int, ...]) -> torch.Tensor:
    """``R_in (B, T, C_in, *in)`` of a threshold step: int64 for Counting, float64 otherwise.

    ``S (1, B, P_in, C_in)``, ``d (B, P_out, C_out)`` and ``R (B, T, P_out, C_out)``
    channels-last as the window kernels take them, ``r_out (B, T, C_out, *out)`` the same
    relevance in the op's layout, ``v`` the modified weights ``(C_out, C_in/groups, *kernel)``,
    ``small`` from :func:`~provgraph.backends.numba_weights.small_weights` and ``columns`` from
    :func:`~provgraph.backends.numba_weights.conv_columns`. Raises
    :class:`~provgraph.algebra.counting_carriers.CountOverflowError` where an int64 count, or
    the sign count ``G ≥`` it, leaves int64.
    """
    n_b, n_t, c_out = r_out.shape[:3]
    out_sp, in_sp = tuple(r_out.shape[3:]), tuple(in_shape[1:])
    s_t = torch.from_numpy(np.ascontiguousarray(S[0].transpose(0, 2, 1))).reshape(
        (n_b, S.shape[3]) + in_sp)
    rows = r_out.to(torch.int64 if algebra.integer else torch.float64).reshape(
        n_b, n_t, c_out, -1).contiguous().numpy()
    bits, n_limbs = limb_bits(rows, columns.shape[2] * columns.shape[4]) if algebra.integer \
        else (52, 1)
    split = np.empty((n_limbs, 2) + rows.shape)
    seen = split_by_sign(rows, np.ascontiguousarray(d.transpose(0, 2, 1)), bits, split)
    masks = SignMasks(v)
    shape = (n_b, n_t, S.shape[3]) + in_sp
    sums = [sign_counts(adjoint, {side == 0: torch.from_numpy(split[i, side]).reshape(
        (n_b * n_t, c_out) + out_sp) for side in (0, 1) if seen[side]}, s_t, masks, shape)
        for i in range(n_limbs)]
    del split
    G = join_limbs(sums, bits) if algebra.integer else sums[0]
    flat = G.reshape(G.shape[0], G.shape[1], G.shape[2], -1).numpy()
    values, index, cut = small
    inv = reciprocal(d)
    if correct_near_threshold(S, columns, d, inv, R, flat, geo, values, index, cut,
                              least_reciprocal(inv, R), algebra.integer, algebra.threshold):
        raise CountOverflowError(OVERFLOW)
    return G
