"""``provgraph explain-dataset [MODEL] [DATASET]``: per-class relevance means and frequencies.

Every sample is explained for its label; per class, the input relevance is averaged (means) and
the fraction of the class's samples with non-zero relevance at each input is counted
(frequencies: in the Boolean semiring, the class-wise relevance masks). The job runs in this
process or on a Dask cluster (``--cluster``), can be resumed (``--resume``) and reports
unreadable samples instead of stopping (unless ``--strict``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.cli.options import count_at_least, job_options_of, rule_of, show_progress
from provgraph.errors import InputError

OPTIONS = ("semiring", "rule", "theta", "output_name", "input_shape", "cluster")
FREQUENT = 0.5
"""An input counts as relevant for a class when at least this fraction of its samples mark it."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The command's own arguments (the shared ones are in :data:`OPTIONS`)."""
    p.add_argument("model", nargs="?", default=None,
                   help="ONNX model file (default: the bundled MNIST classifier)")
    p.add_argument("dataset", nargs="?", default=None,
                   help="image folder, .npy or .npz (default: the bundled 1,000 test digits)")
    p.add_argument("--labels", default=None, help="labels of a .npy stack (.npy file)")
    p.add_argument("--scale", type=float, default=None,
                   help="declared preprocessing: multiply raw samples by this (e.g. 0.00392 for "
                   "8-bit images; default: the bundled digits' 1/255, else 1)")
    p.add_argument("--chunk-size", type=count_at_least(1), default=64,
                   help="samples explained at once (default 64)")
    p.add_argument("--partitions", type=count_at_least(1), default=None,
                   help="index-range partitions (default: one per chunk, at most 64)")
    p.add_argument("--save", default=None, help="write the per-class statistics (.npz) here")
    p.add_argument("--maps", default=None, metavar="FOLDER",
                   help="write every sample's relevance map, one .npz per partition, here")


def run(args: argparse.Namespace) -> int:
    """Run the job; print one line per class; write what was asked."""
    from provgraph.apps.demo import bundled_model_path
    from provgraph.apps.distributed import run_job
    from provgraph.apps.model_handle import ModelHandle
    from provgraph.apps.preprocessing import Preprocessing
    from provgraph.apps.relevance_job import ClassRelevance
    from provgraph.apps.sources import open_dataset

    prep = None if args.scale is None else Preprocessing(scale=args.scale)
    dataset = open_dataset(args.dataset, labels=args.labels, preprocessing=prep)
    if dataset.labels is None:
        raise InputError(f"{dataset.source}: explain-dataset explains each sample for its label, "
                         f"but the dataset has none (give --labels)")
    model = ModelHandle(args.model or bundled_model_path(), output=args.output_name,
                        input_shape=args.input_shape)
    reduction = ClassRelevance(model, dataset.n_classes, args.semiring, rule=rule_of(args),
                               theta=args.theta)
    result = run_job(dataset, reduction, partitions=args.partitions, chunk_size=args.chunk_size,
                     progress=show_progress(args), out=args.maps, **job_options_of(args))
    for bad in result.bad_samples:
        print(f"skipped bad {bad}")
    summary = result.value
    names = dataset.classes or [str(c) for c in range(dataset.n_classes)]
    for c, name in enumerate(names):
        total = float(np.sum(summary.means[c]))
        frequent = int(np.sum(summary.frequencies[c] >= FREQUENT))
        print(f"class {c} ({name}): {int(summary.counts[c])} samples, mean Σ relevance "
              f"{total:.6g}, inputs relevant in ≥{FREQUENT:.0%} of samples: {frequent}")
    reused = f", {len(result.reused)} kept from {args.resume}" if result.reused else ""
    print(f"{result.samples} samples in {len(result.partitions)} partitions "
          f"({len(result.computed)} computed{reused}) on {result.info['cluster']}")
    if args.save:
        _save(args.save, summary, names, _info(result, reduction, args))
        print(f"per-class statistics written to {args.save}")
    if args.maps:
        print(f"relevance maps written to {len(result.outputs)} files in {args.maps}")
    return 0


def _info(result: Any, reduction: Any, args: argparse.Namespace) -> dict[str, Any]:
    return {**reduction.describe(), **result.info,
            "bad_samples": [{"index": b.index, "source": b.source, "reason": b.reason}
                            for b in result.bad_samples]}


def _save(path: str, summary: Any, names: list[str], info: dict[str, Any]) -> None:
    from provgraph.io.atomic import atomic_save_npz

    sums = summary.sums if summary.sums.dtype != object else summary.sums.astype(str)
    atomic_save_npz(Path(path), {
        "counts": summary.counts, "sums": sums, "nonzero": summary.nonzero,
        "means": summary.means, "frequencies": summary.frequencies,
        "classes": np.asarray(names), "info": np.asarray(json.dumps(info, default=str)),
    })
