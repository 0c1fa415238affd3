"""``provgraph evaluate``: faithfulness of explanations per semiring and rule over a dataset.

Seed 004's feature removal, pixel flipping and region perturbation (MoRF, LeRF, a random
order), AOPC and SRG, and input pruning. With no arguments: the bundled MNIST classifier on its
bundled held-out digits (the first half ranks inputs for input pruning, the second is tested).
Writes ``evaluate.json``, ``evaluate.npz`` and ``evaluate.png`` to ``--out`` atomically and
prints the tables.
"""

from __future__ import annotations

import argparse

from provgraph.cli.dataset_options import add_dataset_arguments, dataset_of, model_of, parse_floats
from provgraph.cli.options import count_at_least, job_options_of, show_progress

OPTIONS = ("theta", "backend", "cluster")


def _baseline(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        if text in ("zero", "mean", "blur"):
            return text
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, zero, mean or blur") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's own arguments (the dataset ones are shared with ``masks``)."""
    add_dataset_arguments(p)
    p.add_argument("--out", default="out/evaluate", help="output folder (default: out/evaluate)")
    p.add_argument("--cases", default="real/lrp0,real/epsilon:0.01,boolean,counting,viterbi",
                   help="comma-separated semiring or semiring/rule (default: "
                        "real/lrp0,real/epsilon:0.01,boolean,counting,viterbi)")
    p.add_argument("--targets", choices=("predicted", "label"), default="predicted",
                   help="class each sample is explained for (default: predicted)")
    p.add_argument("--fraction", type=float, default=0.15,
                   help="share of inputs the removal test removes (default: 0.15)")
    p.add_argument("--perturb-baseline", type=_baseline, default="zero",
                   help="removed inputs become: zero, mean, blur or a number (default: zero)")
    p.add_argument("--features-in-step", type=count_at_least(1), default=8,
                   help="inputs flipped per pixel-flipping step (default: 8)")
    p.add_argument("--patch-size", type=count_at_least(1), default=4,
                   help="region perturbation patch size (default: 4)")
    p.add_argument("--regions-evaluation", type=count_at_least(1), default=49,
                   help="patches region perturbation replaces (default: 49)")
    p.add_argument("--samples", type=count_at_least(1), default=None,
                   help="samples tested (default: all not used for ranking)")
    p.add_argument("--rank-samples", type=count_at_least(1), default=None,
                   help="samples input pruning ranks on (default: half of those used)")
    p.add_argument("--keep", type=parse_floats, default=(0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0),
                   help="fractions of inputs input pruning keeps")
    p.add_argument("--seed", type=count_at_least(0), default=0,
                   help="seed of the random order (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Run every test, write the files, print the tables."""
    from provgraph.apps.evaluation_report import run_evaluation, write_evaluation_outputs
    from provgraph.apps.faithfulness import Settings
    from provgraph.apps.model_job import Case
    from provgraph.errors import InputError

    cases = [Case.parse(c, args.theta) for c in args.cases.split(",") if c.strip()]
    if not cases:
        raise InputError("--cases names no semiring")
    if not 0 < args.fraction < 1:
        raise InputError(f"--fraction must lie strictly between 0 and 1, got {args.fraction}")
    model = model_of(args)
    dataset = dataset_of(args, model.network)
    used = len(dataset) if args.limit is None else min(args.limit, len(dataset))
    rank = args.rank_samples if args.rank_samples is not None else used // 2
    samples = args.samples if args.samples is not None else used - rank
    settings = Settings(args.fraction, args.perturb_baseline, args.features_in_step,
                        args.patch_size, args.regions_evaluation, seed=args.seed,
                        targets=args.targets)
    progress = show_progress(args)
    if progress:
        print(dataset.describe())
    report = run_evaluation(model, dataset, cases, settings, samples, rank, args.keep,
                            args.chunk, progress, **job_options_of(args))
    paths = write_evaluation_outputs(report, args.out)
    print(report.tables())
    print(f"ties in Boolean, Counting and Viterbi {report.metadata['ties']}")
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0
