"""Commutative semirings (K, ⊕, ⊗, 0, 1) with vectorised numpy operations.

A semiring is a small object: its zero and one, elementwise ⊕ and ⊗ on arrays, and ⊕-reductions
(over an axis, and over the row segments of a CSR matrix). Backends are written once against this
interface. A user-defined semiring only needs :attr:`zero`, :attr:`one`, :meth:`plus` and
:meth:`times` on scalars; the array operations then fall back to ``numpy.frompyfunc``.

References
----------
Green, Karvounarakis, Tannen. "Provenance semirings". PODS 2007.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provgraph.errors import ProvgraphError


class Semiring:
    """Base class of a commutative semiring.

    Subclasses set ``name``, ``zero``, ``one`` and either the numpy ufuncs ``add_ufunc`` /
    ``mul_ufunc`` (fast path) or override the scalar :meth:`plus` and :meth:`times`.

    Attributes
    ----------
    idempotent : bool
        ``a ⊕ a = a`` for every ``a`` (Boolean, Viterbi, tropical, fuzzy).
    absorptive : bool
        ``1 ⊕ a = 1`` for every ``a`` (bounded / 0-closed semirings).
    """

    name: str = "semiring"
    zero: Any = 0
    one: Any = 1
    dtype: Any = object
    idempotent: bool = False
    absorptive: bool = False
    add_ufunc: np.ufunc | None = None
    mul_ufunc: np.ufunc | None = None

    # --- scalar operations (used by generic fallbacks and by user-defined semirings) ---
    def plus(self, a: Any, b: Any) -> Any:
        if self.add_ufunc is None:
            raise NotImplementedError(f"{type(self).__name__} must define plus()")
        return self.add_ufunc(a, b)

    def times(self, a: Any, b: Any) -> Any:
        if self.mul_ufunc is None:
            raise NotImplementedError(f"{type(self).__name__} must define times()")
        return self.mul_ufunc(a, b)

    # --- vectorised operations ---
    def _add(self) -> np.ufunc:
        if self.add_ufunc is not None:
            return self.add_ufunc
        return np.frompyfunc(self.plus, 2, 1)

    def _mul(self) -> np.ufunc:
        if self.mul_ufunc is not None:
            return self.mul_ufunc
        return np.frompyfunc(self.times, 2, 1)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Elementwise ``a ⊕ b``."""
        return self.asarray(self._add()(self.asarray(a), self.asarray(b)))

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Elementwise ``a ⊗ b``."""
        return self.asarray(self._mul()(self.asarray(a), self.asarray(b)))

    def sum(self, a: np.ndarray, axis: int = 0) -> np.ndarray:
        """⊕-reduction along ``axis`` (an empty axis gives zero)."""
        a = self.asarray(a)
        if a.shape[axis] == 0:
            shape = a.shape[:axis] + a.shape[axis + 1 :]
            return self.zeros(shape)
        return self.asarray(self._add().reduce(a, axis=axis))

    def segment_sum(self, values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """⊕ of ``values[indptr[i]:indptr[i+1]]`` for each segment ``i`` (along axis 0).

        Empty segments give zero. ``values`` may have trailing dimensions (several targets).
        """
        values = self.asarray(values)
        n = len(indptr) - 1
        out = self.zeros((n,) + values.shape[1:])
        nonempty = np.flatnonzero(np.diff(indptr) > 0)
        if len(nonempty) and len(values):
            reduced = self._add().reduceat(values, indptr[nonempty], axis=0)
            out[nonempty] = reduced
        return out

    def zeros(self, shape: tuple[int, ...] | int) -> np.ndarray:
        return np.full(shape, self.zero, dtype=self.dtype)

    def ones(self, shape: tuple[int, ...] | int) -> np.ndarray:
        return np.full(shape, self.one, dtype=self.dtype)

    def asarray(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=self.dtype)

    def power(self, a: Any, n: int) -> Any:
        """``a ⊗ a ⊗ … ⊗ a`` (``n`` factors; ``one`` for ``n = 0``)."""
        result = self.one
        for _ in range(n):
            result = self.times(result, a)
        return result

    def multiple(self, a: Any, n: int) -> Any:
        """``a ⊕ a ⊕ … ⊕ a`` (``n`` terms; ``zero`` for ``n = 0``)."""
        result = self.zero
        for _ in range(n):
            result = self.plus(result, a)
        return result

    def isclose(self, a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """Elementwise equality, with a relative tolerance for floating-point carriers."""
        a, b = self.asarray(a), self.asarray(b)
        if np.issubdtype(a.dtype, np.floating):
            return np.isclose(a, b, rtol=rtol, atol=0.0) | (a == b)
        return a == b

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class RealSemiring(Semiring):
    """(ℝ, +, ×, 0, 1): classic LRP."""

    name = "real"
    zero, one = 0.0, 1.0
    dtype = np.float64
    add_ufunc, mul_ufunc = np.add, np.multiply


class BooleanSemiring(Semiring):
    """({⊥, ⊤}, ∨, ∧, ⊥, ⊤): is there a relevant path?"""

    name = "boolean"
    zero, one = False, True
    dtype = np.bool_
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.logical_or, np.logical_and


class CountingSemiring(Semiring):
    """(ℕ, +, ×, 0, 1): how many relevant paths? Exact Python integers, never overflows."""

    name = "counting"
    zero, one = 0, 1
    dtype = object
    add_ufunc, mul_ufunc = np.add, np.multiply

    def asarray(self, a: Any) -> np.ndarray:
        arr = np.asarray(a)
        if arr.dtype == object:
            return arr
        if np.issubdtype(arr.dtype, np.floating):
            raise ProvgraphError("Counting semiring values must be integers, got floats")
        return arr.astype(object)

    # numpy ufuncs on two Python ints compute in int64 (wrapping, or raising past 2**63)
    def plus(self, a: Any, b: Any) -> Any:
        return int(a) + int(b)

    def times(self, a: Any, b: Any) -> Any:
        return int(a) * int(b)


class ViterbiSemiring(Semiring):
    """([0, 1], max, ×, 0, 1): strength of the best path."""

    name = "viterbi"
    zero, one = 0.0, 1.0
    dtype = np.float64
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.maximum, np.multiply


class TropicalSemiring(Semiring):
    """(ℝ ∪ {+∞}, min, +, +∞, 0): cost of the cheapest path (with Θ = −log, the best path)."""

    name = "tropical"
    zero, one = np.inf, 0.0
    dtype = np.float64
    idempotent = True
    absorptive = False  # 0 ⊕ a = min(0, a) ≠ 0 for negative costs
    add_ufunc, mul_ufunc = np.minimum, np.add


class FuzzySemiring(Semiring):
    """([0, 1], max, min, 0, 1): strength of the weakest link on the best path."""

    name = "fuzzy"
    zero, one = 0.0, 1.0
    dtype = np.float64
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.maximum, np.minimum


BUILTIN_SEMIRINGS: dict[str, type[Semiring]] = {
    cls.name: cls
    for cls in (
        RealSemiring,
        BooleanSemiring,
        CountingSemiring,
        ViterbiSemiring,
        TropicalSemiring,
        FuzzySemiring,
    )
}


def get_semiring(semiring: str | Semiring) -> Semiring:
    """Return a semiring object from a name (``"real"``, ``"boolean"``, …) or an instance."""
    if isinstance(semiring, Semiring):
        return semiring
    if isinstance(semiring, type) and issubclass(semiring, Semiring):
        return semiring()
    key = str(semiring).lower()
    if key not in BUILTIN_SEMIRINGS:
        known = ", ".join(BUILTIN_SEMIRINGS)
        raise ProvgraphError(f"unknown semiring {semiring!r}; known semirings: {known}")
    return BUILTIN_SEMIRINGS[key]()
