r"""The declarative form of an edge-weight rule, and its numpy reference evaluation.

A :class:`RuleForm` states a rule as data (see :mod:`provgraph.algebra.rules` for the formula,
the built-in rules and how to declare a user rule):

.. math::

    z_{jk} = \sum_t s_t(a)_j \, v_t(w_{jk}), \qquad b'_k = v_b(b_k), \qquad
    r_{jk} = z_{jk} / d_k, \qquad r_{0k} = b'_k / d_k,

with ``d_k = s + ε·sign(s)``, ``s = Σ_j z_jk + b'_k`` (``sign(0) = +1``), or
``d_k = max(|b'_k|, max_j |z_jk|) + ε``; a zero ``d_k`` gives ``r = 0``.
:meth:`RuleForm.edge_weights` evaluates it on the flat edge list of one op (:class:`EdgeSet`);
the torch kernels (``provgraph.backends.torch_rules``) evaluate the same declaration without the
edge list.

References
----------
Montavon et al. "Layer-wise relevance propagation: an overview". In: Explainable AI:
Interpreting, Explaining and Visualizing Deep Learning, LNCS 11700, 2019.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from provgraph.errors import ProvgraphError

SOURCES = ("a", "abs", "one", "low", "high")
"""Input sources ``s(a)``: ``a``, ``|a|``, ``1``, the lower bound ``l``, the upper bound ``h``."""

DENOMINATORS = ("sum", "maxnorm")
"""Denominator kinds: the ε-stabilised sum, or the max-norm plus ε."""


class RuleFormError(ProvgraphError):
    """A rule declaration is malformed, or a rule has no declaration a backend can evaluate."""


@dataclass(frozen=True)
class Weights:
    r"""A modified weight ``v(w) = c_w w + c_+ w⁺ + c_- w⁻ + c_|·| |w| + c_2 w² + c_1``.

    ``w⁺ = max(w, 0)`` and ``w⁻ = min(w, 0)``. Calling it maps a numpy array or a torch tensor
    elementwise with the same arithmetic (``w⁺`` as ``(w + |w|)/2``, which is exact).

    Examples
    --------
    >>> Weights(w=1.0, pos=0.25)  # LRP-γ with γ = 0.25
    Weights(w=1.0, pos=0.25)
    """

    w: float = 0.0
    pos: float = 0.0
    neg: float = 0.0
    abs: float = 0.0
    sq: float = 0.0
    one: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise RuleFormError(f"Weights({f.name}=…) must be a number, not {value!r}")
            if not math.isfinite(value):
                raise RuleFormError(f"Weights({f.name}={value!r}) must be finite")
            object.__setattr__(self, f.name, float(value))

    @property
    def is_identity(self) -> bool:
        """Whether ``v(w) = w`` (callers may then skip the map)."""
        return self == IDENTITY

    def __call__(self, x: Any) -> Any:
        if self.is_identity:
            return x
        parts = (
            (self.w, lambda: x),
            (self.pos, lambda: (x + abs(x)) * 0.5),
            (self.neg, lambda: (x - abs(x)) * 0.5),
            (self.abs, lambda: abs(x)),
            (self.sq, lambda: x * x),
            (self.one, lambda: x**0),  # ones like x (numpy and torch alike)
        )
        out = None
        for coef, part in parts:
            if coef == 0:
                continue
            term = part() if coef == 1 else coef * part()
            out = term if out is None else out + term
        return x * 0.0 if out is None else out

    def __repr__(self) -> str:
        coefs = [(f.name, getattr(self, f.name)) for f in fields(self)]
        return f"Weights({', '.join(f'{n}={c!r}' for n, c in coefs if c)})"


IDENTITY = Weights(w=1.0)
"""``v(w) = w``."""


@dataclass(frozen=True)
class Term:
    """One numerator term ``s(a)_j · v(w_jk)``: a source name of :data:`SOURCES` and weights."""

    source: str
    weight: Weights

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise RuleFormError(
                f"unknown input source {self.source!r}; sources are {', '.join(SOURCES)}"
            )
        if not isinstance(self.weight, Weights):
            raise RuleFormError(f"a term's weight must be Weights(...), not {self.weight!r}")

    def __repr__(self) -> str:
        return f"Term({self.source!r}, {self.weight!r})"


Bound = float | np.ndarray


@dataclass(frozen=True, eq=False)
class RuleForm:
    """The declaration of a rule (see the module docstring for the formula).

    Attributes
    ----------
    terms : the numerator terms ``(s_t, v_t)``; at least one
    bias : modified weights ``v_b`` of the bias numerator ``b' = v_b(b)`` (with ``v_b(0) = 0``),
        or ``None`` (the bias edge gets 0 and takes no part in the denominator)
    denominator : ``"sum"`` (ε-stabilised ``Σ_j z_jk + b'_k``) or ``"maxnorm"``
    epsilon : ``ε ≥ 0`` of the denominator
    low, high : input bounds read by the ``low`` and ``high`` sources: a scalar, or an array
        with one value per input neuron (flattened in C order)
    """

    terms: tuple[Term, ...]
    bias: Weights | None = None
    denominator: str = "sum"
    epsilon: float = 0.0
    low: Bound = 0.0
    high: Bound = 1.0

    def __post_init__(self) -> None:
        terms = tuple(self.terms) if isinstance(self.terms, (list, tuple)) else (self.terms,)
        if not terms or not all(isinstance(t, Term) for t in terms):
            raise RuleFormError("a rule form needs at least one Term(source, Weights(...))")
        object.__setattr__(self, "terms", terms)
        if self.bias is not None and not isinstance(self.bias, Weights):
            raise RuleFormError(f"the bias numerator must be Weights(...) or None: {self.bias!r}")
        if self.bias is not None and self.bias.one != 0:
            # an op without a bias has no bias neuron: v_b(0) must be 0 for both to agree
            raise RuleFormError(f"the bias numerator {self.bias!r} must map b = 0 to 0 (one=0)")
        if self.denominator not in DENOMINATORS:
            raise RuleFormError(
                f"unknown denominator {self.denominator!r}; use {' or '.join(DENOMINATORS)}"
            )
        eps = float(self.epsilon)
        if not (math.isfinite(eps) and eps >= 0):
            raise RuleFormError(f"epsilon must be finite and ≥ 0, not {self.epsilon!r}")
        object.__setattr__(self, "epsilon", eps)
        for name in ("low", "high"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(value)):
                raise RuleFormError(f"the {name} bound must be finite")
            object.__setattr__(self, name, float(value) if value.size == 1 else value.reshape(-1))

    @property
    def maxnorm(self) -> bool:
        """Whether the denominator is the max-norm ``max(|b'_k|, max_j |z_jk|) + ε``."""
        return self.denominator == "maxnorm"

    @functools.cached_property
    def direct(self) -> bool:
        """Whether ``z_jk = a_j w_jk`` and ``b' = b`` with a sum: the denominator is then the
        op's own output ``z_k`` stabilised (kernels may reuse the forward pass). Computed once
        per form: kernels ask it at every op of a walk."""
        plain = (Term("a", IDENTITY),)
        return not self.maxnorm and self.terms == plain and self.bias == IDENTITY

    @property
    def guarded(self) -> bool:
        """Whether a denominator can be zero (only when ``ε = 0``; then its edges get 0)."""
        return self.epsilon == 0

    def bound(self, source: str) -> Bound:
        """The bound a ``low`` or ``high`` source reads."""
        return self.low if source == "low" else self.high

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        """The numpy reference: ``(r_edges (E,), r_bias (n_out,))`` for the edges of one op."""
        num = None
        for t in self.terms:
            term = _source(self, t.source, edges) * t.weight(edges.w)
            num = term if num is None else num + term
        bias = np.zeros(edges.n_out) if self.bias is None else self.bias(edges.bias)
        if self.maxnorm:
            top = np.abs(bias)  # a fresh array
            np.maximum.at(top, edges.col, np.abs(num))
            den = top + self.epsilon
        else:
            den = _stabilize(edges.column_sum(num) + bias, self.epsilon)
        return _safe_divide(num, den[edges.col]), _safe_divide(bias, den)

    def _key(self) -> tuple:
        bounds = tuple(np.asarray(b).tolist() for b in (self.low, self.high))
        return (self.terms, self.bias, self.denominator, self.epsilon, bounds)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleForm) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(repr(self._key()))


@dataclass
class EdgeSet:
    """The edges ``j → k`` of one linear op, flattened over all its inputs.

    Attributes
    ----------
    a : (E,) activation of each edge's source neuron
    w : (E,) weight of each edge
    col : (E,) output neuron ``k`` of each edge
    row : (E,) flat index of each edge's source neuron within its input tensor
    bias : (n_out,) bias ``b_k`` (zeros when the op has no bias)
    is_input : whether the op reads the network input
    """

    a: np.ndarray
    w: np.ndarray
    col: np.ndarray
    row: np.ndarray
    bias: np.ndarray
    is_input: bool = False

    @property
    def n_out(self) -> int:
        return len(self.bias)

    def column_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.col, weights=values, minlength=self.n_out)


def _source(form: RuleForm, source: str, edges: EdgeSet) -> np.ndarray:
    """``s(a)`` of each edge's source neuron."""
    if source == "a":
        return edges.a
    if source == "abs":
        return np.abs(edges.a)
    if source == "one":
        return np.ones_like(edges.a)
    bound = np.asarray(form.bound(source), dtype=np.float64)
    if bound.size == 1:
        return np.broadcast_to(bound.reshape(()), edges.a.shape)
    if edges.row.size and int(edges.row.max()) >= bound.size:
        raise RuleFormError(
            f"the {source} bound has {bound.size} entries, the op's input has more neurons"
        )
    return bound[edges.row]


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _stabilize(den: np.ndarray, epsilon: float) -> np.ndarray:
    """``den + ε·sign(den)`` with ``sign(0) = +1`` (the convention of Captum and Zennit)."""
    if epsilon == 0:
        return den
    return den + epsilon * np.where(den >= 0, 1.0, -1.0)
