"""``provgraph explain --batch``: every sample of a folder of inputs or of an ``.npy`` stack.

The samples go through :func:`provgraph.engine.batch.explain_batched` (the torch backend), N at a
time; one line is printed per sample, heatmaps go to a folder and all relevance to one ``.npz``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.cli.options import backend_of, init_of, rule_of, show_progress
from provgraph.errors import InputError
from provgraph.model.network import Network

INPUT_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")

log = logging.getLogger(__name__)


def read_stack(path: str | Path, network: Network) -> tuple[list[str], np.ndarray]:
    """Sample names and a ``(N, *input_shape)`` stack from a folder of inputs or one file."""
    from provgraph.io.inputs import read_input
    from provgraph.model.trace import as_batch

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES)
        if not files:
            raise InputError(f"{path}: no inputs ({', '.join(INPUT_SUFFIXES)}) in this folder")
        names, samples = [], []
        for f in files:
            x = as_batch(network, read_input(f, network))
            names += [f.stem] if len(x) == 1 else [f"{f.stem}_{i}" for i in range(len(x))]
            samples.append(x)
        log.debug("%d samples from %d files in %s", sum(map(len, samples)), len(files), path)
        return names, np.concatenate(samples)
    x = as_batch(network, read_input(path, network))
    return [f"{path.stem}_{i}" for i in range(len(x))], x


def run_dataset(args: argparse.Namespace) -> int:
    """Explain every sample of ``args.input``; print one line per sample; write what was asked."""
    from provgraph.api import explain_batched, load
    from provgraph.io.atomic import atomic_save_npz

    if args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    net = load(args.model, output=args.output_name, input_shape=args.input_shape,
        max_memory=args.max_memory)
    names, x = read_stack(args.input, net)
    batch = explain_batched(
        net,
        x,
        args.semiring,
        backend=backend_of(args),
        batch_size=args.batch,
        progress=show_progress(args),
        rule=rule_of(args),
        theta=args.theta,
        init=init_of(args),
        target=args.target,
        keep=None if args.save else (),
    )
    for name, rel in zip(names, batch):
        print(f"{name}: {_summary(rel, args.top)}")
    if args.out:
        from provgraph.io.heatmaps import save_heatmap

        folder = Path(args.out)
        for name, rel, sample in zip(names, batch, x):
            save_heatmap(rel, folder / f"{_safe(name)}.png", sample=sample)
        print(f"{len(names)} heatmaps written to {folder}")
    if args.save:
        inputs = batch.tensors[net.input_name]
        arrays = {
            "input": np.moveaxis(inputs, 2, 1).reshape(
                (len(names), inputs.shape[2]) + tuple(net.input_shape)
            ),
            "names": np.asarray(names),
            "targets": batch.targets,
            "logits": batch.logits,
            "semiring": np.asarray(batch.semiring.name),
            "info": np.asarray(json.dumps(batch.info)),
        }
        atomic_save_npz(args.save, arrays)
        print(f"relevance of {len(names)} samples written to {args.save}")
    info = batch.info
    counting = f", counting {info['counting']}" if "counting" in info else ""
    print(f"backend: {info['backend']} on {info.get('device', 'cpu')}{counting}")
    return 0


def _summary(rel: Any, top: int) -> str:
    from provgraph.apps.ranking import format_top_inputs

    cells = format_top_inputs(rel, top)
    predicted = int(np.argmax(rel.logits))
    return f"predicted {predicted}, explained {rel.target} ({rel.semiring.name}): {cells}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "sample"
