"""``provgraph masks``: class-wise relevance masks over a dataset, and how well they work.

With no arguments: the bundled MNIST classifier over its 1,000 bundled held-out digits. Writes
``masks.png`` (all classes, colour bars), ``masks.npz`` and ``masks.json`` to ``--out``
atomically and prints the evaluation table.
"""

from __future__ import annotations

import argparse

from provgraph.cli.dataset_options import add_dataset_arguments, dataset_of, model_of, parse_floats
from provgraph.cli.options import count_at_least, job_options_of, rule_of, show_progress

OPTIONS = ("rule", "theta", "backend", "cluster")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's own arguments (the dataset ones are shared with ``evaluate``)."""
    add_dataset_arguments(p)
    p.add_argument("--out", default="out/masks", help="output folder (default: out/masks)")
    p.add_argument("--targets", choices=("label", "predicted"), default="label",
                   help="explain and group each sample by its label or its predicted class")
    p.add_argument("--thresholds", type=parse_floats, default=(0.5, 0.75, 0.9),
                   help="Boolean frequency thresholds of the masks (default: 0.5,0.75,0.9)")
    p.add_argument("--eval-data", default=None,
                   help="dataset the masks are evaluated on (default: --data), same "
                        "preprocessing")
    p.add_argument("--baseline", type=float, default=0.0,
                   help="value of the pixels a mask removes (default: 0)")
    p.add_argument("--seed", type=count_at_least(0), default=0,
                   help="seed of the random masks (default: 0)")


def run(args: argparse.Namespace) -> int:
    """Compute, evaluate and write the masks; print the table."""
    from provgraph.apps.mask_report import run_masks, write_mask_outputs
    from provgraph.apps.masks import DEFAULT_CASES
    from provgraph.apps.model_job import Case

    model = model_of(args)
    dataset = dataset_of(args, model.network)
    evaluation = None
    if args.eval_data is not None:
        evaluation = dataset_of(argparse.Namespace(**{**vars(args), "data": args.eval_data,
                                                      "labels": None}), model.network)
    rule = rule_of(args)
    cases = [Case(c.semiring, rule, args.theta if c.semiring != "real" else None)
             for c in DEFAULT_CASES]
    progress = show_progress(args)
    if progress:
        print(dataset.describe())
    report = run_masks(model, dataset, cases, args.thresholds, args.targets, evaluation,
                       args.baseline, args.seed, args.chunk, args.limit, progress,
                         **job_options_of(args))
    paths = write_mask_outputs(report, args.out)
    counts = ", ".join(str(int(n)) for n in report.relevance.counts)
    print(f"samples per class: {counts}")
    print(report.table())
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0
