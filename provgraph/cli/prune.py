"""``provgraph prune``: rank units by mean relevance over a training set, prune, measure.

With no arguments it prunes the bundled MLP, ranked over the bundled digits' training split and
measured on the held-out split (:func:`provgraph.apps.pruning_run.run_pruning`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from provgraph.cli.options import count_at_least, job_options_of, rule_of, show_progress
from provgraph.errors import InputError

OPTIONS = ("semiring", "rule", "theta", "cluster")
BUNDLED_MODELS = ("mlp", "cnn")


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0,0.1,0.5"`` → ``(0.0, 0.1, 0.5)``, each in [0, 1); else a one-line usage error."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list like 0,0.1,0.5") from None
    if not values or any(not 0 <= v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every fraction must lie in [0, 1)")
    return values


def parse_fraction(text: str) -> float:
    """One fraction in [0, 1)."""
    if "," in text:
        raise argparse.ArgumentTypeError(f"{text!r}: give one fraction")
    return parse_fractions(text)[0]


def parse_scale(text: str) -> float:
    """``"1/255"`` or ``"0.5"``: a positive finite number."""
    try:
        num, _, den = text.partition("/")
        value = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number like 1/255") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: the scale must be positive")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``prune`` command's own arguments (the shared ones are in :data:`OPTIONS`)."""
    p.add_argument("--model", default="mlp",
                   help="ONNX model, or 'mlp' / 'cnn' for a bundled one (default: mlp)")
    p.add_argument("--data", default=None, help="labelled training set that ranks the units: "
                   "image folder, .npy or .npz (default: the bundled digits' training split)")
    p.add_argument("--test-data", default=None,
                   help="labelled test set (default: the bundled held-out digits)")
    p.add_argument("--scale", type=parse_scale, default=None,
                   help="preprocessing of --data/--test-data: multiply pixels by this (1/255)")
    p.add_argument("--samples", type=count_at_least(1), default=None,
                   help="training samples that rank the units (default: all)")
    p.add_argument("--test-samples", type=count_at_least(1), default=None,
                   help="test samples measured at each fraction (default: all)")
    p.add_argument("--scope", choices=("layer", "global"), default="layer",
                   help="prune the same fraction of every layer, or rank all units together")
    p.add_argument("--fractions", type=parse_fractions, default=None,
                   help="pruned fractions (default: 0,0.1,…,0.9)")
    p.add_argument("--weights", default="auto", help="dense node whose single weights are "
                   "also pruned by edge relevance; 'auto' (the last hidden dense layer) or 'none'")
    p.add_argument("--weight-samples", type=count_at_least(1), default=100,
                   help="training samples for the edge relevance (default 100)")
    p.add_argument("--export-fraction", type=parse_fraction, default=0.5,
                   help="fraction removed in the smaller model written (default 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random ranking")
    p.add_argument("--out", default="out/prune", help="output folder (default: out/prune)")


def bundled_or_file(spec: str) -> Path:
    from provgraph.apps.demo import bundled_cnn_path, bundled_model_path

    """``mlp`` / ``cnn``: a bundled model's path; else an existing file."""
    bundled = {"mlp": bundled_model_path, "cnn": bundled_cnn_path}
    if spec in bundled:
        return bundled[spec]()
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"{spec}: model not found (give an ONNX file, or 'mlp' or 'cnn')")
    return path


def _datasets(args: argparse.Namespace) -> tuple[Any, Any]:
    from provgraph.apps.preprocessing import Preprocessing
    from provgraph.apps.sources import bundled_mnist, open_dataset

    prep = Preprocessing(scale=args.scale) if args.scale is not None else None
    train = bundled_mnist("train", prep) if args.data is None else open_dataset(args.data, None,
                                                                                prep)
    test = bundled_mnist("test", prep) if args.test_data is None else open_dataset(
        args.test_data, None, prep)
    return train, test


def run(args: argparse.Namespace) -> int:
    """Run the pruning, write the outputs, print the accuracy table."""
    from provgraph.apps.pruning_run import run_pruning, write_pruning

    model = bundled_or_file(args.model)
    train, test = _datasets(args)
    weights = None if args.weights == "none" else args.weights
    result, smaller = run_pruning(
        model, train, test, semiring=args.semiring, rule=rule_of(args), theta=args.theta,
        scope=args.scope, fractions=args.fractions, samples=args.samples,
        test_samples=args.test_samples, weights=weights, weight_samples=args.weight_samples,
        export_fraction=args.export_fraction, seed=args.seed, progress=show_progress(args),
        **job_options_of(args))
    paths = write_pruning(result, smaller, args.out)
    print(format_accuracy_table(result))
    check = result.info["export"]["onnxruntime_check"]
    verdict = (f"max |Δ logit| {check['max_abs_difference']:.2e} against the masked original "
               f"(onnxruntime)" if check["checked"] else check["reason"])
    print(f"smaller model ({100 * args.export_fraction:g} % of units removed by relevance): "
          f"{paths[4]}; {verdict}")
    print(f"outputs written to {Path(args.out)}/ ({', '.join(p.name for p in paths)})")
    return 0


def format_accuracy_table(result: Any) -> str:
    """Test accuracy (%) per ranking and pruned fraction, one row per (what, method)."""
    fractions = result.info["fractions"]
    header = ["pruned", "method"] + [f"{100 * f:g}%" for f in fractions]
    rows = [header]
    seen = []
    for p in result.points:
        if (p.what, p.method) not in seen:
            seen.append((p.what, p.method))
    for what, method in seen:
        acc = {p.fraction: p.accuracy for p in result.curve(what, method)}
        rows.append([what, method] + [f"{100 * acc[f]:.1f}" for f in fractions])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths))) for r in rows)
