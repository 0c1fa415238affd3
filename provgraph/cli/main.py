"""The ``provgraph`` command: one table of commands, one parser, one dispatch.

Each entry of :data:`COMMANDS` names the command's handler, the function that adds its own
arguments, and the shared options (:mod:`provgraph.cli.options`) it takes. Handlers import the
heavy parts (torch, sympy, matplotlib, onnx) when they run, so ``provgraph --help`` stays fast.
Errors a user can cause (:class:`~provgraph.errors.ProvgraphError`, usage mistakes) print one
line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from provgraph.cli import (
    dataset_job,
    evaluate,
    explain,
    explain_text,
    masks,
    paths,
    prune,
    symbolic,
)
from provgraph.cli.options import add_shared_options, add_verbosity_options
from provgraph.errors import ProvgraphError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """One ``provgraph`` subcommand: its handler, its own arguments and its shared options."""

    help: str
    handler: Handler
    add_arguments: Callable[[argparse.ArgumentParser], None]
    options: tuple[str, ...] = ()
    description: str | None = None


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX model file")


def run_inspect(args: argparse.Namespace) -> int:
    """Print the model report; a model provgraph cannot explain is an error after the report."""
    from provgraph.apps.inspection import inspect_report

    text, problem = inspect_report(
        args.model, output=args.output_name, input_shape=args.input_shape,
        max_memory=args.max_memory
    )
    print(text)
    if problem is not None:
        raise ProvgraphError(problem)
    return 0


def _demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="folder for the heatmaps (default: out/demo)")
    p.add_argument("--digits", type=int, default=4, help="how many sample digits (1-10)")


def run_demo(args: argparse.Namespace) -> int:
    """Explain the bundled digits in four semirings and write the heatmaps."""
    from pathlib import Path

    from provgraph.apps.demo import run_demo as demo
    from provgraph.cli.options import show_progress

    demo(Path(args.out), args.digits, progress=show_progress(args))
    return 0


COMMANDS: dict[str, Command] = {
    "explain": Command(
        "explain one input (or each sample of a .npy batch)",
        explain.run,
        explain.add_arguments,
        explain.OPTIONS,
    ),
    "explain-text": Command(
        "relevance per token of a text classifier (tokenizer.json)",
        explain_text.run,
        explain_text.add_arguments,
        explain_text.OPTIONS,
    ),
    "inspect": Command(
        "ops, shapes, sizes and fidelity of a model",
        run_inspect,
        _inspect_arguments,
        ("input_shape", "max_memory", "output_name"),
    ),
    "demo": Command(
        "explain the bundled MNIST classifier in four semirings",
        run_demo,
        _demo_arguments,
    ),
    "polynomial": Command(
        "symbolic provenance of a layer's neurons: circuit or expanded polynomial",
        symbolic.run_polynomial,
        symbolic.add_polynomial_arguments,
        symbolic.POLYNOMIAL_OPTIONS,
        "Print the provenance of the neurons of a layer for one class, as a circuit (one "
        "equation per gate) or, with --expand, as expanded polynomials.",
    ),
    "specialize": Command(
        "one annotated graph, several semirings: circuit built once, specialised per semiring",
        symbolic.run_specialize,
        symbolic.add_specialize_arguments,
        symbolic.SPECIALIZE_OPTIONS,
        "Build the provenance circuit once and evaluate it in several semirings; print one "
        "table and write one .npz of relevance per semiring.",
    ),
    "masks": Command(
        "class-wise relevance masks over a dataset (Boolean, Counting, real), evaluated",
        masks.run,
        masks.add_arguments,
        masks.OPTIONS,
        "Per class, the Boolean relevance frequency of every pixel, masks at frequency "
        "thresholds, AND/OR masks, and the same-size masks of Counting and real means; each "
        "evaluated by keeping or removing its pixels against random masks.",
    ),
    "evaluate": Command(
        "faithfulness per semiring and rule: feature removal, pixel flipping, AOPC, SRG",
        evaluate.run,
        evaluate.add_arguments,
        evaluate.OPTIONS,
        "Seed 004's feature removal and input pruning, pixel-flipping and region-perturbation "
        "curves (MoRF, LeRF, random), AOPC and SRG, as a table of semiring/rule rows.",
    ),
    "prune": Command(
        "rank neurons, filters, inputs and weights by mean relevance; prune; measure",
        prune.run,
        prune.add_arguments,
        prune.OPTIONS,
        "Rank the units of a classifier by their mean relevance over a training set (and by "
        "weight norms, mean activation and at random), prune them progressively, record test "
        "loss and accuracy, and write the curves and a smaller ONNX model.",
    ),
    "paths": Command(
        "the k best provenance paths from the explained class to a neuron (k-best semiring)",
        paths.run,
        paths.add_arguments,
        paths.OPTIONS,
        "List the k highest-scoring paths from the explained class to an input element or "
        "neuron, with each edge's annotation, and draw the annotated network.",
    ),
    "explain-dataset": Command(
        "per-class relevance means and frequencies over a dataset, in-process or on a cluster",
        dataset_job.run,
        dataset_job.add_arguments,
        dataset_job.OPTIONS,
        "Explain every sample of a dataset for its label and print, per class, the mean "
        "relevance and how often each input is relevant; --cluster runs it on Dask workers.",
    ),
}


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (``provgraph: error: …``, exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"provgraph: error: {message} (see '{self.prog} --help')\n")


def _version() -> str:
    import provgraph

    return f"provgraph {provgraph.__version__}"


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in :data:`COMMANDS`."""
    parser = _Parser(
        prog="provgraph",
        description="Explain ONNX classifiers with semiring provenance (K-LRP).",
    )
    parser.add_argument("--version", action="version", version=_version())
    add_verbosity_options(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description or None)
        command.add_arguments(p)
        add_shared_options(p, command.options)
        add_verbosity_options(p, suppress=True)
    return parser


def configure_logging(quiet: bool, verbose: int) -> None:
    """Send the ``provgraph`` loggers to stderr: INFO by default, WARNING with -q, DEBUG with -v.

    Library modules only call ``logging.getLogger(__name__)``; the level and the handler are the
    command line's choice.
    """
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logger = logging.getLogger("provgraph")
    for handler in list(logger.handlers):
        if getattr(handler, "provgraph_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("provgraph: %(message)s"))
    handler.provgraph_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def dispatch(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run its command; errors propagate (see :func:`main`)."""
    args = build_parser().parse_args(argv)
    configure_logging(args.quiet, args.verbose)
    return COMMANDS[args.command].handler(args)


def main(argv: Sequence[str] | None = None) -> int:
    """The console entry point: run the command; user mistakes as one line and exit status 2."""
    try:
        return dispatch(argv)
    except ProvgraphError as exc:
        print(f"provgraph: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("provgraph: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
