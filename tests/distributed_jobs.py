"""Reductions and datasets for the dataset-job tests, pickled by value for Dask workers.

The reductions wrap :class:`~provgraph.apps.relevance_job.ClassRelevance` and only add side
effects the tests observe (a marker file per mapped chunk, a pause, a failure on demand); their
partials are the wrapped job's.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image

from provgraph.apps.datasets import Chunk, NpyDataset
from provgraph.apps.relevance_job import ClassRelevance
from provgraph.apps.sources import MNIST_PREPROCESSING, bundled_mnist


class ObservedRelevance(ClassRelevance):
    """:class:`ClassRelevance` that leaves ``markers/<first index>-<n>`` for every chunk it maps,
    waits ``pause`` seconds per chunk, and fails while the file ``stop`` exists for chunks
    starting at or after ``stop_from``."""

    def __init__(self, model, n_classes, semiring, markers: Path, pause: float = 0.0,
                 stop: Path | None = None, stop_from: int = 0) -> None:
        super().__init__(model, n_classes, semiring)
        self.markers, self.pause, self.stop, self.stop_from = markers, pause, stop, stop_from

    def map(self, chunk: Chunk):
        first = int(chunk.indices[0])
        if self.stop is not None and self.stop.exists() and first >= self.stop_from:
            raise RuntimeError(f"job stopped at sample {first}")
        partial = super().map(chunk)
        time.sleep(self.pause)
        self.markers.mkdir(parents=True, exist_ok=True)
        stamp = f"{first}-{time.monotonic_ns()}"
        (self.markers / stamp).write_text(str(len(chunk.indices)))
        return partial


def digit_stack(folder: Path, n: int) -> NpyDataset:
    """The first ``n`` bundled test digits as ``.npy`` files (raw uint8, labels beside)."""
    source = bundled_mnist("test")
    raw = np.concatenate([np.asarray(c.x) for c in source.chunks(n, 0, n)]) * 255
    np.save(folder / "x.npy", np.round(raw).astype(np.uint8))
    np.save(folder / "y.npy", source.labels[:n])
    return NpyDataset(folder / "x.npy", folder / "y.npy", classes=source.classes,
                      preprocessing=MNIST_PREPROCESSING)


def digit_folder(root: Path, per_class: int, classes: int = 3) -> list[Path]:
    """An image folder of bundled digits, ``per_class`` PNGs of each of the first ``classes``."""
    source = bundled_mnist("test")
    x = np.round(source.read() * 255).astype(np.uint8)
    files = []
    for c in range(classes):
        (root / str(c)).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(source.labels == c)[:per_class]):
            path = root / str(c) / f"digit_{k:02d}.png"
            Image.fromarray(x[i].reshape(28, 28)).save(path)
            files.append(path)
    return files
