"""``provgraph paths``: the k best provenance paths from the explained class to a neuron.

With no arguments: the bundled MLP, its first bundled digit, the input pixel with the best path.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from provgraph.cli.options import count_at_least, rule_of
from provgraph.errors import InputError

OPTIONS = ("target", "rule", "theta")


def parse_source(text: str) -> tuple[str, int] | int:
    """``"300"`` (an input index) or ``"TENSOR:INDEX"``."""
    tensor, _, index = text.rpartition(":")
    try:
        i = int(index)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an index or TENSOR:INDEX") from None
    return (tensor, i) if tensor else i


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``paths`` command's own arguments (the shared ones are in :data:`OPTIONS`)."""
    p.add_argument("--model", default="mlp",
                   help="ONNX model, or 'mlp' / 'cnn' for a bundled one (default: mlp)")
    p.add_argument("--input", default=None, help="input sample (.npy, .npz, .png); default: "
                   "a bundled digit (--digit)")
    p.add_argument("--digit", type=count_at_least(0), default=0,
                   help="which bundled digit 0-9 (default 0)")
    p.add_argument("--k", type=count_at_least(1), default=5, help="how many paths (default 5)")
    p.add_argument("--source", type=parse_source, default=None,
                   help="path source: an input index or TENSOR:INDEX (default: the input "
                        "element with the best path)")
    p.add_argument("--out", default="out/paths",
                   help="folder for paths.json and the annotated network (default: out/paths)")


def run(args: argparse.Namespace) -> int:
    """Find the paths, print them, write paths.json and the figure."""
    import hashlib

    import numpy as np

    from provgraph.api import load
    from provgraph.apps.demo import bundled_samples
    from provgraph.apps.path_figure import draw_annotated_network
    from provgraph.apps.paths import explain_paths, format_paths
    from provgraph.cli.prune import bundled_or_file
    from provgraph.io.atomic import atomic_write

    model_path = bundled_or_file(args.model)
    net = load(model_path)
    if args.input is not None:
        from provgraph.io.inputs import read_input

        x = np.asarray(read_input(args.input, net), dtype=np.float64)
    else:
        if args.digit > 9:
            raise InputError(f"--digit must be between 0 and 9, got {args.digit}")
        x = bundled_samples()[0][args.digit]
    result = explain_paths(net, x.reshape(net.input_shape), target=args.target, k=args.k,
                           source=args.source, rule=rule_of(args), theta=args.theta)
    print(f"{len(result.paths)} best paths from {result.source[0]}[{result.source[1]}] to "
          f"class {result.target} (k-best semiring, rule {result.info['rule']}, "
          f"Θ {result.info['theta']}):")
    print(format_paths(result))
    out = Path(args.out)
    record = {
        "model": str(model_path),
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "input": args.input or f"bundled digit {args.digit} (pixel / 255)",
        "semiring": f"kbest (k={args.k})",
        "source": list(result.source), "target": result.target, "k": args.k,
        "rule": str(result.info["rule"]), "theta": str(result.info["theta"]),
        "consistent_with_semiring": result.consistent,
        "paths": [{"score": p.score, "edges": [
            {"from": list(e.source), "to": list(e.target), "op": e.op, "r": e.r,
             "annotation": e.annotation} for e in p.edges]} for p in result.paths],
    }
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(out / "paths.json", lambda fh: fh.write(text.encode()))
    full = draw_annotated_network(result, out / "annotated_network.png")
    print(f"paths written to {out / 'paths.json'}; annotated network "
          f"({'all neurons' if full else 'neurons on the paths'}) to "
          f"{out / 'annotated_network.png'}")
    return 0
