"""``provgraph explain --batch``: a folder of inputs or an ``.npy`` stack through the torch backend.

Also ``--device`` and ``--counting``, which pick the torch backend's device and counting mode for
single inputs as well.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.errors import InputError, ProvgraphError
from provgraph.model.network import Network

INPUT_SUFFIXES = (".npy", ".npz", ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


def add_batch_options(p: argparse.ArgumentParser) -> None:
    """The ``--device``, ``--counting`` and ``--batch`` options of ``provgraph explain``."""
    p.add_argument(
        "--device", default=None, help="torch device: cpu or cuda (selects the torch backend)"
    )
    p.add_argument(
        "--counting",
        default=None,
        choices=("int64", "float64", "log"),
        help="torch backend's path counts: exact int64 (default), float64 or log-domain",
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


def backend_option(args: argparse.Namespace) -> Any:
    """The backend ``--backend``, ``--device`` and ``--counting`` ask for."""
    from provgraph.backends import get_backend

    torch_wanted = args.device is not None or args.counting is not None or args.batch is not None
    if not torch_wanted:
        return args.backend
    if args.backend not in ("auto", "torch"):
        raise ProvgraphError(
            f"--device, --counting and --batch need the torch backend, not {args.backend!r}"
        )
    options: dict[str, Any] = {"device": args.device or "cpu"}
    if args.counting:
        options["counting"] = args.counting
    return get_backend("torch", **options)


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
        return names, np.concatenate(samples)
    x = as_batch(network, read_input(path, network))
    return [f"{path.stem}_{i}" for i in range(len(x))], x


def run_batch(args: argparse.Namespace, init: Any) -> int:
    """Explain every sample of ``args.input``; print one line per sample; write what was asked."""
    from provgraph.api import load
    from provgraph.engine.batch import explain_batched
    from provgraph.io.atomic import atomic_save_npz

    net = load(args.model, output=args.output_name, input_shape=args.input_shape)
    names, x = read_stack(args.input, net)
    if args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    keep = None if args.save else ()
    batch = explain_batched(
        net,
        x,
        args.semiring,
        backend=backend_option(args),
        batch_size=args.batch,
        progress=True,
        rule=args.composite or args.rule,
        theta=args.theta,
        init=init,
        target=args.target,
        keep=keep,
    )
    for name, rel in zip(names, batch):
        print(f"{name}: {_summary(rel, args.top)}")
    if args.out:
        from provgraph.io.heatmaps import save_heatmap

        folder = Path(args.out)
        folder.mkdir(parents=True, exist_ok=True)
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
