"""Symbolic provenance: circuits, polynomials, and one annotated graph specialised to semirings.

The network read as an arithmetic circuit (:class:`Circuit`, size O(edges)) is the universal
provenance of K-LRP: its expansion is a polynomial in ℕ[X] with one variable per edge, and
evaluating it under the valuation ``x_e ↦ Θ(r_e)`` in any commutative semiring K equals computing
in K directly (Green, Karvounarakis, Tannen, "Provenance semirings", PODS 2007).

Typical use::

    circuit = build_circuit(graph, target=3)
    results = specialize_many(circuit, ["real", "boolean", "counting", "viterbi"])
    [poly] = expand(circuit, neurons=[0])                 # ℕ[X] polynomial of input neuron 0
    print(poly, poly.latex(), poly.variable_table())
"""

from __future__ import annotations

from collections.abc import Sequence

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.symbolic.circuit import Circuit, OpWires, Wires
from provgraph.symbolic.polynomial import (
    DEFAULT_MONOMIAL_BUDGET,
    FORMS,
    Polynomial,
    count_monomials,
    expand,
    resolve_tensor,
)
from provgraph.symbolic.provenance_semirings import (
    PROVENANCE_SEMIRINGS,
    BooleanPolynomials,
    LineageSemiring,
    NaturalPolynomials,
    PosBoolSemiring,
    SymbolicSemiring,
    TrioSemiring,
    WhySemiring,
    get_provenance_semiring,
    homomorphism,
    map_values,
)
from provgraph.symbolic.specialize import (
    DEFAULT_SYMBOLIC_BUDGET,
    edge_valuation,
    is_symbolic,
    neuron_valuation,
    repeated_plus,
    repeated_times,
    resolve_semiring,
    specialize,
    specialize_many,
    what_if_pruned,
)
from provgraph.symbolic.variables import VariableRecord, Variables


def build_circuit(graph: AnnotatedGraph, target: int | Sequence[int] | None = None) -> Circuit:
    """The provenance circuit of ``graph`` for ``target`` (class index, list, or predicted)."""
    return Circuit(graph, target)


__all__ = [
    "DEFAULT_MONOMIAL_BUDGET",
    "DEFAULT_SYMBOLIC_BUDGET",
    "FORMS",
    "PROVENANCE_SEMIRINGS",
    "BooleanPolynomials",
    "Circuit",
    "OpWires",
    "LineageSemiring",
    "NaturalPolynomials",
    "Polynomial",
    "PosBoolSemiring",
    "SymbolicSemiring",
    "TrioSemiring",
    "VariableRecord",
    "Variables",
    "WhySemiring",
    "Wires",
    "build_circuit",
    "count_monomials",
    "edge_valuation",
    "expand",
    "get_provenance_semiring",
    "homomorphism",
    "is_symbolic",
    "map_values",
    "neuron_valuation",
    "repeated_plus",
    "repeated_times",
    "resolve_semiring",
    "resolve_tensor",
    "specialize",
    "specialize_many",
    "what_if_pruned",
]
