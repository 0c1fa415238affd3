"""One partition of a dataset job: an index range read in chunks, mapped and folded.

:func:`partition_ranges` splits a dataset into consecutive index ranges whose boundaries are
multiples of the chunk size, so every partitioning reads the same chunks. :func:`run_partition`
is the streaming loop of :func:`~provgraph.apps.streaming.run_reduction` over one range, with two
additions a long job needs: a chunk that cannot be read is read again sample by sample, and the
samples that still fail are reported (:class:`BadSample`) instead of stopping the job; and a
reduction's per-sample outputs are written to one ``.npz`` per partition, atomically. It needs
no Dask: the distributed engine runs it on workers, the in-process engine runs it in a loop.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import Chunk, Dataset
from provgraph.apps.streaming import Reduction, combine_all

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 64
"""At most this many partitions by default; fewer when the dataset has fewer chunks."""


@dataclass(frozen=True)
class BadSample:
    """A sample that could not be read: its index, the file (or source) and why."""

    index: int
    source: str
    reason: str

    def __str__(self) -> str:
        return f"sample {self.index} ({self.source}): {self.reason}"


@dataclass
class PartitionResult:
    """What one partition gives back: its partial (``None`` if no sample was readable), the bad
    samples, the number of samples reduced and the per-sample output file (if any)."""

    partial: Any
    bad: list[BadSample] = field(default_factory=list)
    samples: int = 0
    output: str | None = None


def partition_ranges(n: int, chunk_size: int, partitions: int | None = None
                     ) -> list[tuple[int, int]]:
    """``partitions`` consecutive ranges covering ``0..n-1``, boundaries on chunk multiples.

    The chunks are spread as evenly as possible: partition ``p`` holds chunks
    ``⌊p·C/P⌋ .. ⌊(p+1)·C/P⌋ - 1`` of the ``C = ⌈n / chunk_size⌉`` chunks. ``partitions``
    defaults to ``min(C, DEFAULT_PARTITIONS)`` and is lowered to ``C`` if larger.

    Raises
    ------
    DatasetError
        A non-positive chunk size or partition count, or an empty dataset.
    """
    if not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise DatasetError(f"chunk size must be a positive integer, got {chunk_size!r}")
    if n < 1:
        raise DatasetError("the dataset holds no samples")
    chunks = math.ceil(n / chunk_size)
    if partitions is None:
        partitions = min(chunks, DEFAULT_PARTITIONS)
    if not isinstance(partitions, (int, np.integer)) or partitions < 1:
        raise DatasetError(f"partitions must be a positive integer, got {partitions!r}")
    partitions = min(int(partitions), chunks)
    edges = [min(n, (p * chunks // partitions) * chunk_size) for p in range(partitions + 1)]
    return list(zip(edges[:-1], edges[1:]))


def sample_source(dataset: Dataset, index: int) -> str:
    """The file sample ``index`` comes from (image folders), else the dataset's source."""
    files = getattr(dataset, "files", None)
    return str(files[index]) if files is not None else dataset.source


def readable_chunks(dataset: Dataset, start: int, stop: int, size: int, bad: list[BadSample],
                    strict: bool = False) -> Iterator[Chunk]:
    """The chunks of ``start..stop-1``; a chunk that fails to read is read sample by sample,
    its unreadable samples appended to ``bad`` (``strict``: the first one raises).

    The chunk boundaries are those of ``dataset.chunks(size, start, stop)``; a chunk with bad
    samples is yielded as one chunk of its good samples (non-consecutive ``indices``).
    """
    position = start
    while position < stop:
        try:
            for chunk in dataset.chunks(size, position, stop):
                position = int(chunk.indices[-1]) + 1
                yield chunk
            return
        except DatasetError:
            end = min(position + size, stop)
            good = list(_good_samples(dataset, position, end, bad, strict))
            position = end
            if good:
                yield _joined(good)


def _good_samples(dataset: Dataset, start: int, stop: int, bad: list[BadSample],
                  strict: bool) -> Iterator[Chunk]:
    for i in range(start, stop):
        try:
            yield next(dataset.chunks(1, i, i + 1))
        except DatasetError as exc:
            sample = BadSample(i, sample_source(dataset, i), str(exc))
            if strict:
                raise DatasetError(f"bad {sample}") from None
            log.warning("skipped bad %s", sample)
            bad.append(sample)


def _joined(chunks: list[Chunk]) -> Chunk:
    labels = None if chunks[0].labels is None else np.concatenate([c.labels for c in chunks])
    return Chunk(np.concatenate([c.indices for c in chunks]),
                 np.concatenate([c.x for c in chunks]), labels)


def run_partition(dataset: Dataset, reduction: Reduction[Any, Any], start: int, stop: int,
                  chunk_size: int, strict: bool = False, outputs: str | Path | None = None,
                  number: int = 0) -> PartitionResult:
    """Map samples ``start..stop-1`` chunk by chunk and fold the partials left to right.

    With ``outputs`` (a folder), the reduction must have ``map_with_outputs(chunk)`` returning
    ``(partial, {name: array with one row per sample})``; the rows of the partition, with their
    sample ``index``, are written to ``outputs/part-NNNNN.npz`` atomically, after the whole
    partition succeeded.

    Raises
    ------
    DatasetError
        With ``strict``, the first unreadable sample (index and file); with ``outputs``, a
        reduction that has no per-sample outputs.
    """
    bad: list[BadSample] = []
    rows: dict[str, list[np.ndarray]] = {}
    mapper = getattr(reduction, "map_with_outputs", None)
    if outputs is not None and mapper is None:
        raise DatasetError(f"{type(reduction).__name__} writes no per-sample outputs; run it "
                           f"without an output folder")
    samples = 0

    def mapped() -> Iterator[Any]:
        nonlocal samples
        for chunk in readable_chunks(dataset, start, stop, chunk_size, bad, strict):
            samples += len(chunk.indices)
            if outputs is None:
                yield reduction.map(chunk)
                continue
            partial, arrays = mapper(chunk)
            for name, values in {"index": chunk.indices, **arrays}.items():
                rows.setdefault(name, []).append(np.asarray(values))
            yield partial

    stream = mapped()
    first = next(stream, None)  # a partition of bad samples only has no partial
    partial = None if first is None else combine_all(reduction, chain([first], stream))
    written = None
    if outputs is not None and rows:
        from provgraph.io.atomic import atomic_save_npz

        path = Path(outputs) / f"part-{number:05d}.npz"
        atomic_save_npz(path, {k: np.concatenate(v) for k, v in rows.items()})
        written = str(path)
    return PartitionResult(partial, bad, samples, written)

