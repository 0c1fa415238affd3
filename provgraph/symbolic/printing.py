"""Text and LaTeX of expanded provenance polynomials, printed straight from their monomials.

A :class:`~provgraph.symbolic.polynomial.Polynomial` stores ``Σ_m c_m Π_{v∈m} v`` as a mapping
from monomials (sorted tuples of variable ids, a repeated id being a power) to coefficients. This
module writes that sum directly, in time linear in the number of monomials; building a sympy
expression first and running sympy's printer costs minutes for the 30,000 monomials of one
pixel of the bundled MLP.

The text form is valid sympy input (``2*x1_7_99*x2_99_4 - 0.5*b1_3 + x0_1_2**2``); the LaTeX form
uses the variables' own LaTeX names (``x^{(L)}_{j,k}``, ``b^{(L)}_{k}``, ``n^{(L)}_{k}``) and
writes ``c \\cdot 10^{e}`` for coefficients in scientific notation, as sympy does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import groupby
from typing import Any

import numpy as np

Terms = Mapping[tuple[int, ...], Any]


def polynomial_text(
    terms: Terms, name: Callable[[int], str], digits: int | None = None,
    names: Callable[[list[int]], list[str]] | None = None,
) -> str:
    """The polynomial as sympy-compatible text.

    Parameters
    ----------
    terms
        Monomial (sorted variable ids) → coefficient (int or float).
    name
        Plain name of a variable id (``x1_7_99``).
    digits
        Significant digits of float coefficients; ``None`` writes them exactly (``repr``).
    names
        Optional bulk form of ``name``: the names of a sorted list of ids, in one call.

    Returns
    -------
    str
        ``"0"`` for the zero polynomial.
    """
    return _render(terms, name, names, digits, lambda v, e: f"{v}**{e}", str, "*")


def polynomial_latex(
    terms: Terms, latex_name: Callable[[int], str], digits: int | None = 4,
    latex_names: Callable[[list[int]], list[str]] | None = None,
) -> str:
    """The polynomial as LaTeX (math mode, no delimiters).

    Parameters
    ----------
    terms
        Monomial (sorted variable ids) → coefficient (int or float).
    latex_name
        LaTeX of a variable id (``x^{(1)}_{7,99}``).
    digits
        Significant digits of float coefficients; ``None`` writes them exactly.
    latex_names
        Optional bulk form of ``latex_name``: the LaTeX of a sorted list of ids, in one call.

    Returns
    -------
    str
        ``"0"`` for the zero polynomial.
    """
    return _render(
        terms, latex_name, latex_names, digits,
        lambda v, e: f"\\left({v}\\right)^{{{e}}}", _latex_number, " ",
    )


def _render(
    terms: Terms,
    name: Callable[[int], str],
    names_of: Callable[[list[int]], list[str]] | None,
    digits: int | None,
    power: Callable[[str, int], str],
    number_text: Callable[[str], str],
    times: str,
) -> str:
    """The sum of terms, each ``|c| v₁ … vₙ`` with ``power(v, e)`` for exponents above one,
    ``number_text`` for the coefficient and ``times`` between factors."""
    names = _names(terms, name, names_of)
    pieces = []
    numbers: dict[Any, tuple[bool, str | None]] = {}  # coefficients repeat: format each once
    for mono, c in _ordered(terms):
        shown = numbers.get(c)
        if shown is None:
            shown = numbers[c] = _coefficient(c, digits)
        negative, number = shown
        if len(set(mono)) == len(mono):  # the common case: every variable once (one path)
            factors = [names[v] for v in mono]
        else:
            factors = [names[v] if e == 1 else power(names[v], e) for v, e in _powers(mono)]
        if number is not None or not factors:
            factors.insert(0, number_text(number if number is not None else "1"))
        pieces.append((negative, times.join(factors)))
    return _join(pieces)


def _names(
    terms: Terms, name: Callable[[int], str], names_of: Callable[[list[int]], list[str]] | None
) -> dict[int, str]:
    """Each occurring variable's name, computed once per variable rather than once per use."""
    ids = sorted({v for mono in terms for v in mono})
    return dict(zip(ids, names_of(ids) if names_of is not None else map(name, ids)))


def _ordered(terms: Terms) -> Iterable[tuple[tuple[int, ...], Any]]:
    """Nonzero terms by increasing degree, then by variable ids (a stable, readable order)."""
    kept = [(m, c) for m, c in terms.items() if c != 0]
    return sorted(kept, key=lambda item: (len(item[0]), item[0]))


def _powers(mono: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(variable, exponent)`` pairs of a sorted monomial."""
    if len(set(mono)) == len(mono):  # the common case: every variable once (one path)
        return [(v, 1) for v in mono]
    return [(v, sum(1 for _ in run)) for v, run in groupby(mono)]


def _coefficient(c: Any, digits: int | None) -> tuple[bool, str | None]:
    """``(negative, |c| as text)``; the text is ``None`` for an exact integer 1 (left out)."""
    if isinstance(c, (bool, np.bool_)):
        c = int(c)
    if isinstance(c, (int, np.integer)):
        c = int(c)
        return c < 0, None if abs(c) == 1 else str(abs(c))
    value = float(c)
    magnitude = abs(value)
    text = repr(magnitude) if digits is None else f"{magnitude:.{max(int(digits), 1)}g}"
    return value < 0, text


def _latex_number(text: str) -> str:
    """``1.5e-05`` → ``1.5 \\cdot 10^{-5}``; other numbers unchanged."""
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    return f"{mantissa} \\cdot 10^{{{int(exponent)}}}"


def _join(pieces: list[tuple[bool, str]]) -> str:
    if not pieces:
        return "0"
    negative, body = pieces[0]
    parts = [f"-{body}" if negative else body]
    parts.extend(f"- {body}" if neg else f"+ {body}" for neg, body in pieces[1:])
    return " ".join(parts)
