"""Threshold sums as transposed convolutions of sign masks equal a sum over every edge.

:func:`~provgraph.backends.numba_masks.mask_contract` (Counting in int64, with limbs past
``2**53``, and in float64) against a brute force in Python integers, on convolutions
with stride, dilation, groups, padding, 1-D and 3-D, with signed sources, weights and
denominators, θ far from and equal to an edge's ratio, a tiny θ with tiny weights and sources,
and both ways of settling the edges near θ (every weight in the sorted list; almost none, so
that inputs are summed edge by edge).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from window_edges import count_by_edges

from provgraph.algebra.counting_carriers import CountOverflowError
from provgraph.backends import numba_weights
from provgraph.backends.numba_algebra import COUNT, REAL, THRESHOLD, EdgeAlgebra
from provgraph.backends.numba_masks import mask_contract
from provgraph.backends.numba_window import geometry
from provgraph.backends.torch_conv import Window

GEOMETRIES = [  # spatial, c_in, c_out, kernel, stride, dilation, pad, groups
    ((7, 6), 3, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    ((9, 8), 34, 19, (3, 2), (2, 1), (1, 2), (1, 0), 1),
    ((8, 7), 6, 9, (2, 3), (1, 2), (2, 1), (0, 2), 3),
    ((11,), 20, 36, (3,), (2,), (2,), (2,), 4),
    ((3, 4, 5), 4, 8, (2, 2, 3), (1, 2, 1), (1, 1, 2), (1, 0, 1), 2),
]


def _case(spatial, c_in, c_out, kernel, stride, dil, pad, groups, mode, seed):
    rng = np.random.default_rng(seed)
    out_sp = tuple((n + 2 * p - g * (k - 1) - 1) // s + 1
                   for n, p, g, k, s in zip(spatial, pad, dil, kernel, stride))
    geo = geometry(spatial, out_sp, kernel, stride, dil, pad, groups)
    n_b, n_t, p_in, p_out = 2, 3, int(np.prod(spatial)), int(np.prod(out_sp))
    S = rng.normal(size=(1, n_b, p_in, c_in)) * (rng.uniform(size=(1, n_b, p_in, c_in)) < 0.6)
    VT = rng.normal(size=(1, groups, int(np.prod(kernel)), c_in // groups, c_out // groups))
    d = rng.normal(size=(n_b, p_out, c_out)) * (rng.uniform(size=(n_b, p_out, c_out)) < 0.9)
    theta = 0.8
    if mode == "tiny":  # θ = 1e-9 with sources and weights near it: the sorted lists decide
        theta = 1e-9
        S *= 10.0 ** rng.integers(-9, 1, size=S.shape)
        VT *= 10.0 ** rng.integers(-9, 1, size=VT.shape)
    VT = VT.astype(np.float32)
    if mode == "near":  # θ equal to one edge's exact r > 0: decided by the division, not 1/d
        d[0, 0, 0] = d[0, 0, 0] or 1.0
        S[0, 0, 0, 0] = abs(S[0, 0, 0, 0] or 1.0) * np.sign(VT[0, 0, 0, 0, 0] * d[0, 0, 0])
        theta = float(S[0, 0, 0, 0] * float(VT[0, 0, 0, 0, 0]) / d[0, 0, 0])
    v = VT[0].transpose(0, 3, 2, 1).reshape((c_out, c_in // groups) + kernel)
    window = Window(weight=torch.from_numpy(v), scale=None, bias=None, groups=groups,
                    strides=stride, dilations=dil, pad_begin=pad, in_shape=(c_in,) + spatial,
                    out_shape=(c_out,) + out_sp)
    return S, VT, d, geo, theta, window, v, (n_b, n_t, p_out, c_out), out_sp, rng


def _run(algebra, S, VT, d, R, geo, window, v, out_sp, spatial, c_in):
    n_b, n_t, _, c_out = R.shape
    r_out = torch.from_numpy(np.ascontiguousarray(R.transpose(0, 1, 3, 2))).reshape(
        (n_b, n_t, c_out) + out_sp)
    small = numba_weights.smallest_weights(v.reshape(v.shape[0], v.shape[1], -1), int(geo[18]))
    out = mask_contract(window.adjoint, algebra, S, torch.from_numpy(v), small, VT, d, R, r_out,
                        geo, (c_in,) + spatial)
    return out.reshape(n_b, n_t, c_in, -1).permute(0, 1, 3, 2).numpy()


@pytest.mark.parametrize("share", [1, 10**6])  # every weight in the list; one per channel
@pytest.mark.parametrize("mode", ["threshold", "near", "tiny"])
@pytest.mark.parametrize("geometry_case", GEOMETRIES)
def test_sign_masks_equal_every_edge(monkeypatch, geometry_case, mode, share) -> None:
    spatial, c_in = geometry_case[0], geometry_case[1]
    monkeypatch.setattr(numba_weights, "SMALL_SHARE", share)
    S, VT, d, geo, theta, window, v, shape, out_sp, rng = _case(
        *geometry_case, mode, seed=len(spatial) * 100 + c_in)
    live = rng.uniform(size=shape) < 0.3
    args = (S, VT, d)
    counts = count_by_edges(S, VT, d, live.astype(np.int64), geo, theta, False)
    assert 0 < np.count_nonzero(counts) < counts.size  # neither trivially empty nor full
    # Counting in int64: one limb, then two (counts past 2**53, below 2**63)
    counting = EdgeAlgebra(True, COUNT, THRESHOLD, theta, 0.0, 1.0)
    for top in (2**20, 2**62 // (int(np.prod(geo[6:9])) * shape[3])):
        R = live * rng.integers(1, top, size=shape)
        counts = count_by_edges(S, VT, d, R, geo, theta, False)
        got = _run(counting, *args, R, geo, window, v, out_sp, spatial, c_in)
        np.testing.assert_array_equal(got, counts.astype(np.int64))
    assert int(counts.max()) >= 2**53  # the second R took limbs
    # Counting in float64 (a sum of relevance ≥ 0 with a threshold Θ)
    floats = EdgeAlgebra(False, REAL, THRESHOLD, theta, 0.0, 1.0)
    R = live * rng.uniform(0.0, 1e30, size=shape)
    counts = count_by_edges(S, VT, d, R.astype(object), geo, theta, False)
    got = _run(floats, *args, R, geo, window, v, out_sp, spatial, c_in)
    np.testing.assert_allclose(got, counts.astype(np.float64), rtol=1e-12)


def test_counts_past_int64_are_reported() -> None:
    case = GEOMETRIES[0]
    spatial, c_in = case[0], case[1]
    S, VT, d, geo, theta, window, v, shape, out_sp, rng = _case(*case, "threshold", seed=7)
    R = np.full(shape, 2**62, dtype=np.int64)
    counts = count_by_edges(S, VT, d, R, geo, theta, False)
    assert int(counts.max()) > 2**63 - 1
    counting = EdgeAlgebra(True, COUNT, THRESHOLD, theta, 0.0, 1.0)
    with pytest.raises(CountOverflowError):
        _run(counting, S, VT, d, R, geo, window, v, out_sp, spatial, c_in)
