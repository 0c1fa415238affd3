"""``provgraph explain --batch`` as a dataset job, for ``--cluster``, ``--resume`` and ``--strict``.

:class:`SampleExplanations` explains each chunk of samples and keeps, in sample order, one
summary line per sample, the input relevance, targets and logits; heatmaps are drawn by whoever
explains the chunk, into the shared ``--out`` folder. The partial of a range is those lists, and
``combine`` concatenates them, so every engine prints and saves the same.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk, Dataset
from provgraph.apps.model_handle import ModelHandle
from provgraph.model.network import Network

_EXPLAINERS: dict[str, Any] = {}
_LOCK = threading.Lock()


class SampleExplanations:
    """Per-sample summary lines, input relevance, targets and logits of a dataset.

    Parameters
    ----------
    model : ModelHandle
        The classifier.
    names : list of str
        One name per sample (lines and heatmap files).
    settings : dict
        ``semiring``, ``rule``, ``theta``, ``init``, ``target``, ``device``, ``counting``.
    top : int
        How many most relevant inputs each line lists.
    heatmaps : str, optional
        Folder the heatmaps are written to.
    threads : int
        Torch threads while explaining (fixed, so results do not depend on the process).
    """

    def __init__(self, model: ModelHandle, names: list[str], settings: dict[str, Any],
                 top: int, heatmaps: str | None = None, threads: int = 1) -> None:
        self.model, self.names, self.settings = model, names, settings
        self.top, self.heatmaps, self.threads = top, heatmaps, threads
        self._explainer()

    def _explainer(self) -> Any:
        key = json.dumps([self.model.sha256, self.settings], sort_keys=True, default=repr)
        with _LOCK:
            if key not in _EXPLAINERS:
                from provgraph.backends import get_backend
                from provgraph.engine.explainer import Explainer

                options = {"device": self.settings["device"] or "cpu"}
                if self.settings["counting"]:
                    options["counting"] = self.settings["counting"]
                _EXPLAINERS[key] = Explainer(
                    self.model.network(), self.settings["semiring"], rule=self.settings["rule"],
                    theta=self.settings["theta"], init=self.settings["init"],
                    backend=get_backend("torch", **options), keep=())
            return _EXPLAINERS[key]

    def map(self, chunk: Chunk) -> dict[str, list[Any]]:
        """The chunk's lines, input relevance, targets and logits (heatmaps drawn)."""
        from provgraph.apps.relevance_job import torch_threads
        from provgraph.cli.explain_dataset import _safe, _summary

        explainer = self._explainer()
        with torch_threads(self.threads):
            batch = explainer.explain_batch(chunk.x, self.settings["target"])
        net = explainer.network
        inputs = batch.tensors[net.input_name]  # (samples, inputs, targets), as explain --batch
        relevance = np.moveaxis(inputs, 2, 1).reshape((len(batch), inputs.shape[2],
                                                       *net.input_shape))
        names = [self.names[i] for i in chunk.indices]
        if self.heatmaps:
            from provgraph.io.heatmaps import save_heatmap

            for name, rel, sample in zip(names, batch, chunk.x):
                save_heatmap(rel, Path(self.heatmaps) / f"{_safe(name)}.png", sample=sample)
        return {"lines": [f"{n}: {_summary(rel, self.top)}" for n, rel in zip(names, batch)],
                "names": names, "relevance": [relevance], "targets": [batch.targets],
                "logits": [batch.logits], "info": [batch.info]}

    def combine(self, a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """``a`` then ``b``."""
        return {k: a[k] + b[k] for k in a}

    def finish(self, partial: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """The lists, in sample order."""
        return partial


def job_dataset(path: str, network: Network) -> tuple[list[str], Dataset]:
    """Names and dataset of a job: a float ``.npy`` stack memory-mapped (workers read it
    themselves), anything else read as :func:`~provgraph.cli.explain_dataset.read_stack`
    reads it."""
    from provgraph.apps.datasets import ArrayDataset, NpyDataset
    from provgraph.cli.explain_dataset import read_stack

    p = Path(path)
    if p.suffix.lower() == ".npy" and p.is_file():
        header = np.load(p, mmap_mode="r")
        if header.ndim >= 2 and header.dtype.kind == "f":
            return [f"{p.stem}_{i}" for i in range(len(header))], NpyDataset(p)
    names, x = read_stack(path, network)
    return names, ArrayDataset(x, source=str(path))


def run_batch_job(args: argparse.Namespace) -> int:
    """Explain ``args.input`` through :func:`~provgraph.apps.distributed.run_job`; print, save."""
    from provgraph.api import load
    from provgraph.apps.distributed import run_job
    from provgraph.cli.options import init_of, job_options_of, rule_of, show_progress
    from provgraph.errors import InputError
    from provgraph.io.atomic import atomic_save_npz

    if args.batch < 1:
        raise InputError(f"--batch must be at least 1, got {args.batch}")
    net = load(args.model, output=args.output_name, input_shape=args.input_shape,
               max_memory=args.max_memory)
    names, dataset = job_dataset(args.input, net)
    settings = {"semiring": args.semiring, "rule": rule_of(args), "theta": args.theta,
                "init": init_of(args), "target": args.target, "device": args.device,
                "counting": args.counting}
    model = ModelHandle(args.model, output=args.output_name, input_shape=args.input_shape)
    job = SampleExplanations(model, names, settings, args.top,
                             str(Path(args.out).resolve()) if args.out else None)
    result = run_job(dataset, job, chunk_size=args.batch, progress=show_progress(args),
                     **job_options_of(args))
    for bad in result.bad_samples:
        print(f"skipped bad {bad}")
    for line in result.value["lines"]:
        print(line)
    if args.out:
        print(f"{len(result.value['lines'])} heatmaps written to {args.out}")
    if args.save:
        arrays = {
            "input": np.concatenate(result.value["relevance"]),
            "names": np.asarray(result.value["names"]),
            "targets": np.concatenate(result.value["targets"]),
            "logits": np.concatenate(result.value["logits"]),
            "semiring": np.asarray(args.semiring),
            "info": np.asarray(json.dumps({**result.value["info"][0], **result.info},
                                          default=str)),
        }
        atomic_save_npz(args.save, arrays)
        print(f"relevance of {len(result.value['names'])} samples written to {args.save}")
    print(f"{result.samples} samples in {len(result.partitions)} partitions "
          f"({len(result.computed)} computed) on {result.info['cluster']}")
    return 0
