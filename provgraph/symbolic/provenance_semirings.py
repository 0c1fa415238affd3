"""Provenance semirings over a set of variables X, and the homomorphisms between them.

These semirings record *which* edges explain a relevance value, not how much; they only make
sense with one variable per edge, so only the symbolic machinery (circuits) computes in them.
From the most to the least informative (Green, Karvounarakis, Tannen, PODS 2007; Green, ICDT
2009):

    ℕ[X] ──► B[X] ──┐
      │             ├──► Why(X) ──► PosBool(X)
      └───► Trio(X) ┘        └────► Lin(X)

ℕ[X]
    polynomials with natural coefficients: a value is a frozenset of ``(monomial, coefficient)``,
    a monomial a sorted tuple of ``(variable, exponent)``.
B[X]
    polynomials with Boolean coefficients (coefficients dropped): a frozenset of monomials.
Trio(X)
    bags of variable sets (exponents dropped): a frozenset of ``(frozenset of variables, count)``.
Why(X)
    witness sets: a frozenset of frozensets of variables; ⊕ is union, ⊗ pairwise union.
PosBool(X)
    positive Boolean formulas up to equivalence, kept as their minimal witnesses (an antichain).
Lin(X)
    lineage: the set of variables involved, or ⊥ (``None``) for "no derivation".

Every arrow is a semiring homomorphism (:func:`homomorphism`), so mapping a polynomial equals
computing in the smaller semiring directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError

Monomial = tuple[tuple[str, int], ...]


class SymbolicSemiring(Semiring):
    """A semiring whose values are built from variables: it has :meth:`variable`."""

    dtype = object
    symbolic = True

    def variable(self, name: str) -> Any:
        """The value of the variable ``name``."""
        raise NotImplementedError

    def format(self, value: Any) -> str:
        """A readable form of ``value``."""
        return repr(value)

    def asarray(self, a: Any) -> np.ndarray:
        if isinstance(a, np.ndarray) and a.dtype == object:
            return a
        if isinstance(a, (list, tuple)):
            out = np.empty(len(a), dtype=object)
            out[:] = list(a)
            return out
        return np.asarray(a, dtype=object)


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    exps: dict[str, int] = dict(a)
    for v, e in b:
        exps[v] = exps.get(v, 0) + e
    return tuple(sorted(exps.items()))


def _mono_str(m: Monomial) -> str:
    return "*".join(v if e == 1 else f"{v}**{e}" for v, e in m) or "1"


def _set_str(s: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(s)) + "}"


def _minimal(sets: Iterable[frozenset]) -> frozenset:
    """The antichain of minimal sets (absorption: ``a ∨ (a ∧ b) = a``)."""
    ordered = sorted(set(sets), key=len)
    kept: list[frozenset] = []
    for s in ordered:
        if not any(k <= s for k in kept):
            kept.append(s)
    return frozenset(kept)


class NaturalPolynomials(SymbolicSemiring):
    """ℕ[X]: the universal commutative semiring (provenance polynomials)."""

    name = "nx"
    zero: Any = frozenset()
    one: Any = frozenset({((), 1)})

    def plus(self, a: Any, b: Any) -> Any:
        terms: dict[Monomial, int] = dict(a)
        for m, c in b:
            terms[m] = terms.get(m, 0) + c
        return frozenset(terms.items())

    def times(self, a: Any, b: Any) -> Any:
        terms: dict[Monomial, int] = defaultdict(int)
        for ma, ca in a:
            for mb, cb in b:
                terms[_mono_mul(ma, mb)] += ca * cb
        return frozenset(terms.items())

    def variable(self, name: str) -> Any:
        return frozenset({(((name, 1),), 1)})

    def format(self, value: Any) -> str:
        if not value:
            return "0"
        parts = []
        for m, c in sorted(value, key=lambda t: (-len(t[0]), t[0])):
            parts.append(_mono_str(m) if c == 1 and m else f"{c}*{_mono_str(m)}" if m else str(c))
        return " + ".join(parts)


class BooleanPolynomials(SymbolicSemiring):
    """B[X]: polynomials with Boolean coefficients (which monomials occur)."""

    name = "bx"
    zero: Any = frozenset()
    one: Any = frozenset({()})
    idempotent = True

    def plus(self, a: Any, b: Any) -> Any:
        return a | b

    def times(self, a: Any, b: Any) -> Any:
        return frozenset(_mono_mul(x, y) for x in a for y in b)

    def variable(self, name: str) -> Any:
        return frozenset({((name, 1),)})

    def format(self, value: Any) -> str:
        return " + ".join(_mono_str(m) for m in sorted(value, key=lambda m: (-len(m), m))) or "0"


class TrioSemiring(SymbolicSemiring):
    """Trio(X): bags of variable sets (ℕ[X] without exponents)."""

    name = "trio"
    zero: Any = frozenset()
    one: Any = frozenset({(frozenset(), 1)})

    def plus(self, a: Any, b: Any) -> Any:
        terms: dict[frozenset, int] = dict(a)
        for s, c in b:
            terms[s] = terms.get(s, 0) + c
        return frozenset(terms.items())

    def times(self, a: Any, b: Any) -> Any:
        terms: dict[frozenset, int] = defaultdict(int)
        for sa, ca in a:
            for sb, cb in b:
                terms[sa | sb] += ca * cb
        return frozenset(terms.items())

    def variable(self, name: str) -> Any:
        return frozenset({(frozenset({name}), 1)})

    def format(self, value: Any) -> str:
        items = sorted(value, key=lambda t: (-len(t[0]), sorted(t[0])))
        return " + ".join(_set_str(s) if c == 1 else f"{c}*{_set_str(s)}" for s, c in items) or "0"


class WhySemiring(SymbolicSemiring):
    """Why(X): the set of witnesses (sets of edges) of a value."""

    name = "why"
    zero: Any = frozenset()
    one: Any = frozenset({frozenset()})
    idempotent = True

    def plus(self, a: Any, b: Any) -> Any:
        return a | b

    def times(self, a: Any, b: Any) -> Any:
        return frozenset(x | y for x in a for y in b)

    def variable(self, name: str) -> Any:
        return frozenset({frozenset({name})})

    def format(self, value: Any) -> str:
        return "{" + ", ".join(_set_str(s) for s in sorted(value, key=sorted)) + "}"


class PosBoolSemiring(WhySemiring):
    """PosBool(X): positive Boolean formulas, kept as their minimal witnesses."""

    name = "posbool"
    absorptive = True

    def plus(self, a: Any, b: Any) -> Any:
        return _minimal(a | b)

    def times(self, a: Any, b: Any) -> Any:
        return _minimal(x | y for x in a for y in b)

    def format(self, value: Any) -> str:
        if not value:
            return "false"
        if value == self.one:
            return "true"
        conj = [" ∧ ".join(sorted(s)) for s in sorted(value, key=sorted)]
        return " ∨ ".join(f"({c})" if len(value) > 1 and "∧" in c else c for c in conj)


class LineageSemiring(SymbolicSemiring):
    """Lin(X): the set of variables a value depends on (``None`` is ⊥, no derivation)."""

    name = "lineage"
    zero: Any = None
    one: Any = frozenset()
    idempotent = True

    def plus(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None else a | b

    def times(self, a: Any, b: Any) -> Any:
        return None if a is None or b is None else a | b

    def variable(self, name: str) -> Any:
        return frozenset({name})

    def format(self, value: Any) -> str:
        return "⊥" if value is None else _set_str(value)


PROVENANCE_SEMIRINGS: dict[str, type[SymbolicSemiring]] = {
    cls.name: cls
    for cls in (
        NaturalPolynomials,
        BooleanPolynomials,
        TrioSemiring,
        WhySemiring,
        PosBoolSemiring,
        LineageSemiring,
    )
}
ALIASES = {"n[x]": "nx", "b[x]": "bx", "why(x)": "why", "posbool(x)": "posbool", "lin": "lineage",
           "trio(x)": "trio", "lin(x)": "lineage"}


# ---------------------------------------------------------------------------- homomorphisms
def _nx_to_bx(v: Any) -> Any:
    return frozenset(m for m, c in v if c)


def _nx_to_trio(v: Any) -> Any:
    terms: dict[frozenset, int] = defaultdict(int)
    for m, c in v:
        terms[frozenset(var for var, _ in m)] += c
    return frozenset(terms.items())


def _bx_to_why(v: Any) -> Any:
    return frozenset(frozenset(var for var, _ in m) for m in v)


def _trio_to_why(v: Any) -> Any:
    return frozenset(s for s, c in v if c)


def _why_to_lineage(v: Any) -> Any:
    return frozenset().union(*v) if v else None


ARROWS: dict[tuple[str, str], Callable[[Any], Any]] = {
    ("nx", "bx"): _nx_to_bx,
    ("nx", "trio"): _nx_to_trio,
    ("bx", "why"): _bx_to_why,
    ("trio", "why"): _trio_to_why,
    ("why", "posbool"): _minimal,
    ("why", "lineage"): _why_to_lineage,
}


def homomorphism(source: str | Semiring, target: str | Semiring) -> Callable[[Any], Any]:
    """The homomorphism ``source → target`` of the hierarchy, as a function on values.

    Composes the arrows of the diagram in the module docstring; raises when there is none (e.g.
    PosBool(X) → Lin(X): absorption forgets variables that lineage keeps).
    """
    src, dst = _key(source), _key(target)
    if src == dst:
        return lambda v: v
    paths: dict[str, list[Callable[[Any], Any]]] = {src: []}
    frontier = [src]
    while frontier:
        node = frontier.pop(0)
        for (a, b), fn in ARROWS.items():
            if a == node and b not in paths:
                paths[b] = paths[node] + [fn]
                frontier.append(b)
    if dst not in paths:
        raise ProvgraphError(f"there is no homomorphism from {src} to {dst} in the hierarchy")
    steps = paths[dst]

    def apply(value: Any) -> Any:
        for fn in steps:
            value = fn(value)
        return value

    return apply


def map_values(function: Callable[[Any], Any], values: np.ndarray) -> np.ndarray:
    """Apply a homomorphism to every element of an object array."""
    out = np.empty(values.shape, dtype=object)
    flat = values.reshape(-1)
    out.reshape(-1)[:] = [function(v) for v in flat]
    return out


def _key(semiring: str | Semiring) -> str:
    name = semiring.name if isinstance(semiring, Semiring) else str(semiring).lower()
    name = ALIASES.get(name, name)
    if name not in PROVENANCE_SEMIRINGS:
        raise ProvgraphError(
            f"unknown provenance semiring {semiring!r}; known: {', '.join(PROVENANCE_SEMIRINGS)}"
        )
    return name


def get_provenance_semiring(name: str) -> SymbolicSemiring | None:
    """The provenance semiring called ``name`` (aliases ``n[x]``, ``b[x]``, …), or ``None``."""
    key = ALIASES.get(str(name).lower(), str(name).lower())
    cls = PROVENANCE_SEMIRINGS.get(key)
    return None if cls is None else cls()
