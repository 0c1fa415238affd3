"""The dataset arguments of the dataset commands (``masks``, ``evaluate``), declared once.

``--data`` is an image folder, a ``.npy`` or an ``.npz`` (default: the bundled held-out MNIST
digits); the preprocessing is declared with ``--scale``, ``--mean``, ``--std``, ``--resize`` and
``--mode``, never guessed, and each sample is reshaped to the model's input shape.
"""

from __future__ import annotations

import argparse
from typing import Any

from provgraph.cli.options import count_at_least


def parse_floats(text: str) -> tuple[float, ...]:
    """``"0.5,0.75"`` → ``(0.5, 0.75)``; anything else is a one-line usage error."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers like 0.5,0.9"
                                         ) from None
    return values


def parse_size(text: str) -> tuple[int, int]:
    """``"28x28"`` → ``(28, 28)`` (height × width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 28x28") from None
    return h, w


def add_dataset_arguments(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--data``, ``--labels``, the preprocessing, ``--limit`` and ``--chunk``."""
    p.add_argument("--model", default=None,
                   help="ONNX classifier (default: the bundled 784-300-100-10 MNIST MLP)")
    p.add_argument("--data", default=None,
                   help="image folder (one subfolder per class), .npy or .npz (default: the "
                        "bundled 1,000 held-out MNIST digits)")
    p.add_argument("--labels", default=None, help=".npy of labels for a .npy/.npz --data")
    p.add_argument("--scale", type=float, default=None,
                   help="multiply raw values by this (e.g. 0.00392156862745098 for 1/255)")
    p.add_argument("--mean", type=parse_floats, default=(), help="per-channel mean, e.g. 0.5")
    p.add_argument("--std", type=parse_floats, default=(), help="per-channel std, e.g. 0.5")
    p.add_argument("--resize", type=parse_size, default=None, help="resize images to HxW")
    p.add_argument("--mode", choices=("L", "RGB"), default=None, help="convert images to grey "
                   "(L) or RGB")
    p.add_argument("--limit", type=count_at_least(1), default=None,
                   help="use only the first N samples")
    p.add_argument("--chunk", type=count_at_least(1), default=250,
                   help="samples explained per chunk (default: 250)")


def model_of(args: argparse.Namespace) -> Any:
    """The :class:`~provgraph.apps.model_job.ModelRef` of ``--model`` and the backend options."""
    from provgraph.apps.demo import bundled_model_path
    from provgraph.apps.model_job import ModelRef

    backend = "torch" if args.backend == "auto" else args.backend
    return ModelRef(args.model or bundled_model_path(), backend, args.device, args.counting)


def dataset_of(args: argparse.Namespace, network: Any) -> Any:
    """The :class:`~provgraph.apps.datasets.Dataset` of ``--data`` under the declared
    preprocessing (bundled digits: ``pixel / 255`` unless declared otherwise)."""
    from provgraph.apps.preprocessing import Preprocessing
    from provgraph.apps.sources import open_dataset

    declared = (args.scale is not None or args.mean or args.std or args.resize is not None
                or args.mode is not None)
    preprocessing = None
    if declared or args.data is not None:
        preprocessing = Preprocessing(scale=1.0 if args.scale is None else args.scale,
                                      mean=args.mean, std=args.std, size=args.resize,
                                      mode=args.mode, shape=tuple(network.input_shape))
    return open_dataset(args.data, args.labels, preprocessing)
