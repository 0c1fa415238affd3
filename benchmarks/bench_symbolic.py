"""Symbolic provenance on the bundled 784-300-100-10 MNIST MLP: timings of the two targets.

1. The provenance circuit of one class, as provgraph's circuit and as a shared sympy DAG
   (target: ≤ 10 s).
2. Specialising that circuit into 5 semirings against the direct numeric computation of the
   same 5 with the scipy reference backend (target: ≤ 2×), cold (fresh annotated graph: rule
   weights computed inside the timing) and warm (rule weights already cached).

Run: ``.venv/bin/python benchmarks/bench_symbolic.py [--repeat N]``. Prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from provgraph.api import load
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.backends import BACKENDS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.model.trace import forward_trace
from provgraph.symbolic import Circuit, edge_valuation, expand, specialize
from provgraph.symbolic import sympy_forms as sb

SEMIRINGS = ["real", "boolean", "counting", "viterbi", "tropical"]


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="repetitions (median reported)")
    args = parser.parse_args()
    net = load(bundled_model_path())
    x, _ = bundled_samples()
    trace = forward_trace(net, x[4])

    def fresh() -> AnnotatedGraph:
        return AnnotatedGraph(net, trace)

    rows: list[tuple[str, str]] = []
    graph = fresh()
    target = graph.predicted_class
    # cold: a fresh annotated graph, so the weight matrices are built inside the timing
    t_circuit, circuit = timed(lambda: Circuit(fresh(), target), args.repeat)
    graph = circuit.graph
    rows.append(("circuit (provgraph), one class, cold", f"{t_circuit * 1000:.1f} ms"))

    inp = net.input_name
    t_dag, dag = timed(lambda: sb.circuit_to_sympy(circuit, inp), max(1, args.repeat // 2))
    nodes = sb.dag_size(list(dag.values()))
    rows.append(("sympy DAG of all 784 input gates", f"{t_dag:.2f} s"))
    rows.append(("  circuit + sympy DAG (target ≤ 10 s)", f"{t_circuit + t_dag:.2f} s"))
    rows.append(("  distinct DAG nodes / wires", f"{nodes:,} / {circuit.num_wires:,}"))

    # sanity: the DAG evaluated in ℝ under x_e ↦ Θ(r_e) is the real relevance
    values = edge_valuation(circuit, "real")
    valuation = dict(zip(circuit.variables.names(0, len(values)), values.tolist()))
    real = graph.aggregate("real", target=target).tensors[inp][:, 0]
    worst = max(abs(sb.evaluate_expr(dag[j], "real", valuation) - real[j]) for j in (300, 400))
    rows.append(("  |DAG in ℝ − aggregate| (2 pixels)", f"{worst:.1e}"))

    def equations() -> str:
        prog, eqs = sb.circuit_equations(circuit, inp)
        return sb.render_equations(prog, eqs)

    t_text, text = timed(equations, 1)
    rows.append(("circuit as text (straight-line program)", f"{t_text:.2f} s, {len(text):,} chars"))
    t_expand, polys = timed(lambda: expand(circuit, neurons=[400]), 1)
    rows.append(("expand one pixel in ℕ[X]", f"{t_expand:.2f} s, {len(polys[0]):,} monomials"))

    def direct(g: AnnotatedGraph, backend: str = "scipy") -> None:
        for s in SEMIRINGS:
            g.aggregate(s, target=target, backend=backend)

    def symbolic(g: AnnotatedGraph, c: Circuit | None = None) -> None:
        c = Circuit(g, target) if c is None else c
        for s in SEMIRINGS:
            specialize(c, s)

    t_direct_cold, _ = timed(lambda: direct(fresh()), args.repeat)
    t_sym_cold, _ = timed(lambda: symbolic(fresh()), args.repeat)
    warm = fresh()
    direct(warm)
    warm_circuit = Circuit(warm, target)
    t_direct_warm, _ = timed(lambda: direct(warm), args.repeat)
    t_sym_warm, _ = timed(lambda: symbolic(warm, warm_circuit), args.repeat)
    label = "+".join(SEMIRINGS)
    rows.append((f"direct, cold ({label})", f"{t_direct_cold * 1000:.1f} ms"))
    rows.append(("circuit built + specialised, cold", f"{t_sym_cold * 1000:.1f} ms"))
    rows.append(("  ratio cold (target ≤ 2×)", f"{t_sym_cold / t_direct_cold:.2f}×"))
    rows.append(("direct, warm (cached rule weights)", f"{t_direct_warm * 1000:.1f} ms"))
    rows.append(("specialise built circuit, warm", f"{t_sym_warm * 1000:.1f} ms"))
    rows.append(("  ratio warm (target ≤ 2×)", f"{t_sym_warm / t_direct_warm:.2f}×"))
    for backend in BACKENDS:
        if backend != "scipy":
            t_other, _ = timed(lambda b=backend: direct(warm, b), args.repeat)
            rows.append((f"  for reference: direct, warm, {backend} backend",
                         f"{t_other * 1000:.1f} ms"))

    width = max(len(name) for name, _ in rows)
    print(f"{net.name}: {net.num_edges():,} edges, class {target}, median of {args.repeat}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
