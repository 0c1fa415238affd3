"""The ``polynomial`` and ``specialize`` commands (symbolic provenance).

``provgraph polynomial MODEL INPUT`` prints the provenance of a layer's neurons for one class:
by default as a circuit (one equation per gate, size O(edges)), with ``--expand`` as expanded
polynomials (refused past ``--budget`` monomials). ``provgraph specialize MODEL INPUT`` builds
the circuit once and evaluates it in several semirings, printing one table and writing one
``.npz`` per semiring.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.cli.options import count_at_least, rule_of
from provgraph.errors import InputError, ProvgraphError

DEFAULT_SEMIRINGS = "real,boolean,counting,viterbi,tropical,fuzzy"


POLYNOMIAL_OPTIONS = ("target", "rule", "input_shape", "max_memory", "output_name")
SPECIALIZE_OPTIONS = ("target", "rule", "theta", "input_shape", "max_memory", "output_name")


def add_polynomial_arguments(p: argparse.ArgumentParser) -> None:
    """``polynomial``'s own arguments (the shared ones are in :data:`POLYNOMIAL_OPTIONS`)."""
    _add_model_and_input(p)
    p.add_argument("--vars", choices=("edges", "neurons"), default="edges",
                   help="edges: one variable per edge, ℕ[X] (default); neurons: one variable "
                   "per hidden neuron, real coefficients (what-if pruning)")
    p.add_argument("--expand", action="store_true", help="expand into polynomials")
    p.add_argument("--latex", action="store_true", help="print LaTeX instead of text")
    p.add_argument("--layer", default=None,
                   help="tensor (or op, meaning its output) whose neurons to show (default: input)")
    p.add_argument("--neuron", default=None,
                   help="comma-separated flat neuron indices of that layer (default: all)")
    p.add_argument("--real-coefficients", action="store_true",
                   help="with --vars edges: the real Θ-values as coefficients (rule: --rule, "
                   "default lrp0)")
    p.add_argument("--budget", type=count_at_least(0), default=None,
                   help="largest number of monomials --expand may produce (default 100000)")
    p.add_argument("--digits", type=count_at_least(1), default=4,
                   help="significant digits of coefficients")
    p.add_argument("--table", action="store_true", help="also print the variable table")
    p.add_argument("--out", default=None, help="write the output to this file")


def add_specialize_arguments(p: argparse.ArgumentParser) -> None:
    """``specialize``'s own arguments (the shared ones are in :data:`SPECIALIZE_OPTIONS`)."""
    _add_model_and_input(p)
    p.add_argument("--semirings", default=DEFAULT_SEMIRINGS,
                   help=f"comma-separated semirings (default {DEFAULT_SEMIRINGS}; also why, "
                   "posbool, lineage, bx, trio, nx on small networks)")
    p.add_argument("--out", default="out/specialize",
                   help="folder of the .npz files (default out/specialize)")
    p.add_argument("--no-save", action="store_true", help="do not write .npz files")
    p.add_argument("--budget", type=count_at_least(0), default=None,
                   help="path terms a provenance semiring may hold (default 200000)")


def _add_model_and_input(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")
    p.add_argument("input", help="input sample: .npy, .npz, .png or .jpg")
    p.add_argument("--sample", type=int, default=0, help="sample of a batch input (default 0)")


def _graph(args: argparse.Namespace) -> Any:
    from provgraph.api import annotate, load
    from provgraph.io.inputs import read_input
    from provgraph.model.trace import as_batch

    net = load(args.model, output=args.output_name, input_shape=args.input_shape,
        max_memory=args.max_memory)
    x = as_batch(net, read_input(args.input, net))
    if not 0 <= args.sample < len(x):
        raise InputError(f"--sample {args.sample} is out of range: the input has "
                         f"{len(x)} sample(s)")
    return annotate(net, x[args.sample])


def _neurons(spec: str | None) -> list[int] | None:
    if spec is None:
        return None
    try:
        return [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise ProvgraphError(f"--neuron expects comma-separated integers, got {spec!r}") from None


def _emit(text: str, out: str | None) -> None:
    if out is None:
        print(text)
        return
    from provgraph.io.atomic import atomic_write

    atomic_write(out, lambda fh: fh.write((text + "\n").encode()))
    print(f"written to {out}")


def run_polynomial(args: argparse.Namespace) -> int:
    """Print (or write) the circuit or the expanded polynomials of a layer's neurons."""
    from provgraph.symbolic import DEFAULT_MONOMIAL_BUDGET, Circuit, expand, resolve_tensor

    graph = _graph(args)
    start = time.perf_counter()
    circuit = Circuit(graph, args.target)
    tensor = resolve_tensor(circuit, args.layer)
    neurons = _neurons(args.neuron)
    if neurons is not None:
        size = graph.network.size(tensor)
        bad = [j for j in neurons if not 0 <= j < size]
        if bad:
            raise ProvgraphError(f"--neuron {bad[0]} is out of range for {tensor!r} ({size})")
    if args.vars == "neurons":
        form = "neurons"
    else:
        form = "real" if args.real_coefficients else "natural"
    target = circuit.targets[0]
    lines = [
        f"% provenance of {tensor!r} for class {target} (predicted {graph.predicted_class}) in "
        f"{graph.network.name}; form {form}; circuit {circuit.num_gates:,} gates, "
        f"{circuit.num_wires:,} wires",
    ]
    ids: set[int] = set()
    if args.expand:
        budget = DEFAULT_MONOMIAL_BUDGET if args.budget is None else args.budget
        polys = expand(circuit, tensor, neurons, form=form, rule=rule_of(args), budget=budget)
        for p in polys:
            body = p.latex(args.digits) if args.latex else p.text(args.digits)
            lines.append(f"% {tensor}[{p.neuron}]: {p.num_monomials:,} monomials")
            lines.append(f"P_{{{p.neuron}}} = {body}" if args.latex else f"P[{p.neuron}] = {body}")
            ids.update(p.variable_ids)
    else:
        from provgraph.symbolic import sympy_forms as sb

        prog, equations = sb.circuit_equations(circuit, tensor, neurons, form=form,
                                               digits=args.digits, rule=rule_of(args))
        lines.extend("% " + line for line in prog.legend().splitlines())
        lines.append(sb.render_equations(prog, equations, latex=args.latex))
        if args.table:
            ids.update(v for terms in prog.terms.values() for v, _ in terms if v is not None)
            ids.update(prog.factor.values())
    if args.table:
        if form == "neurons":
            ids = {v for v in ids if circuit.variables.is_neuron(v)}
        lines.append(circuit.variables.table(sorted(ids), limit=None))
    lines.append(f"% time: {time.perf_counter() - start:.3f} s")
    _emit("\n".join(lines), args.out)
    return 0


def _summary(k: Any, values: np.ndarray) -> tuple[str, str, str]:
    """(⊕ over the inputs, number of nonzero inputs, best input) of an input relevance map."""
    flat = values.reshape(-1)
    total = k.sum(k.asarray(flat)) if len(flat) else k.zero
    if isinstance(total, np.ndarray):
        total = total.reshape(-1)[0]
    zero = k.zero
    nonzero = [i for i, v in enumerate(flat.tolist()) if not _equal(v, zero)]
    fmt = getattr(k, "format", None)

    def show(v: Any) -> str:
        text = fmt(v) if fmt is not None else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return text if len(text) <= 28 else text[:25] + "..."

    if not nonzero:
        return show(total), "0", "-"
    if fmt is not None:  # provenance semirings: the input with the largest annotation
        best = max(nonzero, key=lambda i: len(flat[i]) if flat[i] is not None else 0)
    else:
        from provgraph.apps.ranking import ranked_indices

        candidates = set(nonzero)
        best = next(int(i) for i in ranked_indices(k, flat) if int(i) in candidates)
    return show(total), str(len(nonzero)), f"{best}={show(flat[best])}"


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def run_specialize(args: argparse.Namespace) -> int:
    """Specialise one circuit into several semirings; print a table, write one .npz each."""
    from provgraph.algebra.composites import get_composite
    from provgraph.algebra.semirings import BooleanSemiring
    from provgraph.algebra.theta import get_theta
    from provgraph.symbolic import DEFAULT_SYMBOLIC_BUDGET, Circuit, is_symbolic, resolve_semiring
    from provgraph.symbolic import specialize as specialize_circuit

    rule = rule_of(args)
    names = [s.strip() for s in args.semirings.split(",") if s.strip()]
    if not names:
        raise ProvgraphError("--semirings is empty")
    semirings = [resolve_semiring(n) for n in names]
    budget = DEFAULT_SYMBOLIC_BUDGET if args.budget is None else args.budget
    graph = _graph(args)
    t0 = time.perf_counter()
    circuit = Circuit(graph, args.target)
    build = time.perf_counter() - t0
    rows = []
    for k in semirings:
        t = time.perf_counter()
        rel = specialize_circuit(circuit, k, rule=rule, theta=args.theta, budget=budget)
        elapsed = time.perf_counter() - t
        kk = BooleanSemiring() if is_symbolic(k) else k
        composite = get_composite(rule, kk)
        theta = "filter " if is_symbolic(k) else ""
        theta += repr(get_theta(args.theta, kk)) if args.theta or not is_symbolic(k) else \
            "Threshold(theta=1e-09)"
        total, count, best = _summary(k, rel.input)
        rule_text = composite.name if composite.entries else repr(composite.default)
        rows.append((k.name, rule_text, theta, total, count, best,
                     f"{1000 * elapsed:.1f}"))
        if not args.no_save:
            rel.save(Path(args.out) / f"{k.name}.npz")
    header = ("semiring", "rule", "Θ", "⊕ inputs", "nonzero", "best input", "ms")
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    print(f"{graph.network.name}: class {circuit.targets[0]} (predicted {graph.predicted_class});"
          f" circuit {circuit.num_gates:,} gates, {circuit.num_wires:,} wires, built in "
          f"{1000 * build:.1f} ms")
    for r in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    if not args.no_save:
        print(f"relevance written to {args.out}/<semiring>.npz")
    return 0

