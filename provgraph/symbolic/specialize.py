"""Specialisation: a circuit or polynomial evaluated in a semiring through the homomorphism.

A valuation sends every edge variable to its Θ-value in K, computed from the annotated graph's
cached rule weights (nothing is recomputed per semiring); the homomorphism sends ℕ coefficients
to repeated ⊕ and exponents to repeated ⊗. Provenance semirings (Why(X), PosBool(X), …) send each
kept edge to its own variable instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from provgraph.algebra.composites import Composite, get_composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import BooleanSemiring, Semiring, get_semiring
from provgraph.algebra.theta import Theta, Threshold, get_theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import InitSpec
from provgraph.engine.relevance import Relevance
from provgraph.errors import BudgetError, ProvgraphError
from provgraph.symbolic.circuit import Circuit
from provgraph.symbolic.provenance_semirings import get_provenance_semiring

DEFAULT_SYMBOLIC_BUDGET = 200_000
ThetaSpec = Theta | str | float | Callable | None


def resolve_semiring(semiring: str | Semiring) -> Semiring:
    """A built-in semiring, a provenance semiring (``why``, ``posbool``, ``lineage``, ``bx``,
    ``trio``, ``nx``) or a user-defined instance."""
    if isinstance(semiring, str):
        symbolic = get_provenance_semiring(semiring)
        if symbolic is not None:
            return symbolic
    try:
        return get_semiring(semiring)
    except ProvgraphError:
        raise ProvgraphError(
            f"unknown semiring {semiring!r}; known: real, boolean, counting, viterbi, tropical, "
            "fuzzy, why, posbool, lineage, bx, trio, nx"
        ) from None


def is_symbolic(semiring: Semiring) -> bool:
    return bool(getattr(semiring, "symbolic", False))


# ---------------------------------------------------------------------------- repeated ⊕ / ⊗
def repeated_plus(k: Semiring, a: Any, n: int) -> Any:
    """``a ⊕ … ⊕ a`` (``n`` terms) by doubling; the image of the coefficient ``n`` times ``a``."""
    if n < 0:
        raise ProvgraphError(f"coefficient {n} is not a natural number")
    if n == 0:
        return k.zero
    if k.idempotent:
        return a
    result, base = k.zero, a
    while n:
        if n & 1:
            result = k.plus(result, base)
        n >>= 1
        if n:
            base = k.plus(base, base)
    return result


def repeated_times(k: Semiring, a: Any, n: int) -> Any:
    """``a ⊗ … ⊗ a`` (``n`` factors) by squaring; the image of the exponent ``n``."""
    if n < 0:
        raise ProvgraphError(f"exponent {n} is negative")
    result, base = k.one, a
    while n:
        if n & 1:
            result = k.times(result, base)
        n >>= 1
        if n:
            base = k.times(base, base)
    return result


def coefficient(k: Semiring, c: Any) -> Any:
    """The image of a coefficient: ``1 ⊕ … ⊕ 1`` for a natural ``c``; a real ``c`` only in ℝ."""
    if isinstance(c, (int, np.integer)) or (hasattr(c, "is_Integer") and c.is_Integer):
        return repeated_plus(k, k.one, int(c))
    if k.name == "real":
        return float(c)
    raise ProvgraphError(
        f"the coefficient {c} is not a natural number: a polynomial with real coefficients can "
        "only be evaluated in the real semiring"
    )


# ---------------------------------------------------------------------------- valuations
def edge_valuation(
    circuit: Circuit,
    semiring: str | Semiring,
    rule: Composite | Rule | str | None = None,
    theta: ThetaSpec = None,
) -> np.ndarray:
    """Every edge variable's value in K: ``Θ(r_e)`` with the rule and Θ of its layer.

    Rule and Θ are resolved as by :func:`provgraph.engine.driver.aggregate` (``None``: the
    semiring's defaults). For a provenance semiring an edge gets its own variable when Θ keeps it
    (in the Boolean semiring; default threshold 1e-9 on LRP-0 weights, ``theta="one"`` keeps
    every edge) and K's zero otherwise.
    """
    k = resolve_semiring(semiring)
    graph = circuit.graph
    symbolic = is_symbolic(k)
    kk = BooleanSemiring() if symbolic else k
    composite = get_composite(rule, kk)
    base = get_theta(theta, kk) if theta is not None or not symbolic else Threshold(1e-9)
    var = circuit.variables
    out = np.empty(var.n_edges, dtype=object) if symbolic else kk.zeros(var.n_edges)
    for step in circuit.steps:
        layer = step.layer
        if layer is None:
            continue
        op_theta = composite.theta_for(layer, base)
        matrices, r_bias = graph.edge_weights(step.op, composite.rule_for(layer))
        parts = [(w.var_start, m.data) for w, m in zip(step.wires, matrices)]
        if step.bias_start is not None and r_bias is not None:
            parts.append((step.bias_start, r_bias))
        for start, r in parts:
            values = op_theta(np.asarray(r, dtype=np.float64), kk, layer)
            if symbolic:
                values = [k.variable(var.name(start + p)) if keep else k.zero
                          for p, keep in enumerate(np.asarray(values, dtype=bool))]
                out[start : start + len(values)] = _objects(values)
            else:
                out[start : start + len(values)] = values
    return out


def neuron_valuation(
    circuit: Circuit,
    semiring: str | Semiring,
    pruned: Mapping[str | int, Iterable[int]] | Iterable[int] | None = None,
) -> np.ndarray:
    """K's one for every neuron variable, K's zero for the ``pruned`` ones.

    ``pruned`` maps a linear op (name, output tensor or index among the linear ops) to the flat
    indices of its output neurons, or is an iterable of neuron-variable ids or names.
    """
    k = resolve_semiring(semiring)
    var = circuit.variables
    values = k.ones(var.n_neurons)
    for v in _pruned_ids(circuit, pruned):
        values[v - var.n_edges] = k.zero
    return values


def _pruned_ids(circuit: Circuit, pruned: Any) -> list[int]:
    var = circuit.variables
    if pruned is None:
        return []
    ids = []
    if isinstance(pruned, Mapping):
        ops = circuit.network.linear_ops
        for key, neurons in pruned.items():
            name = ops[key].name if isinstance(key, int) else key
            ids.extend(var.neuron_id(name, int(j)) for j in neurons)
        return ids
    for v in pruned:
        ids.append(var.id_of(v) if isinstance(v, str) else int(v))
        if not var.is_neuron(ids[-1]):
            raise ProvgraphError(f"{var.name(ids[-1])} is not a neuron variable")
    return ids


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


# ---------------------------------------------------------------------------- evaluation
def check_symbolic_budget(circuit: Circuit, k: Semiring, budget: int) -> None:
    """Provenance-semiring values grow with the paths: refuse when they would exceed ``budget``."""
    if not is_symbolic(k):
        return
    counts = circuit.path_counts
    total = sum(int(v) for name in circuit.tensors
                for v in counts.tensors.get(name, np.zeros(0)).reshape(-1))
    if total > budget:
        raise BudgetError(
            f"computing in {k.name} holds every path explicitly: {total:,} path terms over all "
            f"neurons, over the budget of {budget:,}; use the circuit form (build_circuit / "
            "`provgraph polynomial` without --expand) or raise the budget"
        )


def specialize(
    circuit: Circuit,
    semiring: str | Semiring,
    rule: Composite | Rule | str | None = None,
    theta: ThetaSpec = None,
    valuation: np.ndarray | None = None,
    neuron_values: np.ndarray | None = None,
    init: InitSpec = "one",
    budget: int = DEFAULT_SYMBOLIC_BUDGET,
) -> Relevance:
    """The circuit evaluated in ``semiring``: every neuron's (and bias source's) relevance.

    Parameters
    ----------
    circuit
        A :class:`Circuit` (built once per annotated graph and targets).
    semiring
        Built-in or provenance semiring name, or any :class:`Semiring` instance.
    rule, theta
        Rule/composite and Θ of the valuation (defaults per semiring, as ``aggregate``).
    valuation
        Edge values in K, overriding ``rule``/``theta`` (see :func:`edge_valuation`).
    neuron_values
        Neuron-variable values in K (see :func:`neuron_valuation`); ``None``: all one.
    init
        Output initialisation, as for ``aggregate``.
    budget
        Bound on the path terms a provenance semiring may hold.
    """
    k = resolve_semiring(semiring)
    check_symbolic_budget(circuit, k, budget)
    values = edge_valuation(circuit, k, rule, theta) if valuation is None else valuation
    info = {"rule": repr(get_composite(rule, BooleanSemiring() if is_symbolic(k) else k)),
            "theta": repr(theta) if theta is not None else "default"}
    return circuit.evaluate(k, values, neuron_values, init=init, info=info)


def specialize_many(
    graph: AnnotatedGraph | Circuit,
    semirings: Sequence[str | Semiring],
    target: int | Sequence[int] | None = None,
    rule: Composite | Rule | str | None = None,
    theta: ThetaSpec = None,
    budget: int = DEFAULT_SYMBOLIC_BUDGET,
) -> dict[str, Relevance]:
    """Several semirings' relevance from one annotated graph.

    The circuit is built once; each semiring only computes its valuation from the graph's cached
    rule weights and evaluates the circuit. Rules and Θ default per semiring.
    """
    circuit = graph if isinstance(graph, Circuit) else Circuit(graph, target)
    results: dict[str, Relevance] = {}
    for s in semirings:
        k = resolve_semiring(s)
        results[k.name] = specialize(circuit, k, rule=rule, theta=theta, budget=budget)
    return results


def what_if_pruned(
    circuit: Circuit,
    pruned: Mapping[str | int, Iterable[int]] | Iterable[int],
    semiring: str | Semiring = "real",
    rule: Composite | Rule | str | None = None,
    theta: ThetaSpec = None,
) -> Relevance:
    """Deletion propagation: relevance with the ``pruned`` hidden neurons' variables set to 0.

    Every path through a pruned neuron disappears; the annotations of the other edges stay those
    of the original forward pass. No new forward pass and no new rule weights are computed.
    """
    k = resolve_semiring(semiring)
    return specialize(circuit, k, rule=rule, theta=theta,
                      neuron_values=neuron_valuation(circuit, k, pruned))
