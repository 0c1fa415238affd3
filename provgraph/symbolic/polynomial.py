"""Expanded provenance polynomials of chosen neurons.

Three forms of the polynomial of neuron ``j`` for target ``y`` (sums over the paths ``p: j ⇝ y``):

``natural``
    ``Σ_p Π_{e∈p} x_e`` in ℕ[X]: one variable per edge, Θ-free, the universal form.
``real``
    ``Σ_p (Π_{e∈p} Θ(r_e)) Π_{e∈p} x_e``: the same monomials with the real Θ-values as
    coefficients (monomials whose coefficient is exactly 0 are dropped).
``neurons``
    ``Σ_p (Π_{e∈p} Θ(r_e)) Π_{n∈p} n``: one variable per hidden neuron, real coefficients; setting
    some neuron variables to 0 answers "what if these neurons were pruned".

Monomials are counted before anything is expanded (one per path, from the circuit evaluated in
Counting), and an expansion past the budget is refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from provgraph.algebra.composites import Composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.symbolic.circuit import Circuit
from provgraph.symbolic.printing import polynomial_latex, polynomial_text
from provgraph.symbolic.specialize import (
    coefficient,
    edge_valuation,
    repeated_times,
    resolve_semiring,
)

DEFAULT_MONOMIAL_BUDGET = 100_000
FORMS = ("natural", "real", "neurons")

Terms = dict[tuple[int, ...], Any]


@dataclass
class Polynomial:
    """The expanded provenance of one neuron: monomials (sorted variable ids) → coefficients."""

    terms: Terms
    circuit: Circuit
    tensor: str
    neuron: int
    target: int
    form: str

    @property
    def num_monomials(self) -> int:
        return len(self.terms)

    def __len__(self) -> int:
        return len(self.terms)

    @property
    def variable_ids(self) -> list[int]:
        """Ids of the variables that occur, sorted."""
        return sorted({v for m in self.terms for v in m})

    def variable_table(self, limit: int | None = 200) -> str:
        """The mapping of the occurring variables back to ops and neurons."""
        return self.circuit.variables.table(self.variable_ids, limit=limit)

    def to_sympy(self, digits: int | None = None) -> Any:
        """A sympy expression (coefficients rounded to ``digits`` significant digits if given)."""
        from provgraph.symbolic.sympy_forms import polynomial_to_sympy

        return polynomial_to_sympy(self, digits=digits)

    def text(self, digits: int | None = None) -> str:
        """Plain text that sympy parses (``2*x1_7_99*x2_99_4 + …``), without going through sympy.

        ``digits`` rounds float coefficients to that many significant digits (``None``: exact).
        """
        variables = self.circuit.variables
        return polynomial_text(self.terms, variables.name, digits, variables.labels)

    def latex(self, digits: int | None = 4) -> str:
        """LaTeX with ``x^{(L)}_{j,k}``, ``b^{(L)}_{k}`` and ``n^{(L)}_{k}`` variables."""
        variables = self.circuit.variables
        return polynomial_latex(
            self.terms, variables.latex, digits, lambda ids: variables.labels(ids, latex=True))

    def __str__(self) -> str:
        return self.text()

    def evaluate(
        self, semiring: str | Semiring, valuation: Callable[[int], Any] | np.ndarray
    ) -> Any:
        """The image of the polynomial under the homomorphism extending ``valuation``.

        ``valuation`` gives a value in K per variable id (an array indexed by id, or a function).
        Natural coefficients map to repeated ⊕, exponents to repeated ⊗; real coefficients are
        accepted by the real semiring only.
        """
        k = resolve_semiring(semiring)
        value_of = valuation if callable(valuation) else valuation.__getitem__
        total = k.zero
        for mono, c in self.terms.items():
            term = coefficient(k, c)
            for v, e in _exponents(mono):
                term = k.times(term, repeated_times(k, value_of(v), e))
            total = k.plus(total, term)
        return total

    def prune(self, variables: Iterable[int | str]) -> Polynomial:
        """The polynomial with the given variables set to 0 (monomials containing them dropped)."""
        var = self.circuit.variables
        gone = {var.id_of(v) if isinstance(v, str) else int(v) for v in variables}
        kept = {m: c for m, c in self.terms.items() if not gone.intersection(m)}
        return Polynomial(kept, self.circuit, self.tensor, self.neuron, self.target, self.form)

    def __repr__(self) -> str:
        return (
            f"Polynomial({self.form}, {self.tensor}[{self.neuron}] for class {self.target}, "
            f"{self.num_monomials:,} monomials)"
        )


def _exponents(mono: tuple[int, ...]) -> list[tuple[int, int]]:
    out: dict[int, int] = {}
    for v in mono:
        out[v] = out.get(v, 0) + 1
    return list(out.items())


def resolve_tensor(circuit: Circuit, layer: str | None) -> str:
    """A tensor name from a tensor or op name (``None``: the network input)."""
    net = circuit.network
    if layer is None:
        return net.input_name
    if layer in net.shapes:
        return layer
    for op in net.ops:
        if op.name == layer:
            return op.output
    raise ProvgraphError(
        f"{net.name} has no tensor or op named {layer!r}; tensors: {', '.join(net.shapes)}"
    )


def count_monomials(
    circuit: Circuit, tensor: str, neurons: Sequence[int], target: int | None = None
) -> int:
    """Monomials of the expanded ℕ[X] polynomials of ``neurons`` (= their paths to the target)."""
    col = circuit.column(target)
    counts = circuit.path_counts.tensors.get(tensor)
    if counts is None:
        return 0
    return sum(int(counts[j, col]) for j in neurons)


def expand(
    circuit: Circuit,
    layer: str | None = None,
    neurons: Sequence[int] | None = None,
    *,
    target: int | None = None,
    form: str = "natural",
    rule: Composite | Rule | str | None = None,
    theta: Any = None,
    budget: int = DEFAULT_MONOMIAL_BUDGET,
) -> list[Polynomial]:
    """Expanded polynomials of ``neurons`` (flat indices; default all) of tensor ``layer``.

    Parameters
    ----------
    circuit
        The provenance circuit.
    layer
        Tensor (or op, meaning its output) whose neurons are expanded; default: the input.
    neurons
        Flat indices into that tensor; default every neuron.
    target
        One of the circuit's targets (default its first).
    form
        ``"natural"`` (ℕ[X]), ``"real"`` (Θ-values as coefficients) or ``"neurons"``.
    rule, theta
        Rule and Θ of the real coefficients (forms ``real`` and ``neurons``; default LRP-0, Θ = id).
    budget
        Largest number of monomials to produce; past it :class:`BudgetError` is raised before
        any expansion.
    """
    if form not in FORMS:
        raise ProvgraphError(f"unknown polynomial form {form!r}; use one of {', '.join(FORMS)}")
    tensor = resolve_tensor(circuit, layer)
    size = circuit.network.size(tensor)
    idx = list(range(size)) if neurons is None else [int(j) for j in neurons]
    bad = [j for j in idx if not 0 <= j < size]
    if bad:
        raise ProvgraphError(f"neuron {bad[0]} is out of range for {tensor!r} ({size} neurons)")
    col = circuit.column(target)
    target = circuit.targets[col]
    requested = count_monomials(circuit, tensor, idx, target)
    if requested > budget:
        raise BudgetError(
            f"expanding {len(idx):,} neuron(s) of {tensor!r} for class {target} would produce "
            f"{requested:,} monomials (one per path), over the budget of {budget:,}; use the "
            "circuit form instead (Circuit / `provgraph polynomial` without --expand), which "
            "has one gate per neuron and one wire per edge, or pick fewer neurons, or raise "
            "the budget"
        )
    coeffs = None
    if form != "natural":
        coeffs = np.asarray(edge_valuation(circuit, "real", rule, theta), dtype=np.float64)
    polys = _expand_terms(circuit, tensor, idx, col, coeffs, form == "neurons")
    return [Polynomial(polys.get(j, {}), circuit, tensor, j, target, form) for j in idx]


def _expand_terms(
    circuit: Circuit,
    tensor: str,
    neurons: list[int],
    col: int,
    coeffs: np.ndarray | None,
    neuron_vars: bool,
) -> dict[int, Terms]:
    """Push-style expansion in reverse topological order over the reachable, nonzero gates."""
    net = circuit.network
    reach = circuit.reachable(tensor, neurons) if neurons else {}
    nonzero = circuit.nonzero
    live = {t: m & nonzero[t][:, col] for t, m in reach.items() if t in nonzero}
    polys: dict[str, dict[int, Terms]] = {}
    if net.output_name in live:
        target = circuit.targets[col]
        if live[net.output_name][target]:
            polys[net.output_name] = {target: {(): 1.0 if coeffs is not None else 1}}
    for step in reversed(circuit.steps):
        out = polys.get(step.op.output)
        if not out:
            continue
        if neuron_vars and step.neuron_start is not None:
            first = step.neuron_start
            out = {k: {(first + k,) + m: c for m, c in p.items()} for k, p in out.items()}
        for w in step.wires:
            mask = live.get(w.input)
            if mask is None:
                continue
            acc = polys.setdefault(w.input, {})
            for j in np.flatnonzero(mask):
                lo, hi = int(w.indptr[j]), int(w.indptr[j + 1])
                terms = acc.get(int(j))
                if terms is None:
                    terms = acc[int(j)] = defaultdict(int)
                for pos in range(lo, hi):
                    p = out.get(int(w.indices[pos]))
                    if not p:
                        continue
                    _accumulate(terms, p, w.var_start, pos, coeffs, neuron_vars)
    result = polys.get(tensor, {})
    return {j: {m: c for m, c in t.items() if c != 0} for j, t in result.items()}


def _accumulate(
    terms: dict, p: Terms, var_start: int | None, pos: int, coeffs: np.ndarray | None,
    neuron_vars: bool,
) -> None:
    """``terms += (annotation of the wire) · p``."""
    if var_start is None:  # a wire annotated one
        for m, c in p.items():
            terms[m] += c
        return
    v = var_start + pos
    if coeffs is None:
        for m, c in p.items():
            terms[(v,) + m] += c
        return
    a = float(coeffs[v])
    if a == 0.0:
        return
    if neuron_vars:
        for m, c in p.items():
            terms[m] += a * c
    else:
        for m, c in p.items():
            terms[(v,) + m] += a * c
