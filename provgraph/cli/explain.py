"""``provgraph explain MODEL INPUT``: explain one input, or each sample of a stacked input file."""

from __future__ import annotations

import argparse
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any

from provgraph.cli.options import backend_of, count_at_least, init_of, rule_of, show_progress

log = logging.getLogger(__name__)

OPTIONS = (
    "target", "semiring", "rule", "theta", "init", "backend", "input_shape", "max_memory",
    "output_name", "cluster",
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``explain`` command's own arguments (the shared ones are in :data:`OPTIONS`)."""
    p.add_argument("model", help="ONNX model file")
    p.add_argument("input", help="input sample: .npy, .npz, .png or .jpg (or a folder, --batch)")
    p.add_argument("--out", default=None, help="write a heatmap (PNG) here")
    p.add_argument("--save", default=None, help="write every tensor's relevance (.npz) here")
    p.add_argument("--layers", default=None, metavar="FOLDER",
                   help="write each linear layer's input relevance map (PNG, channels summed "
                        "in the semiring) and layers.npz to this folder")
    p.add_argument(
        "--top", type=count_at_least(0), default=5, help="print the N most relevant inputs"
    )
    p.add_argument(
        "--batch",
        type=int,
        nargs="?",
        const=64,
        default=None,
        metavar="N",
        help="explain every sample of a folder or .npy stack, N at a time (default 64), with "
        "the torch backend and a progress bar",
    )


def run(args: argparse.Namespace) -> int:
    """Explain the input's sample(s) through the API; print and write what was asked."""
    from provgraph.cli.options import job_options_of

    job = any(job_options_of(args).values())
    if args.batch is not None and job:
        from provgraph.cli.batch_job import run_batch_job

        return run_batch_job(args)
    if args.batch is not None:
        from provgraph.cli.explain_dataset import run_dataset

        return run_dataset(args)
    if job:
        from provgraph.errors import InputError

        raise InputError("--cluster, --resume and --strict run a dataset job: add --batch")
    import numpy as np

    from provgraph.api import annotate, explain, explain_batch, load
    from provgraph.io.inputs import read_input
    from provgraph.model.trace import as_batch

    net = load(args.model, output=args.output_name, input_shape=args.input_shape,
        max_memory=args.max_memory)
    x = as_batch(net, read_input(args.input, net))
    options: dict[str, Any] = {
        "semiring": args.semiring,
        "rule": rule_of(args),
        "theta": args.theta,
        "init": init_of(args),
        "target": args.target,
        "backend": backend_of(args),
    }
    start = time.perf_counter()
    if len(x) == 1:
        rels = [explain(net, x[0], **options)]
    else:
        rels = explain_batch(net, x, progress=show_progress(args), **options)
    n = len(rels)
    for i, rel in enumerate(rels):
        suffix = f"_{i}" if n > 1 else ""
        predicted = int(np.argmax(rel.logits))
        log.debug("%sbackend %s (%s)", f"sample {i}: " if n > 1 else "",
                  rel.info.get("backend"), rel.info.get("backend_selection", "as requested"))
        graph = partial(annotate, net, x[i])  # only built when ties reach the top inputs
        print_explanation(rel, predicted, args.top, f"sample {i}: " if n > 1 else "", graph)
        if args.out:
            from provgraph.io.heatmaps import save_heatmap

            path = with_suffix(args.out, suffix)
            save_heatmap(rel, path, sample=x[i].reshape(-1))
            print(f"heatmap written to {path}")
        if args.save:
            path = with_suffix(args.save, suffix)
            rel.save(path)
            print(f"relevance written to {path}")
        if args.layers:
            from provgraph.io.layer_maps import save_layer_maps

            folder = Path(args.layers) / f"sample{i}" if n > 1 else Path(args.layers)
            written = save_layer_maps(rel, folder)
            print(f"{len(written) - 1} layer maps and layers.npz written to {folder}")
    print(f"time: {time.perf_counter() - start:.3f} s")
    return 0


def with_suffix(path: str, suffix: str) -> Path:
    """``out/map.png`` with ``_3`` → ``out/map_3.png``."""
    p = Path(path)
    return p.with_name(p.stem + suffix + p.suffix)


def print_explanation(
    rel: Any, predicted: int, top: int, prefix: str, graph: Any = None
) -> None:
    """Four lines: prediction and target, rule/Θ/init, the top inputs, the bias share.

    ``graph`` (the annotated graph, or a function building it) ranks ties among the top inputs.
    """
    from provgraph.apps.ranking import format_top_inputs

    logits = rel.logits
    print(
        f"{prefix}predicted class {predicted} (logit {logits[predicted]:.4g}); "
        f"explaining class {rel.target} in the {rel.semiring.name} semiring"
    )
    print(f"  rule: {rel.info['rule']}  Θ: {rel.info['theta']}  init: {rel.info['init']}")
    print(f"  most relevant inputs: {format_top_inputs(rel, top, graph)}")
    print(f"  absorbed by bias sources: {rel.bias_total()}")
