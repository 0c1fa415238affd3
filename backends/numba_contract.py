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
    BOOL,
    IDENTITY,
    NEGLOG,
    THRESHOLD,
    TROPICAL,
    VITERBI,
    EdgeAlgebra,
    reciprocal,
)
from provgraph.backends.numba_dense import dense_factored, dense_float, dense_integer, is_dense
from provgraph.backends.numba_logs import scaled_exponent, tropical_result
from provgraph.backends.numba_rows import INT_MAX
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


#: the widest spread of ``t`` scaled into ``exp(c − t)``: with any non-zero float32 weight
#: (≥ 1.4e-45) the products ``|w| · exp(c − t) ≥ 1e-306`` stay normal floats
SPREAD = 600.0


def _tiny_weights(weights: np.ndarray) -> bool:
    """Whether a weight wider than float32 could underflow ``v · exp(c − t)``."""
    if weights.dtype == np.float32:
        return False
    return float(np.min(weights, where=weights > 0, initial=math.inf)) < 1e-40


def _factored_step(algebra: EdgeAlgebra, S: np.ndarray, V: np.ndarray, Vpos: np.ndarray,
                   pooled: bool, d: np.ndarray, R: np.ndarray, geo: np.ndarray,
                   shape: tuple[int, ...]) -> np.ndarray:
    """A step whose edge term factors: ``s_j ⊗ (⊕_k v_jk ⊗ x_k)`` (see ``window_factored``).

    Viterbi: ``max_k (s_j v_jk / d_k) R_k = s_j · max_k v_jk x_k`` with ``x = R/d``. Tropical
    with Θ = −log: ``min_k (−log s_j − log v_jk + t_k)`` with ``t = log d + R``; since ``−log`` is
    decreasing this is ``−log s_j + c − log max_k v_jk exp(c − t_k)``, a max-times product of the
    weights themselves, so no logarithm is taken per edge (``c``: the least ``t``, which keeps
    ``exp`` in range; where the spread of ``t`` is too wide the weights' logarithms are used).
    """
    weights = Vpos if pooled else V
    with np.errstate(divide="ignore", invalid="ignore"):
        if algebra.semiring == VITERBI:
            x, shift = R * reciprocal(d)[:, None], None
        else:
            t, x, shift = scaled_exponent(d, R, SPREAD)
            if x is None or _tiny_weights(weights):
                return _logs_step(S, V, Vpos, pooled, t, geo, shape)
        out = np.zeros(shape)
        if not pooled and is_dense(geo):
            dense_factored(V, x, out, VITERBI, 0.0)
        else:
            window_factored(V, Vpos, pooled, x, out, geo, VITERBI, 0.0)
        if shift is None:
            return out * S[0][:, None]
        return tropical_result(out, shift, S[0])


def _logs_step(S: np.ndarray, V: np.ndarray, Vpos: np.ndarray, pooled: bool, t: np.ndarray,
               geo: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tropical, Θ = −log: ``−log s_j + min_k (−log v_jk + t_k)`` from the weights' logarithms."""
    inner_v, inner_pos = (V, negative_log(Vpos)) if pooled else (negative_log(V), Vpos)
    out = np.full(shape, math.inf)
    if not pooled and is_dense(geo):
        dense_factored(inner_v, t, out, TROPICAL, math.inf)
    else:
        window_factored(inner_v, inner_pos, pooled, t, out, geo, TROPICAL, math.inf)
    return out + negative_log(S[0])[:, None]


#: how much more an edge costs by inputs than by outputs, for a sum (measured on VGG-16's
#: convolutions: a register sum of three loads per edge against a vectorised row update)
BY_INPUTS_COST = 2.5


def _sparse_sources(algebra: EdgeAlgebra, S: np.ndarray, R: np.ndarray,
                    columns: np.ndarray) -> bool:
    """Whether an int64 sum by inputs (zero sources skipped, θ > 0) reads fewer edges than by
    outputs (zero relevance skipped) by more than :data:`BY_INPUTS_COST`, with no sum that could
    overflow."""
    if (not algebra.integer or algebra.theta != THRESHOLD or algebra.threshold <= 0.0
            or _may_overflow(algebra, R, columns)):
        return False  # a float64 sum by inputs does not vectorise (measured: slower)
    sources = np.count_nonzero(S) / max(S.size, 1)
    outputs = np.count_nonzero(R) / max(R.size, 1)
    return sources * BY_INPUTS_COST < outputs


def _may_overflow(algebra: EdgeAlgebra, R: np.ndarray, columns: np.ndarray) -> bool:
    """Whether a Counting sum over an input's edges could leave int64: ``max |R|`` times the
    number of edges of one input (kernel offsets × output channels of its group)."""
    if not algebra.integer or algebra.semiring == BOOL or R.size == 0:
        return False
    fan = columns.shape[2] * columns.shape[4]
    return int(np.abs(R).max()) * fan > INT_MAX


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
                    columns: np.ndarray | None = None) -> np.ndarray:
    """``R_in (B, T, P_in, C_in)`` of a window op.

    ``columns``: the one term's weights by rows of output channels
    ``(1, groups, K, C_in/groups, C_out/groups)``, with which Boolean, Counting and the real
    semiring with a threshold Θ or constant one run by input neurons
    (:mod:`~provgraph.backends.numba_inputs`).
    """
    shape = (R.shape[0], R.shape[1], S.shape[2], S.shape[3])
    weights = Vpos if pooled else V
    skip = algebra.integer or _skips(algebra, S, weights, d, R)
    if _factored(algebra, S, weights, d, skip):
        return _factored_step(algebra, S, V, Vpos, pooled, d, R, geo, shape)
    out = _blank(algebra, shape, skip)
    inv = reciprocal(d)
    boolean = algebra.integer and algebra.semiring == BOOL
    if columns is not None and not pooled and (boolean or _sparse_sources(algebra, S, R, columns)):
        # by inputs: Boolean stops at an input's first edge that holds; a sum skips zero sources
        from provgraph.backends.numba_inputs import window_inputs

        window_inputs(S, columns, d, inv, R, out, geo, boolean, algebra.theta, algebra.threshold,
                      False)
        return out
    dense = not pooled and S.shape[0] == 1 and is_dense(geo)  # tiles of rows (numba_dense)
    if algebra.integer:
        sr, th, theta = algebra.semiring, algebra.theta, algebra.threshold
        if dense:
            overflow = dense_integer(S, V, Vpos, d, inv, R, out, sr, th, theta)
        else:
            overflow = window_integer(S, V, Vpos, pooled, d, inv, R, out, geo, sr, th, theta)
        if overflow:
            raise CountOverflowError(OVERFLOW)
        return out
    if dense:
        dense_float(S, V, Vpos, d, inv, R, out, algebra.semiring, algebra.theta,
                    algebra.threshold, algebra.zero, algebra.one, skip)
    else:
        window_float(S, V, Vpos, pooled, d, inv, R, out, geo, algebra.semiring, algebra.theta,
                     algebra.threshold, algebra.zero, algebra.one, skip)
    return _settle(algebra, out, skip)
