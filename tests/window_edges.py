"""Brute force over the edges of a window op in the kernels' channels-last layout."""

from __future__ import annotations

import numpy as np


def count_by_edges(S, VT, d, R, geo, theta, one):
    """Brute force: ``Σ_k Θ(r_jk) R_k`` over every edge of the window op, in Python integers,
    each edge decided by ``r = s·v / d`` (0 where d = 0)."""
    n_b, n_t, _, c_out = R.shape
    in_sp, out_sp, kern = geo[0:3], geo[3:6], geo[6:9]
    strides, dil, pads, groups = geo[9:12], geo[12:15], geo[15:18], geo[18]
    c_in = S.shape[3]
    cin_g, cout_g = c_in // groups, c_out // groups
    out = np.zeros((n_b, n_t, S.shape[2], c_in), dtype=object)
    for o in np.ndindex(*out_sp):
        for q in np.ndindex(*kern):
            i = [o[a] * strides[a] - pads[a] + q[a] * dil[a] for a in range(3)]
            if any(i[a] < 0 or i[a] >= in_sp[a] for a in range(3)):
                continue
            ip, op_ = np.ravel_multi_index(i, in_sp), np.ravel_multi_index(o, out_sp)
            kap = np.ravel_multi_index(q, kern)
            for co in range(c_out):
                g = co // cout_g
                for ci in range(cin_g):
                    cj = g * cin_g + ci
                    num = S[0, :, ip, cj] * float(VT[0, g, kap, ci, co - g * cout_g])
                    den = d[:, op_, co]
                    r = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
                    holds = np.ones_like(r, bool) if one else r >= theta
                    out[:, :, ip, cj] += R[:, :, op_, co].astype(object) * holds[:, None]
    return out
