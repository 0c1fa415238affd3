"""The algebra the fused numba kernels compute in: semiring and Θ codes.

This module imports no numba: the backend reads it to decide whether a kernel applies, and
the kernels (which import numba) are loaded on first use. A compiled kernel cannot call a
Python semiring, so each built-in semiring the kernels cover is named by a code
(:data:`FLOAT_CODES`: ⊕ and ⊗ on float64; :data:`INTEGER_CODES`: Counting in exact int64 and
Boolean as 0/1) and each built-in Θ by another (:data:`THETA_CODES`). The codes
are looked up by exact class: a subclass or a user-defined semiring or Θ has no code and takes
the generic path of the backend. :func:`edge_algebra` returns ``None`` for such a pair.

Edge weights follow the rule form (:mod:`provgraph.algebra.rule_form`): ``r = num / d`` with
``r = 0`` where ``d = 0``. The kernels multiply by ``1/d`` and, for a threshold Θ, divide
exactly wherever the product lies within :data:`GUARD` of the threshold, so ``r ≥ θ`` is decided
as the reference decides it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from provgraph.algebra.counting_carriers import CountingFloat64Semiring
from provgraph.algebra.semirings import (
    BooleanSemiring,
    CountingSemiring,
    FuzzySemiring,
    RealSemiring,
    Semiring,
    TropicalSemiring,
    ViterbiSemiring,
)
from provgraph.algebra.theta import ConstantOne, IdentityTheta, Layer, NegLog, Theta, Threshold

# float semirings: (⊕, ⊗)
REAL, VITERBI, TROPICAL, FUZZY = 0, 1, 2, 3  # (+, ×), (max, ×), (min, +), (max, min)
# integer semirings
COUNT, BOOL = 0, 1  # (+, ×) in int64 with an overflow check; (∨, ∧) as 0/1
# Θ
IDENTITY, THRESHOLD, ONE, NEGLOG = 0, 1, 2, 3

FLOAT_CODES: dict[type, int] = {
    RealSemiring: REAL,
    CountingFloat64Semiring: REAL,
    ViterbiSemiring: VITERBI,
    TropicalSemiring: TROPICAL,
    FuzzySemiring: FUZZY,
}
INTEGER_CODES: dict[type, int] = {CountingSemiring: COUNT, BooleanSemiring: BOOL}
THETA_CODES: dict[type, int] = {
    IdentityTheta: IDENTITY,
    Threshold: THRESHOLD,
    ConstantOne: ONE,
    NegLog: NEGLOG,
}

#: relative distance to a threshold below which ``num · (1/d)`` is replaced by ``num / d``
GUARD = 1e-12


@dataclass(frozen=True)
class EdgeAlgebra:
    """What a kernel needs to map an edge weight into K and combine it.

    Attributes
    ----------
    integer : the int64 kernels (Counting, Boolean) rather than the float64 ones
    semiring : the code of (⊕, ⊗)
    theta : the code of Θ
    threshold : θ of a threshold Θ at this layer (0 otherwise)
    zero, one : K's zero and one in the kernel's carrier
    """

    integer: bool
    semiring: int
    theta: int
    threshold: float
    zero: float
    one: float

    @property
    def idempotent_max(self) -> bool:
        """⊕ = max (Viterbi, fuzzy): zero is its identity only on values ≥ 0."""
        return not self.integer and self.semiring in (VITERBI, FUZZY)


def edge_algebra(semiring: Semiring, theta: Theta, layer: Layer) -> EdgeAlgebra | None:
    """The kernels' codes for ``(semiring, Θ)``, or ``None`` when no kernel covers the pair."""
    th = THETA_CODES.get(type(theta))
    if th is None:
        return None
    threshold = theta.threshold_for(layer) if th == THRESHOLD else 0.0
    if type(semiring) in INTEGER_CODES:
        if th not in (THRESHOLD, ONE):
            return None
        return EdgeAlgebra(True, INTEGER_CODES[type(semiring)], th, threshold, 0.0, 1.0)
    code = FLOAT_CODES.get(type(semiring))
    if code is None or (th == NEGLOG and code != TROPICAL):
        return None
    zero, one = (math.inf, 0.0) if code == TROPICAL else (0.0, 1.0)
    return EdgeAlgebra(False, code, th, threshold, zero, one)


def reciprocal(d: np.ndarray) -> np.ndarray:
    """``1/d``, and 0 where ``d = 0`` (no relevance flows through such an output)."""
    out = np.zeros_like(d)
    np.divide(1.0, d, out=out, where=d != 0)
    return out
