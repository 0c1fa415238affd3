"""Which fused kernel contracts a step, and the algebra around it (sparsity, factoring).

:func:`contract_window` takes the channels-last arrays of
:mod:`~provgraph.backends.numba_window` (a dense op is a 1×1 convolution over one position) and
returns ``R_in`` in the kernel's carrier (int64 for Counting and Boolean, float64 otherwise).

Skipping outputs whose relevance is K's zero is exact when that zero is the identity of ⊕ on
every value a contribution can take: always for (+, ×), (min, +), Counting and Boolean; for
⊕ = max (Viterbi, fuzzy) only when every contribution is ≥ 0, that is when the relevance is
≥ 0 and Θ is a threshold or constant one, or Θ = identity with non-negative edge weights
(sources, modified weights and denominators ≥ 0). Otherwise every output is visited and an
input neuron no edge reaches gets K's zero.
"""

from __future__ import annotations

import math

import numpy as np

from provgraph.algebra.counting_carriers import CountOverflowError
from provgraph.backends.numba_algebra import (
    IDENTITY,
    NEGLOG,
    TROPICAL,
    VITERBI,
    EdgeAlgebra,
    reciprocal,
)
from provgraph.backends.numba_weights import negative_log
from provgraph.backends.numba_window import window_factored, window_float, window_integer

OVERFLOW = (
    "path counts exceed the int64 range; use counting='float64' or counting='log', or the "
    "scipy backend's exact integers"
)


def _nonnegative(*arrays: np.ndarray) -> bool:
    return all(a.size == 0 or float(a.min()) >= 0.0 for a in arrays)


def _skips(algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray, d: np.ndarray,
           R: np.ndarray) -> bool:
    if not algebra.idempotent_max:
        return True
    if not _nonnegative(R):
        return False
    return algebra.theta != IDENTITY or _nonnegative(S, V, d)


def _factored(algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray, d: np.ndarray,
              skip: bool) -> bool:
    """Viterbi with Θ = identity, or tropical with Θ = −log, one term, all factors ≥ 0."""
    if S.shape[0] != 1 or algebra.integer:
        return False
    viterbi = algebra.semiring == VITERBI and algebra.theta == IDENTITY and skip
    tropical = algebra.semiring == TROPICAL and algebra.theta == NEGLOG
    return (viterbi or tropical) and _nonnegative(S, V, d)


def _factors(algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray, d: np.ndarray, R: np.ndarray,
             log_v: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(source factor, inner weights, t)`` of a factored step (see ``window_factored``)."""
    inv = reciprocal(d)
    if algebra.semiring == VITERBI:
        return S[0], V, R * inv[:, None]
    neg_log_v = negative_log(V) if log_v is None else log_v
    with np.errstate(divide="ignore", invalid="ignore"):
        neg_log_s, log_d = negative_log(S[0]), np.log(d)
        t = np.where(d[:, None] > 0, log_d[:, None] + R, math.inf)
    return neg_log_s, neg_log_v, t


def _finish(algebra: EdgeAlgebra, out: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """⊗ the source factor ``outer (B, P_in, C_in)`` onto the inner ⊕ ``out (B, T, …)``."""
    if algebra.semiring == VITERBI:
        return out * outer[:, None]
    return out + outer[:, None]


def _blank(algebra: EdgeAlgebra, shape: tuple[int, ...], skip: bool) -> np.ndarray:
    if algebra.integer:
        return np.zeros(shape, dtype=np.int64)
    empty = algebra.zero if skip else -math.inf  # ⊕ = max over every edge, then settled
    return np.full(shape, empty)


def _settle(algebra: EdgeAlgebra, out: np.ndarray, skip: bool) -> np.ndarray:
    if not skip and not algebra.integer:
        out[out == -math.inf] = algebra.zero
    return out


def contract_window(algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray, Vpos: np.ndarray,
                    pooled: bool, d: np.ndarray, R: np.ndarray, geo: np.ndarray,
                    log_v: np.ndarray | None = None) -> np.ndarray:
    """``R_in (B, T, P_in, C_in)`` of a window op.

    ``log_v``: ``−log V`` prepared by the caller (it caches a convolution's), used when a tropical
    step factors.
    """
    shape = (R.shape[0], R.shape[1], S.shape[2], S.shape[3])
    weights = Vpos if pooled else V
    skip = algebra.integer or _skips(algebra, S, weights, d, R)
    if _factored(algebra, S, weights, d, skip):
        outer, inner, t = _factors(algebra, S, weights, d, R, None if pooled else log_v)
        out = np.full(shape, algebra.zero)
        inner_v, inner_pos = (V, inner) if pooled else (inner, Vpos)
        window_factored(inner_v, inner_pos, pooled, t, out, geo, algebra.semiring, algebra.zero)
        return _finish(algebra, out, outer)
    out = _blank(algebra, shape, skip)
    inv = reciprocal(d)
    if algebra.integer:
        if window_integer(S, V, Vpos, pooled, d, inv, R, out, geo, algebra.semiring,
                          algebra.theta, algebra.threshold):
            raise CountOverflowError(OVERFLOW)
        return out
    window_float(S, V, Vpos, pooled, d, inv, R, out, geo, algebra.semiring, algebra.theta,
                 algebra.threshold, algebra.zero, algebra.one, skip)
    return _settle(algebra, out, skip)
