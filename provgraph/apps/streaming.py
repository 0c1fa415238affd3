"""Separable reductions over a dataset: map each chunk, combine partials in order, finish.

A :class:`Reduction` is what a dataset job computes, written so that the same code runs in one
process (:func:`run_reduction`) or partition by partition on several workers, whose partials
are then folded with :func:`combine_all` in partition order. ``combine`` must be associative;
it is always applied left to right in index order, so a reduction whose ``combine`` is exact
(integer sums, counts) gives the same result for any chunk size and any partitioning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import Chunk, Dataset

P = TypeVar("P")
R = TypeVar("R", covariant=True)
INT64_HEADROOM = 2**62


class Reduction(Protocol[P, R]):
    """A computation over a dataset in three steps.

    ``map(chunk)`` turns one :class:`~provgraph.apps.datasets.Chunk` into a partial result,
    ``combine(a, b)`` joins the partials of two consecutive index ranges (associative), and
    ``finish(partial)`` turns the partial of the whole range into the result.
    """

    def map(self, chunk: Chunk) -> P:
        """The partial result of one chunk."""
        ...

    def combine(self, a: P, b: P) -> P:
        """The partial of two consecutive ranges, ``a`` before ``b``."""
        ...

    def finish(self, partial: P) -> R:
        """The result from the partial of the whole range."""
        ...


def combine_all(reduction: Reduction[P, R], partials: Iterable[P]) -> P:
    """The partials of consecutive ranges folded left to right: ``((p0 ⊕ p1) ⊕ p2) ⊕ …``."""
    result: P | None = None
    found = False
    for p in partials:
        result = p if not found else reduction.combine(result, p)  # type: ignore[arg-type]
        found = True
    if not found:
        raise DatasetError("nothing to reduce: the range holds no samples")
    return result  # type: ignore[return-value]


def run_reduction(dataset: Dataset, reduction: Reduction[P, R], chunk_size: int = 256,
                  progress: bool = True, start: int = 0, stop: int | None = None) -> R:
    """Run ``reduction`` over samples ``start..stop-1`` of ``dataset`` in one process.

    Chunks of ``chunk_size`` are read, mapped and combined one after another, so memory is
    one chunk plus one partial; ``progress`` shows a tqdm bar counting samples.
    """
    from tqdm.auto import tqdm

    stop = len(dataset) if stop is None else stop
    with tqdm(total=max(stop - start, 0), unit="sample", disable=not progress,
              desc=f"reducing {type(dataset).__name__}") as bar:

        def mapped() -> Iterable[P]:
            for chunk in dataset.chunks(chunk_size, start, stop):
                yield reduction.map(chunk)
                bar.update(len(chunk.indices))

        return reduction.finish(combine_all(reduction, mapped()))


def exact_sum(values: np.ndarray) -> np.ndarray:
    """The sum over the first axis, exact for booleans, integers and Python integers.

    Booleans and integers are summed in int64 while the result provably fits (the largest
    magnitude times the count below 2⁶²), otherwise as Python integers; floats in float64.
    """
    kind = values.dtype.kind
    if kind == "f":
        return values.sum(axis=0, dtype=np.float64)
    if kind in "biu":
        bound = int(np.abs(values.astype(np.int64, copy=False)).max(initial=0)) if kind != "b" \
            else 1
        if bound * len(values) < INT64_HEADROOM and values.dtype != np.uint64:
            return values.sum(axis=0, dtype=np.int64)
    if kind in "biuO":
        return values.astype(object).sum(axis=0) if len(values) else \
            np.zeros(values.shape[1:], dtype=object)
    raise DatasetError(f"cannot sum values of type {values.dtype}")


def exact_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b`` elementwise, exact where both are integer: int64 while it cannot overflow,
    else Python integers."""
    if a.dtype == np.int64 and b.dtype == np.int64:
        bound = int(np.abs(a).max(initial=0)) + int(np.abs(b).max(initial=0))
        if bound < INT64_HEADROOM:
            return a + b
    if a.dtype.kind in "iO" and b.dtype.kind in "iO":
        return a.astype(object) + b.astype(object)
    return a + b


@dataclass(frozen=True)
class ClassPartial:
    """Per-class partial sums: ``counts`` (classes,), ``sums`` and ``nonzero`` (classes, …)."""

    counts: np.ndarray
    sums: np.ndarray
    nonzero: np.ndarray


@dataclass(frozen=True)
class ClassSummary:
    """Per-class statistics of one array per sample.

    Attributes
    ----------
    counts : ndarray (classes,)
        Samples per class.
    sums : ndarray (classes, …)
        Σ over the class's samples of the array (exact for integer and boolean arrays).
    nonzero : ndarray (classes, …)
        How many of the class's samples are non-zero at each position (exact).
    """

    counts: np.ndarray
    sums: np.ndarray
    nonzero: np.ndarray

    def _per_sample(self, totals: np.ndarray) -> np.ndarray:
        shape = (-1,) + (1,) * (totals.ndim - 1)
        n = self.counts.reshape(shape)
        return np.where(n > 0, totals.astype(np.float64) / np.maximum(n, 1), 0.0)

    @property
    def means(self) -> np.ndarray:
        """``sums / counts`` per class, in float64; 0 for a class without samples."""
        return self._per_sample(self.sums)

    @property
    def frequencies(self) -> np.ndarray:
        """``nonzero / counts``: the fraction of the class's samples non-zero at each position
        (a Boolean relevance frequency per pixel); 0 for a class without samples."""
        return self._per_sample(self.nonzero)


class ClassStatistics:
    """Per-class sums, non-zero counts and sample counts of one array per sample.

    For class c with samples S_c and per-sample arrays v_i:
    ``sums[c] = Σ_{i ∈ S_c} v_i``, ``nonzero[c] = Σ_{i ∈ S_c} [v_i ≠ 0]``, ``counts[c] = |S_c|``.
    ``combine`` adds them, which is exact (and so independent of chunking) for boolean and
    integer arrays, including Python-integer (object) arrays such as exact path counts.

    Parameters
    ----------
    n_classes : int
        Number of classes; every label must lie in 0..n_classes-1.
    values : callable, optional
        ``values(chunk)`` → array (samples in the chunk, …), for example the chunk's relevance
        maps; by default the chunk's preprocessed samples ``chunk.x``.
    groups : callable, optional
        ``groups(chunk)`` → one class per sample; by default the chunk's labels.
    """

    def __init__(self, n_classes: int,
                 values: Callable[[Chunk], np.ndarray] | None = None,
                 groups: Callable[[Chunk], np.ndarray] | None = None) -> None:
        if not isinstance(n_classes, (int, np.integer)) or n_classes < 1:
            raise DatasetError(f"n_classes must be a positive integer, got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.values = values or (lambda chunk: chunk.x)
        self.groups = groups or (lambda chunk: chunk.targets())

    def map(self, chunk: Chunk) -> ClassPartial:
        """Sums, non-zero counts and sample counts of the chunk's classes."""
        values = np.asarray(self.values(chunk))
        groups = np.asarray(self.groups(chunk))
        n = len(chunk.indices)
        if len(values) != n or groups.shape != (n,):
            raise DatasetError(f"{n} samples in the chunk but {len(values)} values and "
                               f"{groups.shape} groups")
        bad = np.flatnonzero((groups < 0) | (groups >= self.n_classes))
        if len(bad):
            raise DatasetError(f"label {groups[bad[0]]} of sample {chunk.indices[bad[0]]} is not "
                               f"in 0..{self.n_classes - 1}")
        parts = [exact_sum(values[groups == c]) for c in range(self.n_classes)]
        sums = np.stack(parts) if len({p.dtype for p in parts}) == 1 else \
            np.stack([p.astype(object) for p in parts])
        nonzero = np.stack([(values[groups == c] != 0).sum(axis=0, dtype=np.int64)
                            for c in range(self.n_classes)])
        counts = np.bincount(groups.astype(np.int64), minlength=self.n_classes)
        return ClassPartial(counts.astype(np.int64), sums, nonzero)

    def combine(self, a: ClassPartial, b: ClassPartial) -> ClassPartial:
        """Elementwise sums of both partials (exact for integer values)."""
        return ClassPartial(a.counts + b.counts, exact_add(a.sums, b.sums),
                            a.nonzero + b.nonzero)

    def finish(self, partial: ClassPartial) -> ClassSummary:
        """The summary, with means and frequencies derived from the sums."""
        return ClassSummary(partial.counts, partial.sums, partial.nonzero)
