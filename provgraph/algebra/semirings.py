"""Commutative semirings (K, ⊕, ⊗, 0, 1): one class per semiring, carrying all it decides.

A semiring object holds its zero and one, elementwise ⊕ and ⊗ on numpy arrays and ⊕-reductions
(over an axis, and over the row segments of a CSR matrix), and everything else that depends on
the semiring alone:

- its seed-faithful defaults: :attr:`Semiring.default_rule` and :attr:`Semiring.default_theta`;
- its display: :attr:`~Semiring.colormap`, :attr:`~Semiring.colorbar_label`,
  :attr:`~Semiring.symmetric_colors`, :attr:`~Semiring.log_scale` and
  :meth:`~Semiring.to_float`;
- its ranking order, :meth:`~Semiring.rank_key` (larger is more relevant);
- its torch carrier, :attr:`~Semiring.torch_carrier`, named as data. The default is a generic
  carrier built from the semiring's own ⊕ and ⊗, as torch-struct builds ``matmul`` from ``sum``
  and ``times``; the built-in semirings name faster specialised carriers.

A user-defined semiring only needs :attr:`zero`, :attr:`one` and either the numpy ufuncs
``add_ufunc``/``mul_ufunc`` or the scalar :meth:`plus` and :meth:`times` (the array operations
then fall back to ``numpy.frompyfunc``). To run on the torch backend it declares its operations
as numpy ufuncs with a torch counterpart, or as torch functions (``torch_add``, ``torch_mul``,
optionally ``torch_sum``), and a numeric :attr:`dtype`.

Adding a built-in semiring means adding its class here and to :data:`BUILTIN_SEMIRINGS`.

References
----------
Green, Karvounarakis, Tannen. "Provenance semirings". PODS 2007.
Rush. "Torch-Struct: Deep structured prediction library". ACL 2020 (semirings as ``sum``/``times``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from provgraph.errors import ProvgraphError

#: a rule given by name (resolved by :func:`provgraph.algebra.rules.get_rule`) or as an object
RuleSpec = Any
#: a Θ given by name or threshold (resolved by :func:`provgraph.algebra.theta.get_theta`) or object
ThetaSpec = Any


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
    default_rule : str or Rule
        The edge-weight rule used when none is given (a rule name such as ``"lrp0"`` or
        ``"maxnorm"``, or a rule object).
    default_theta : str, float or Theta
        The Θ used when none is given: a Θ name (``"identity"``, ``"one"``, ``"neglog"``,
        ``"log"``), a threshold, or a Θ object.
    colormap : str
        Matplotlib colour map of heatmaps.
    colorbar_label : str or None
        Colour-bar label of heatmaps (``None``: the semiring's name).
    symmetric_colors : bool
        Colour limits ``±max |v|`` (signed relevance), so that zero is the map's centre.
    log_scale : bool or None
        Show ``log10(1 + v)``: always (``True``), never (``False``) or when the values span more
        than twelve orders of magnitude (``None``).
    counting_mode : str or None
        ``"int64"``, ``"float64"`` or ``"log"`` for the counting carriers, else ``None``.
    torch_add, torch_mul : callable or None
        ⊕ and ⊗ on torch tensors, when they cannot be derived from ``add_ufunc``/``mul_ufunc``.
    torch_sum : callable or None
        ``torch_sum(x, dims)``: ⊕ over ``dims`` (default: derived from ⊕, or a pairwise fold).

    Examples
    --------
    The Łukasiewicz semiring ([0, 1], max, max(0, a + b − 1), 0, 1), on every backend:

    >>> class Lukasiewicz(Semiring):
    ...     name, zero, one, dtype = "lukasiewicz", 0.0, 1.0, np.float64
    ...     idempotent = absorptive = True
    ...     add_ufunc, default_rule = np.maximum, "maxnorm"
    ...     def times(self, a, b):  # scalar ⊗ (numpy)
    ...         return max(0.0, a + b - 1.0)
    ...     def torch_mul(self, a, b):  # the same ⊗ on tensors (torch)
    ...         return (a + b - 1.0).clamp(min=0.0)
    >>> Lukasiewicz().mul(np.array([0.75, 0.25]), np.array([0.5, 0.5])).tolist()
    [0.25, 0.0]
    """

    name: str = "semiring"
    zero: Any = 0
    one: Any = 1
    dtype: Any = object
    idempotent: bool = False
    absorptive: bool = False
    add_ufunc: np.ufunc | None = None
    mul_ufunc: np.ufunc | None = None

    default_rule: RuleSpec = "lrp0"
    default_theta: ThetaSpec = "identity"

    colormap: str = "viridis"
    colorbar_label: str | None = None
    symmetric_colors: bool = False
    log_scale: bool | None = False

    counting_mode: str | None = None

    torch_add: Callable[..., Any] | None = None
    torch_mul: Callable[..., Any] | None = None
    torch_sum: Callable[..., Any] | None = None

    # --- scalar operations (used by generic fallbacks and by user-defined semirings) ---
    def plus(self, a: Any, b: Any) -> Any:
        """Scalar ``a ⊕ b``."""
        if self.add_ufunc is None:
            raise NotImplementedError(f"{type(self).__name__} must define plus()")
        return self.add_ufunc(a, b)

    def times(self, a: Any, b: Any) -> Any:
        """Scalar ``a ⊗ b``."""
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

    def is_zero(self, values: np.ndarray) -> np.ndarray:
        """Elementwise ``v = 0_K`` (no relevant path reaches the neuron)."""
        arr = np.asarray(values)
        if arr.dtype == object:
            return np.array([_equal(v, self.zero) for v in arr.reshape(-1)]).reshape(arr.shape)
        return arr == self.zero

    # --- display and ranking ---
    def to_float(self, values: np.ndarray) -> np.ndarray:
        """K values as float64 (for display and ranking); the base class converts them as is."""
        arr = np.asarray(values)
        if arr.dtype == object:
            return np.vectorize(_as_float, otypes=[np.float64])(arr)
        return arr.astype(np.float64)

    def log10p(self, values: np.ndarray) -> np.ndarray:
        """``log10(1 + v)`` of the displayed floats (the log scale of :meth:`display`)."""
        return np.log10(1.0 + self.to_float(values))

    def display(self, values: np.ndarray) -> tuple[np.ndarray, str]:
        """``(floats, colour-bar label)`` of K values for a heatmap.

        On a log scale (see :attr:`log_scale`) the floats are ``log10(1 + v)`` and the label
        says so.
        """
        label = self.colorbar_label or self.name
        floats = self.to_float(values)
        magnitudes = np.abs(floats[~np.isnan(floats)])
        wide = magnitudes.size > 0 and float(magnitudes.max()) > 1e12
        if self.log_scale or (self.log_scale is None and wide):
            return self.log10p(values), f"log₁₀(1 + {label})"
        return floats, label

    def rank_key(self, values: np.ndarray) -> np.ndarray:
        """A key that sorts ``values`` by relevance: larger is more relevant.

        The base class ranks by value (largest first); semirings whose order is reversed (a
        cost: tropical) override it.
        """
        return self.to_float(values)

    # --- backends ---
    #: the torch backend's carrier: ``"generic"`` (from the own ⊕ and ⊗), ``"sum"`` (matrix
    #: products), ``"boolean"``, ``"integer"`` (exact int64), or a ``TorchSemiring`` subclass
    torch_carrier: Any = "generic"

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # a Python integer beyond the float range
        return float("inf") if v > 0 else float("-inf")


class RealSemiring(Semiring):
    """(ℝ, +, ×, 0, 1): classic LRP (divided by the logit under K-LRP's initialisation)."""

    name = "real"
    zero, one = 0.0, 1.0
    dtype = np.float64
    add_ufunc, mul_ufunc = np.add, np.multiply
    colormap, colorbar_label, symmetric_colors = "bwr", "relevance", True

    torch_carrier = "sum"


class BooleanSemiring(Semiring):
    """({⊥, ⊤}, ∨, ∧, ⊥, ⊤): is there a relevant path?"""

    name = "boolean"
    zero, one = False, True
    dtype = np.bool_
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.logical_or, np.logical_and
    default_theta = 1e-9  # Θ(r) = ⊤ iff r ≥ 1e-9 (seed)
    colormap, colorbar_label = "Greys", "relevant path exists"

    torch_carrier = "boolean"


class CountingSemiring(Semiring):
    """(ℕ, +, ×, 0, 1): how many relevant paths? Exact Python integers, never overflows."""

    name = "counting"
    zero, one = 0, 1
    dtype = object
    add_ufunc, mul_ufunc = np.add, np.multiply
    default_theta = 1e-9  # Θ(r) = 1 iff r ≥ 1e-9 (seed)
    colorbar_label = "relevant paths"
    log_scale = None
    counting_mode = "int64"

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

    def log10p(self, values: np.ndarray) -> np.ndarray:
        """Exact ``log10(1 + n)`` of integer counts of any size."""
        logs = [math.log10(1 + int(v)) for v in np.asarray(values).reshape(-1)]
        return np.asarray(logs, dtype=np.float64).reshape(np.shape(values))

    def rank_key(self, values: np.ndarray) -> np.ndarray:
        """The exact counts (Python integers compare exactly at any size)."""
        return np.asarray(values).astype(object)

    torch_carrier = "integer"


class ViterbiSemiring(Semiring):
    """([0, 1], max, ×, 0, 1): strength of the best path."""

    name = "viterbi"
    zero, one = 0.0, 1.0
    dtype = np.float64
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.maximum, np.multiply
    default_rule = "maxnorm"
    colormap, colorbar_label = "magma", "best path strength"


class TropicalSemiring(Semiring):
    """(ℝ ∪ {+∞}, min, +, +∞, 0): cost of the cheapest path (with Θ = −log, the best path)."""

    name = "tropical"
    zero, one = np.inf, 0.0
    dtype = np.float64
    idempotent = True
    absorptive = False  # 0 ⊕ a = min(0, a) ≠ 0 for negative costs
    add_ufunc, mul_ufunc = np.minimum, np.add
    default_rule, default_theta = "maxnorm", "neglog"
    colormap, colorbar_label = "magma", "exp(−cheapest path cost)"

    def to_float(self, values: np.ndarray) -> np.ndarray:
        """``exp(−cost)``: the strength of the cheapest path, 0 where there is none."""
        return np.exp(-np.asarray(values, dtype=np.float64))

    def rank_key(self, values: np.ndarray) -> np.ndarray:
        """Cheapest first."""
        return -np.asarray(values, dtype=np.float64)


class FuzzySemiring(Semiring):
    """([0, 1], max, min, 0, 1): strength of the weakest link on the best path."""

    name = "fuzzy"
    zero, one = 0.0, 1.0
    dtype = np.float64
    idempotent = absorptive = True
    add_ufunc, mul_ufunc = np.maximum, np.minimum
    default_rule = "maxnorm"
    colormap, colorbar_label = "magma", "best weakest link"


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


def get_semiring(semiring: str | Semiring | type[Semiring]) -> Semiring:
    """Return a semiring object from a name (``"real"``, ``"boolean"``, …), class or instance."""
    if isinstance(semiring, Semiring):
        return semiring
    if isinstance(semiring, type) and issubclass(semiring, Semiring):
        return semiring()
    key = str(semiring).lower()
    if key not in BUILTIN_SEMIRINGS:
        known = ", ".join(BUILTIN_SEMIRINGS)
        raise ProvgraphError(f"unknown semiring {semiring!r}; known semirings: {known}")
    return BUILTIN_SEMIRINGS[key]()
