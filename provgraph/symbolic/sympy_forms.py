"""Provenance circuits and polynomials as sympy objects, and their text and LaTeX.

The circuit of :mod:`provgraph.symbolic.circuit` becomes a *shared* sympy DAG: each gate is
built once (``evaluate=False``, no expansion) and referenced by every gate that uses it, so the
expressions of all neurons together have O(edges) distinct nodes. It can also be written as a
straight-line program, one equation per gate (``R3_5 = x2_5_0*R5_0 + …``), which prints in size
O(edges) where the expanded tree would be exponential. :func:`evaluate_expr` is the homomorphism
from such an expression (or an expanded polynomial) into any semiring.

This is not a :class:`~provgraph.backends.base.Backend` of the aggregation driver: its values are
expressions, not semiring arrays; numeric results come from specialising the circuit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sympy

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError
from provgraph.symbolic.specialize import (
    coefficient,
    edge_valuation,
    repeated_times,
    resolve_semiring,
)

if TYPE_CHECKING:
    from provgraph.symbolic.circuit import Circuit
    from provgraph.symbolic.polynomial import Polynomial
    from provgraph.symbolic.variables import Variables

Gate = tuple[str, int]
CIRCUIT_FORMS = ("natural", "real", "neurons")


@dataclass
class GateProgram:
    """The gates needed for some neurons: ``terms[g]`` lists ``(variable id or None, child)``."""

    circuit: Circuit
    form: str
    target: int
    roots: list[Gate]
    terms: dict[Gate, list[tuple[int | None, Gate]]] = field(default_factory=dict)
    factor: dict[Gate, int] = field(default_factory=dict)
    coeffs: np.ndarray | None = None

    def gate_symbol(self, gate: Gate) -> sympy.Symbol:
        return sympy.Symbol(f"R{self.circuit.tensors.index(gate[0])}_{gate[1]}")

    def gate_latex(self, gate: Gate) -> str:
        return f"R^{{[{self.circuit.tensors.index(gate[0])}]}}_{{{gate[1]}}}"

    def is_output(self, gate: Gate) -> bool:
        return gate[0] == self.circuit.network.output_name

    def representative(self, gate: Gate) -> Gate:
        """Follow single wires annotated one (activations, routing): they add no gate."""
        while not self.is_output(gate):
            terms = self.terms.get(gate, [])
            if len(terms) != 1 or terms[0][0] is not None or gate in self.factor:
                break
            gate = terms[0][1]
        return gate

    def legend(self) -> str:
        used = sorted({self.circuit.tensors.index(g[0]) for g in self.terms} |
                      {self.circuit.tensors.index(g[0]) for g in self.roots})
        return "\n".join(f"R{t}_j: relevance of neuron j of tensor {self.circuit.tensors[t]!r}"
                         for t in used)


def gate_program(
    circuit: Circuit,
    tensor: str,
    neurons: Sequence[int] | None = None,
    target: int | None = None,
    form: str = "natural",
    rule: Any = None,
    theta: Any = None,
) -> GateProgram:
    """Collect the gates reachable from ``neurons`` of ``tensor`` that have a path to the target."""
    if form not in CIRCUIT_FORMS:
        raise ProvgraphError(f"unknown form {form!r}; use one of {', '.join(CIRCUIT_FORMS)}")
    col = circuit.column(target)
    idx = list(range(circuit.network.size(tensor))) if neurons is None else list(neurons)
    prog = GateProgram(circuit, form, circuit.targets[col], [(tensor, int(j)) for j in idx])
    if form != "natural":
        prog.coeffs = np.asarray(edge_valuation(circuit, "real", rule, theta), dtype=np.float64)
    if not idx:
        return prog
    nonzero = circuit.nonzero
    live = {t: m & nonzero[t][:, col]
            for t, m in circuit.reachable(tensor, idx).items() if t in nonzero}
    for step in reversed(circuit.steps):
        out_live = live.get(step.op.output)
        if out_live is None or not out_live.any():
            continue
        if form == "neurons" and step.neuron_start is not None:
            for k in np.flatnonzero(out_live).tolist():
                prog.factor[(step.op.output, k)] = step.neuron_start + k
        for w in step.wires:
            mask = live.get(w.input)
            if mask is None:
                continue
            for j in np.flatnonzero(mask).tolist():
                lo, hi = int(w.indptr[j]), int(w.indptr[j + 1])
                ks = w.indices[lo:hi].tolist()
                keep = out_live[w.indices[lo:hi]].tolist()
                entry = prog.terms.setdefault((w.input, j), [])
                out = step.op.output
                if w.var_start is None:
                    entry.extend((None, (out, k)) for k, ok in zip(ks, keep) if ok)
                else:
                    base = w.var_start + lo
                    entry.extend((base + p, (out, k)) for p, (k, ok) in enumerate(zip(ks, keep))
                                 if ok)
    return prog


def _wire_factor(prog: GateProgram, var: int | None, symbols: dict[int, Any],
                 digits: int | None) -> Any:
    """The sympy factor of a wire, or ``None`` for K's one, or ``0`` when it vanishes."""
    if var is None:
        return None
    if prog.form == "natural":
        return symbols[var]
    assert prog.coeffs is not None
    c = float(prog.coeffs[var])
    if c == 0.0:
        return 0
    num = sympy.Float(c, digits) if digits else sympy.Float(c)
    return num if prog.form == "neurons" else sympy.Mul(num, symbols[var], evaluate=False)


def _symbols_for(prog: GateProgram) -> dict[int, sympy.Symbol]:
    var = prog.circuit.variables
    ids = sorted({v for terms in prog.terms.values() for v, _ in terms if v is not None}
                 | set(prog.factor.values()))
    if prog.form == "neurons":
        ids = sorted(prog.factor.values())
    return dict(zip(ids, _bulk_symbols(var, ids)))


def _bulk_symbols(var: Variables, ids: list[int]) -> list[sympy.Symbol]:
    """Symbols for many ids, naming whole contiguous runs at once."""
    out: list[sympy.Symbol] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.extend(sympy.Symbol(n) for n in var.names(ids[i], ids[j] + 1))
        i = j + 1
    return out


def circuit_to_sympy(
    circuit: Circuit,
    tensor: str,
    neurons: Sequence[int] | None = None,
    target: int | None = None,
    form: str = "natural",
    digits: int | None = None,
    rule: Any = None,
    theta: Any = None,
) -> dict[int, sympy.Expr]:
    """Each requested neuron's provenance as a sympy expression; all share one DAG.

    ``form`` is ``"natural"`` (edge variables), ``"real"`` (edge variables times their real
    Θ-values) or ``"neurons"`` (neuron variables, real Θ-values as coefficients).
    """
    prog = gate_program(circuit, tensor, neurons, target, form, rule, theta)
    expr = _build(prog, digits)
    return {j: expr.get((tensor, j), sympy.S.Zero) for _, j in prog.roots}


def _build(prog: GateProgram, digits: int | None) -> dict[Gate, Any]:
    symbols = _symbols_for(prog)
    expr: dict[Gate, Any] = {}
    out_name = prog.circuit.network.output_name
    expr[(out_name, prog.target)] = sympy.S.One
    order = {t: i for i, t in enumerate(prog.circuit.tensors)}
    for gate in sorted(prog.terms, key=lambda g: (-order[g[0]], g[1])):
        parts = []
        for v, child in prog.terms[gate]:
            ce = expr.get(child)
            if ce is None:
                continue
            f = _wire_factor(prog, v, symbols, digits)
            if f is None:
                parts.append(ce)
            elif f != 0:
                parts.append(f if ce is sympy.S.One else sympy.Mul(f, ce, evaluate=False))
        if not parts:
            continue
        value = parts[0] if len(parts) == 1 else sympy.Add(*parts, evaluate=False)
        if gate in prog.factor:
            value = sympy.Mul(symbols[prog.factor[gate]], value, evaluate=False)
        expr[gate] = value
    return expr


def circuit_equations(
    circuit: Circuit,
    tensor: str,
    neurons: Sequence[int] | None = None,
    target: int | None = None,
    form: str = "natural",
    digits: int | None = 4,
    rule: Any = None,
    theta: Any = None,
) -> tuple[GateProgram, list[tuple[Gate, list[tuple[Any, Gate | None]]]]]:
    """The circuit as a straight-line program: one equation per gate, top-down.

    Returns the gate program and, per gate, its right-hand side as ``(factor, child gate)``
    pairs (factor ``None`` for K's one, child ``None`` for the constant 1 of the target).
    """
    prog = gate_program(circuit, tensor, neurons, target, form, rule, theta)
    symbols = _symbols_for(prog)
    order = {t: i for i, t in enumerate(circuit.tensors)}
    equations: list[tuple[Gate, list[tuple[Any, Gate | None]]]] = []
    seen: set[Gate] = set()
    reps = [prog.representative(g) for g in prog.roots]
    for root, rep in zip(prog.roots, reps):
        if prog.is_output(root):
            equations.append((root, [(None, None)] if root[1] == prog.target else []))
        elif root not in prog.terms:
            equations.append((root, []))  # no path to the target
        elif rep != root:
            equations.append((root, [(None, None if prog.is_output(rep) else rep)]))
    needed: set[Gate] = set()
    stack = [g for g in reps if not prog.is_output(g)]
    while stack:
        g = stack.pop()
        if g in needed or g not in prog.terms:
            continue
        needed.add(g)
        stack.extend(prog.representative(c) for _, c in prog.terms[g])
    for gate in sorted(needed, key=lambda g: (order[g[0]], g[1])):
        if gate in seen:
            continue
        seen.add(gate)
        rhs = []
        for v, child in prog.terms[gate]:
            f = _wire_factor(prog, v, symbols, digits)
            if f is not None and f == 0:
                continue
            rep = prog.representative(child)
            rhs.append((f, None if prog.is_output(rep) else rep))
        if gate in prog.factor:
            rhs = [(("neuron", symbols[prog.factor[gate]]), None)] + rhs
        equations.append((gate, rhs))
    return prog, equations


def render_equations(
    prog: GateProgram, equations: list[tuple[Gate, list]], latex: bool = False
) -> str:
    """Text (or LaTeX ``aligned``) of a straight-line program."""
    var = prog.circuit.variables
    lines = []
    for gate, rhs in equations:
        lhs = prog.gate_latex(gate) if latex else str(prog.gate_symbol(gate))
        head, body = "", []
        for f, child in rhs:
            if isinstance(f, tuple):
                head = _sym_text(f[1], var, latex)
                continue
            parts = [] if f is None else [_factor_text(f, var, latex)]
            if child is not None:
                parts.append(prog.gate_latex(child) if latex else str(prog.gate_symbol(child)))
            body.append((" " if latex else "*").join(parts) or "1")
        total = _join(body)
        if head:
            total = (f"{head} \\left({total}\\right)" if latex else f"{head}*({total})")
        lines.append(f"{lhs} &= {total} \\\\" if latex else f"{lhs} = {total}")
    if latex:
        return "\\begin{aligned}\n" + "\n".join(lines) + "\n\\end{aligned}"
    return "\n".join(lines)


def _join(parts: list[str]) -> str:
    """``a + b - c`` from the terms ``a``, ``b``, ``-c``."""
    if not parts:
        return "0"
    out = parts[0]
    for p in parts[1:]:
        out += f" - {p[1:]}" if p.startswith("-") else f" + {p}"
    return out


def _sym_text(sym: sympy.Symbol, var: Variables, latex: bool) -> str:
    return var.latex(var.id_of(sym.name)) if latex else sym.name


def _factor_text(f: Any, var: Variables, latex: bool) -> str:
    if isinstance(f, sympy.Symbol):
        return _sym_text(f, var, latex)
    if latex:
        return to_latex(f, var)
    return str(f)


# ---------------------------------------------------------------------------- polynomials
def polynomial_to_sympy(poly: Polynomial, digits: int | None = None) -> sympy.Expr:
    """An expanded :class:`~provgraph.symbolic.polynomial.Polynomial` as a sympy expression."""
    var = poly.circuit.variables
    ids = poly.variable_ids
    symbols = dict(zip(ids, _bulk_symbols(var, ids)))
    terms = []
    for mono, c in poly.terms.items():
        if isinstance(c, (int, np.integer)):
            num = sympy.Integer(int(c))
        else:
            num = sympy.Float(float(c), digits) if digits else sympy.Float(float(c))
        factors = [symbols[v] for v in mono]
        terms.append(sympy.Mul(num, *factors) if num != 1 else sympy.Mul(*factors))
    return sympy.Add(*terms)


def to_latex(expr: Any, variables: Variables) -> str:
    """LaTeX of an expression over provenance variables (``x^{(L)}_{j,k}``, …)."""
    names = {}
    for s in getattr(expr, "free_symbols", ()):
        try:
            names[s] = variables.latex(variables.id_of(s.name))
        except ProvgraphError:
            continue
    return sympy.latex(expr, symbol_names=names)


# ---------------------------------------------------------------------------- homomorphism
def evaluate_expr(
    expr: Any,
    semiring: str | Semiring,
    valuation: Mapping[Any, Any] | Callable[[str], Any],
) -> Any:
    """The image of a sympy expression over ℕ[X] in ``semiring`` under ``valuation``.

    Symbols map through ``valuation`` (a mapping keyed by symbol or name, or a function of the
    name); natural numbers to repeated ⊕ of one; ``+`` to ⊕, ``*`` to ⊗, powers to repeated ⊗.
    Shared subexpressions (a circuit's DAG) are evaluated once.
    """
    k = resolve_semiring(semiring)

    def value_of(sym: sympy.Symbol) -> Any:
        if callable(valuation):
            return valuation(sym.name)
        if sym in valuation:
            return valuation[sym]
        if sym.name in valuation:
            return valuation[sym.name]
        raise ProvgraphError(f"the valuation gives no value to {sym.name}")

    memo: dict[int, Any] = {}

    def walk(node: Any) -> Any:
        key = id(node)
        if key in memo:
            return memo[key]
        if node.is_Symbol:
            out = value_of(node)
        elif node.is_Number:
            out = coefficient(k, node if node.is_Integer else float(node))
        elif node.is_Add:
            out = k.zero
            for a in node.args:
                out = k.plus(out, walk(a))
        elif node.is_Mul:
            out = k.one
            for a in node.args:
                out = k.times(out, walk(a))
        elif node.is_Pow and node.exp.is_Integer:
            out = repeated_times(k, walk(node.base), int(node.exp))
        else:
            raise ProvgraphError(f"cannot evaluate {type(node).__name__} in a semiring")
        memo[key] = out
        return out

    return walk(sympy.sympify(expr))


def dag_size(exprs: Sequence[Any]) -> int:
    """Distinct nodes (by identity) of a set of expressions that share subexpressions."""
    seen: set[int] = set()
    stack = list(exprs)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(getattr(node, "args", ()))
    return len(seen)
