"""The dense tiles (blocks of rows × chunks of columns) against a sum over every edge.

Each case is a dense step large enough for several row blocks and column chunks, with a number
of output channels that is not a multiple of the four-channel blocks, and relevance that is K's
zero on some outputs; the reference visits every edge ``j → k`` of every row in Python.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from provgraph.backends import numba_dense
from provgraph.backends.numba_algebra import (
    BOOL,
    COUNT,
    FUZZY,
    IDENTITY,
    NEGLOG,
    ONE,
    REAL,
    THRESHOLD,
    TROPICAL,
    VITERBI,
    EdgeAlgebra,
)
from provgraph.backends.numba_contract import contract_window
from provgraph.backends.numba_window import geometry

N_ROWS = numba_dense.ROWS * 2 + 3
N_IN = numba_dense.COLUMNS + 37
N_OUT = 4 * 5 + 3


def _edge(algebra: EdgeAlgebra, r: float) -> float:
    if algebra.theta == IDENTITY:
        return r
    if algebra.theta == ONE:
        return algebra.one
    if algebra.theta == THRESHOLD:
        return algebra.one if r >= algebra.threshold else algebra.zero
    return -math.log(r) if r > 0 else math.inf


def _combine(algebra: EdgeAlgebra, acc: float, e: float, rk: float) -> float:
    sr = algebra.semiring
    if algebra.integer:
        return max(acc, e * (rk != 0)) if sr == BOOL else acc + e * rk
    if sr == REAL:
        return acc + e * rk
    if sr == VITERBI:
        return max(acc, e * rk)
    if sr == TROPICAL:
        return min(acc, e + rk)
    return max(acc, min(e, rk))  # fuzzy


def brute_force(algebra: EdgeAlgebra, S, V, d, R):
    n_rows, n_t = R.shape[0], R.shape[1]
    out = np.full((n_rows, n_t, 1, S.shape[3]), algebra.zero, dtype=object)
    for r in range(n_rows):
        for t in range(n_t):
            for k in range(V.shape[1]):
                dk = d[r, 0, k]
                for j in range(S.shape[3]):
                    num = float(S[0, r, 0, j]) * float(V[0, k, 0, j])
                    ratio = num / dk if dk != 0 else 0.0
                    out[r, t, 0, j] = _combine(algebra, out[r, t, 0, j], _edge(algebra, ratio),
                                               R[r, t, 0, k])
    return out.astype(np.int64 if algebra.integer else np.float64)


def _case(kind: str, rng: np.random.Generator):
    S = rng.uniform(0.0, 1.0, (1, N_ROWS, 1, N_IN))
    S[0, :, 0, ::7] = 0.0  # zero sources (after a ReLU)
    V = rng.normal(size=(1, N_OUT, 1, N_IN)).astype(np.float32)
    if kind in ("viterbi", "tropical", "tropical-neglog", "tropical-logs", "fuzzy"):
        V = np.abs(V)  # the factored and max-norm steps' non-negative weights
    d = rng.uniform(0.5, 2.0, (N_ROWS, 1, N_OUT))
    R = rng.uniform(0.0, 1.0, (N_ROWS, 2, 1, N_OUT))
    R[:, :, 0, ::5] = 0.0  # outputs that carry no relevance
    return S, V, d, R


ALGEBRAS = {
    "real-threshold": EdgeAlgebra(False, REAL, THRESHOLD, 0.3, 0.0, 1.0),
    "viterbi": EdgeAlgebra(False, VITERBI, IDENTITY, 0.0, 0.0, 1.0),
    "fuzzy": EdgeAlgebra(False, FUZZY, IDENTITY, 0.0, 0.0, 1.0),
    "tropical": EdgeAlgebra(False, TROPICAL, IDENTITY, 0.0, math.inf, 0.0),
    "tropical-neglog": EdgeAlgebra(False, TROPICAL, NEGLOG, 0.0, math.inf, 0.0),
    "tropical-logs": EdgeAlgebra(False, TROPICAL, NEGLOG, 0.0, math.inf, 0.0),
    "counting": EdgeAlgebra(True, COUNT, THRESHOLD, 0.3, 0.0, 1.0),
    "boolean": EdgeAlgebra(True, BOOL, THRESHOLD, 0.3, 0.0, 1.0),
}


@pytest.mark.parametrize("kind", list(ALGEBRAS))
def test_dense_tiles_equal_every_edge(kind: str) -> None:
    algebra = ALGEBRAS[kind]
    rng = np.random.default_rng(7)
    S, V, d, R = _case(kind, rng)
    if kind == "tropical-logs":
        R[:, :, 0, 1::4] += 700.0  # a spread of t beyond exp's range: the weights' logarithms
    if algebra.integer:
        R = rng.integers(1, 1000, R.shape).astype(np.int64) * (R != 0)
        if algebra.semiring == BOOL:
            R = (R != 0).astype(np.int64)
    if kind == "real-threshold":
        # θ exactly at one edge's ratio in every row: decided by the exact quotient
        k, j = 2, 11
        for r in range(N_ROWS):
            S[0, r, 0, j] = 0.75
            V[0, k, 0, j] = np.float32(0.5)
            d[r, 0, k] = 1.25
        algebra = EdgeAlgebra(False, REAL, THRESHOLD, 0.75 * 0.5 / 1.25, 0.0, 1.0)
    geo = geometry((1,), (1,), (1,), (1,), (1,), (0,), 1)
    assert numba_dense.is_dense(geo)
    got = contract_window(algebra, S, V, np.zeros((1, 1)), False, d, R, geo)
    want = brute_force(algebra, S, V, d, R)
    if algebra.integer:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_max_norm_denominators_by_sources_equal_every_edge() -> None:
    rng = np.random.default_rng(3)
    S = rng.normal(size=(1, N_ROWS, 1, N_IN))
    S[0, :, 0, ::3] = 0.0
    VT = rng.normal(size=(N_IN, N_OUT + 250)).astype(np.float32)
    top = np.full((N_ROWS, VT.shape[1]), 0.05)
    want = np.maximum(top, np.abs(S[0, :, 0, :, None] * VT[None].astype(np.float64)).max(axis=1))
    numba_dense.columns_absmax(S, VT, top)
    np.testing.assert_array_equal(top, want)
