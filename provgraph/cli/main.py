"""The ``provgraph`` command: explain, inspect, demo, polynomial, specialize."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from provgraph.apps.ranking import format_top_inputs
from provgraph.cli.batch import add_batch_options, backend_option, run_batch
from provgraph.errors import ProvgraphError

EXIT_USAGE = 2


def _add_aggregation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=int, default=None, help="class index (default: predicted)")
    p.add_argument(
        "--semiring",
        default="real",
        help="real, boolean, counting, viterbi, tropical or fuzzy (default: real)",
    )
    p.add_argument(
        "--theta",
        default=None,
        help="Θ: a threshold number, 'identity', 'one' or 'neglog' (default: per semiring)",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--rule",
        default=None,
        help="lrp0, epsilon[:ε], gamma[:γ], zb, maxnorm, flat, wsquare (default: per semiring)",
    )
    group.add_argument(
        "--composite", default=None, help="layered or epsilon_gamma_box"
    )
    p.add_argument(
        "--init", default="one", help="output initialisation: one (K-LRP) or logit (classic)"
    )
    p.add_argument("--contrast", type=int, default=None, help="explain target against this class")
    p.add_argument(
        "--backend",
        default="auto",
        help="scipy, torch or auto (default: scipy within its edge budget, torch above)",
    )
    p.add_argument("--output-name", default=None, help="logits tensor (default: found)")


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3,48,192") from None


def _add_input_shape_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-shape",
        default=None,
        type=_shape,
        help="one sample's shape, e.g. 3,48,192 (needed when the model's is dynamic)",
    )


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (``provgraph: error: …``, exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"provgraph: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="provgraph",
        description="Explain ONNX classifiers with semiring provenance (K-LRP).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("explain", help="explain one input (or each sample of a .npy batch)")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("input", help="input sample: .npy, .npz, .png or .jpg")
    _add_aggregation_options(p)
    p.add_argument("--out", default=None, help="write a heatmap (PNG) here")
    p.add_argument("--save", default=None, help="write every tensor's relevance (.npz) here")
    p.add_argument("--top", type=int, default=5, help="print the N most relevant inputs")
    _add_input_shape_option(p)
    add_batch_options(p)

    p = sub.add_parser("inspect", help="ops, shapes, sizes and fidelity of a model")
    p.add_argument("model", help="ONNX model file")
    p.add_argument("--output-name", default=None, help="logits tensor (default: found)")
    _add_input_shape_option(p)

    p = sub.add_parser("demo", help="explain the bundled MNIST classifier in four semirings")
    p.add_argument("--out", default="out/demo", help="folder for the heatmaps (default: out/demo)")
    p.add_argument("--digits", type=int, default=4, help="how many sample digits (1-10)")

    from provgraph.cli.symbolic import add_subcommands

    add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            return handler(args)
        if args.command == "explain":
            return cmd_explain(args)
        if args.command == "inspect":
            return cmd_inspect(args)
        if args.command == "demo":
            from provgraph.apps.demo import run_demo

            run_demo(Path(args.out), args.digits)
            return 0
    except ProvgraphError as exc:
        print(f"provgraph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("provgraph: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


def _init_spec(args: argparse.Namespace):  # noqa: ANN202
    from provgraph.engine.initialisation import Contrastive

    if args.contrast is not None:
        return Contrastive(args.contrast, scale=args.init if args.init == "logit" else "one")
    return args.init


def cmd_explain(args: argparse.Namespace) -> int:
    from provgraph.api import load
    from provgraph.engine.annotation import AnnotatedGraph
    from provgraph.io.heatmaps import save_heatmap
    from provgraph.io.inputs import read_input
    from provgraph.model.trace import forward_trace

    if args.batch is not None:
        return run_batch(args, _init_spec(args))
    net = load(args.model, output=args.output_name, input_shape=args.input_shape)
    x = read_input(args.input, net)
    start = time.perf_counter()
    trace = forward_trace(net, x)
    n = trace.batch_size
    for i in range(n):
        graph = AnnotatedGraph(net, trace.sample(i))
        rel = graph.aggregate(
            args.semiring,
            rule=args.composite or args.rule,
            theta=args.theta,
            init=_init_spec(args),
            target=args.target,
            backend=backend_option(args),
        )
        suffix = f"_{i}" if n > 1 else ""
        prefix = f"sample {i}: " if n > 1 else ""
        _print_explanation(rel, graph.predicted_class, args.top, prefix, graph)
        if args.out:
            path = _with_suffix(args.out, suffix)
            save_heatmap(rel, path, sample=trace.flat(net.input_name, i))
            print(f"heatmap written to {path}")
        if args.save:
            path = _with_suffix(args.save, suffix)
            rel.save(path)
            print(f"relevance written to {path}")
    print(f"time: {time.perf_counter() - start:.3f} s")
    return 0


def _with_suffix(path: str, suffix: str) -> Path:
    p = Path(path)
    return p.with_name(p.stem + suffix + p.suffix)


def _print_explanation(rel, predicted: int, top: int, prefix: str, graph=None) -> None:  # noqa: ANN001
    k = rel.semiring
    logits = rel.logits
    print(
        f"{prefix}predicted class {predicted} (logit {logits[predicted]:.4g}); "
        f"explaining class {rel.target} in the {k.name} semiring"
    )
    print(f"  rule: {rel.info['rule']}  Θ: {rel.info['theta']}  init: {rel.info['init']}")
    cells = format_top_inputs(rel, top, graph)
    print(f"  most relevant inputs: {cells}")
    print(f"  absorbed by bias sources: {rel.bias_total()}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from provgraph.apps.inspection import inspect_report

    text, problem = inspect_report(
        args.model, output=args.output_name, input_shape=args.input_shape
    )
    print(text)
    if problem is not None:
        raise ProvgraphError(problem)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
