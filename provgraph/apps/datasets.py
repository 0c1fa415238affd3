"""Datasets as users have them, read lazily and in chunks.

A :class:`Dataset` knows its length, its labels (optional), its class names (optional) and its
declared :class:`~provgraph.apps.preprocessing.Preprocessing`, and yields its samples as
:class:`Chunk` s of consecutive indices. Only one chunk is held in memory at a time: ``.npy``
stacks are memory-mapped, members of ``.npz`` archives are decompressed as a stream, image
folders are decoded image by image. Any index range can be read on its own, so a distributed
engine can hand each worker one partition (``chunks(size, start, stop)``).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.preprocessing import Preprocessing

NUMERIC_KINDS = "biuf"


class Chunk(NamedTuple):
    """Consecutive samples of a dataset: global ``indices``, preprocessed ``x``, ``labels``."""

    indices: np.ndarray
    x: np.ndarray
    labels: np.ndarray | None

    def targets(self) -> np.ndarray:
        """The labels, as per-sample targets; a :class:`DatasetError` if there are none."""
        if self.labels is None:
            raise DatasetError("this dataset has no labels, so they cannot be used as targets")
        return self.labels


def as_labels(values: Any, n: int, source: str, n_classes: int | None = None) -> np.ndarray:
    """``values`` checked as one integer label in 0..n_classes-1 per sample, as int64.

    Raises
    ------
    DatasetError
        If the labels are not one-dimensional integers, their number differs from ``n``, or one
        is negative or (with ``n_classes``) too large; the message names the first bad one.
    """
    y = np.asarray(values)
    if y.ndim != 1 or y.dtype.kind not in NUMERIC_KINDS:
        raise DatasetError(f"{source}: labels must be one integer per sample, got an array of "
                           f"shape {y.shape} and type {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.array_equal(y, np.round(y)):
            raise DatasetError(f"{source}: labels must be whole numbers, got {y.dtype} values")
    if len(y) != n:
        raise DatasetError(f"{source}: {len(y)} labels for {n} samples")
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= (n_classes if n_classes is not None else math.inf)))
    if len(bad):
        allowed = "non-negative" if n_classes is None else f"in 0..{n_classes - 1}"
        raise DatasetError(f"{source}: label {y[bad[0]]} of sample {bad[0]} is not {allowed}")
    y.setflags(write=False)
    return y


class Dataset(ABC):
    """Samples with optional labels, read in chunks under a declared preprocessing.

    Subclasses implement ``__len__`` and :meth:`_raw_chunks` (raw samples of an index range,
    in order); everything else is shared.
    """

    def __init__(self, source: str, preprocessing: Preprocessing | None = None,
                 labels: np.ndarray | None = None, classes: Sequence[str] | None = None,
                 attribution: str | None = None) -> None:
        self.source = source
        self.preprocessing = preprocessing if preprocessing is not None else Preprocessing()
        self.classes = tuple(classes) if classes is not None else None
        self._labels = labels
        self.attribution = attribution

    @abstractmethod
    def __len__(self) -> int:
        """The number of samples."""

    @abstractmethod
    def _raw_chunks(self, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
        """Raw samples ``start..stop-1`` in order, as arrays of at most ``size`` samples."""

    @property
    def labels(self) -> np.ndarray | None:
        """One int64 label per sample (read-only), or ``None``."""
        return self._labels

    @property
    def n_classes(self) -> int | None:
        """The number of classes: the class names', else one more than the largest label."""
        if self.classes is not None:
            return len(self.classes)
        return int(self._labels.max()) + 1 if self._labels is not None else None

    def targets(self) -> np.ndarray:
        """The labels, as per-sample targets; a :class:`DatasetError` if there are none."""
        if self._labels is None:
            raise DatasetError(f"{self.source}: the dataset has no labels, so they cannot be "
                               f"used as targets")
        return self._labels

    def chunks(self, size: int, start: int = 0, stop: int | None = None) -> Iterator[Chunk]:
        """Samples ``start..stop-1`` (default: all) as chunks of ``size``, in index order.

        Every sample of the range is in exactly one chunk; only the last may be shorter.
        """
        n = len(self)
        stop = n if stop is None else stop
        if not isinstance(size, (int, np.integer)) or size < 1:
            raise DatasetError(f"chunk size must be a positive integer, got {size!r}")
        if not 0 <= start <= stop <= n:
            raise DatasetError(f"range {start}..{stop} is outside the dataset's 0..{n}")
        position = start
        for raw in self._raw_chunks(start, stop, int(size)):
            indices = np.arange(position, position + len(raw))
            labels = self._labels[position : position + len(raw)] if self._labels is not None \
                else None
            position += len(raw)
            yield Chunk(indices, self.preprocessing.apply(raw), labels)

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Samples ``start..stop-1`` preprocessed, as one array (holds the whole range)."""
        stop = len(self) if stop is None else stop
        parts = [c.x for c in self.chunks(max(stop - start, 1), start, stop)]
        if not parts:
            raise DatasetError(f"{self.source}: the range {start}..{stop} holds no samples")
        return parts[0]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """The shape of one preprocessed sample (reads the first sample)."""
        return tuple(self.read(0, 1).shape[1:])

    def as_dict(self) -> dict[str, Any]:
        """Where the samples come from and how they are preprocessed, for every output."""
        out: dict[str, Any] = {
            "kind": type(self).__name__,
            "source": self.source,
            "samples": len(self),
            "labels": self._labels is not None,
            "classes": list(self.classes) if self.classes is not None else None,
            "preprocessing": self.preprocessing.as_dict(),
        }
        if self.attribution:
            out["attribution"] = self.attribution
        return out

    def describe(self) -> str:
        """One line: kind, source, size, labels and preprocessing."""
        labels = f"{self.n_classes} classes" if self._labels is not None else "no labels"
        return (f"{type(self).__name__} {self.source}: {len(self)} samples, {labels}; "
                f"preprocessing: {self.preprocessing.describe()}")

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _check_stack(x: Any, source: str, preprocessing: Preprocessing) -> Any:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise DatasetError(f"{source}: no samples (array of shape {x.shape})")
    if x.dtype.kind not in NUMERIC_KINDS:
        raise DatasetError(f"{source}: samples must be numbers, got type {x.dtype}")
    if preprocessing.touches_images:
        raise DatasetError(f"{source}: the preprocessing declares a colour mode or resize, "
                           f"which apply to image folders only")
    return x


class ArrayDataset(Dataset):
    """Samples of an array (in memory or memory-mapped), first axis the sample axis.

    Parameters
    ----------
    x : array-like
        Raw samples, shape (samples, …), numbers or booleans.
    labels : array-like, optional
        One integer label per sample.
    classes : sequence of str, optional
        Class names; labels must then lie in 0..len(classes)-1.
    preprocessing : Preprocessing, optional
        Applied to every chunk (default: cast to float32 only).
    source : str
        How outputs name the data.
    """

    def __init__(self, x: Any, labels: Any = None, classes: Sequence[str] | None = None,
                 preprocessing: Preprocessing | None = None, source: str = "array",
                 attribution: str | None = None) -> None:
        prep = preprocessing if preprocessing is not None else Preprocessing()
        self._x = _check_stack(x, source, prep)
        n_classes = len(classes) if classes is not None else None
        y = as_labels(labels, len(self._x), source, n_classes) if labels is not None else None
        super().__init__(source, prep, y, classes, attribution)

    def __len__(self) -> int:
        return int(self._x.shape[0])

    def _raw_chunks(self, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
        for s in range(start, stop, size):
            yield np.asarray(self._x[s : min(s + size, stop)])


def _load_npy(path: Path, what: str) -> np.ndarray:
    """The ``.npy`` file at ``path``, memory-mapped (read-only)."""
    if not path.is_file():
        raise DatasetError(f"{path}: {what} file not found")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: cannot read {what}: {str(exc).splitlines()[0]}") from None


class NpyDataset(ArrayDataset):
    """A ``.npy`` stack, memory-mapped; labels from another ``.npy`` file or an array."""

    def __init__(self, path: str | Path, labels: str | Path | Any = None,
                 classes: Sequence[str] | None = None,
                 preprocessing: Preprocessing | None = None) -> None:
        path = Path(path)
        if isinstance(labels, (str, Path)):
            labels = _load_npy(Path(labels), "labels")
        super().__init__(_load_npy(path, "samples"), labels, classes, preprocessing, str(path))

    def __getstate__(self) -> dict[str, Any]:
        # a worker re-maps the file instead of receiving its contents
        return {k: v for k, v in self.__dict__.items() if k != "_x"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._x = _load_npy(Path(self.source), "samples")


class _NpyMember:
    """The header of one ``.npy`` member of an ``.npz`` archive, for reading rows as a stream."""

    def __init__(self, path: Path, name: str) -> None:
        self.path, self.name = path, name
        with zipfile.ZipFile(path) as archive, archive.open(name) as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read_header is None:
                    raise ValueError(f"unsupported .npy format version {version}")
                self.shape, self.fortran, self.dtype = read_header(f)
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
                raise DatasetError(f"{path}: cannot read member {name}: "
                                   f"{str(exc).splitlines()[0]}") from None
            self.offset = f.tell()
        if self.dtype.hasobject:
            raise DatasetError(f"{path}: member {name} holds Python objects, not numbers")

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def rows(self, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
        """Rows ``start..stop-1`` in pieces of ``size``, decompressed sequentially."""
        row = self.dtype.itemsize * math.prod(self.shape[1:])
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.name) as f:
                f.seek(self.offset + start * row)
                for s in range(start, stop, size):
                    n = min(size, stop - s)
                    data = f.read(n * row)
                    if len(data) != n * row:
                        raise DatasetError(f"{self.path}: member {self.name} is truncated")
                    yield np.frombuffer(data, dtype=self.dtype).reshape((n, *self.shape[1:]))
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DatasetError(f"{self.path}: cannot read member {self.name}: "
                               f"{str(exc).splitlines()[0]}") from None


def _small_member(path: Path, key: str) -> np.ndarray:
    """Member ``key`` of the archive at ``path``, read whole."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return data[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path}: cannot read array {key!r}: {str(exc).splitlines()[0]}"
                           ) from None


class NpzDataset(Dataset):
    """Samples of one member of an ``.npz`` archive, streamed, and labels from another.

    Parameters
    ----------
    path : str or Path
        The archive (compressed or not).
    x_key, y_key : str
        Member names of samples and labels. Without a ``y_key`` member the dataset has no labels,
        unless ``y_key`` was given explicitly, which makes its absence an error.
    labels : array-like or path of a ``.npy``, optional
        Labels given separately instead of a member.
    """

    def __init__(self, path: str | Path, x_key: str = "x", y_key: str | None = None,
                 labels: str | Path | Any = None, classes: Sequence[str] | None = None,
                 preprocessing: Preprocessing | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: samples file not found")
        try:
            with zipfile.ZipFile(path) as archive:
                keys = [n[:-4] for n in archive.namelist() if n.endswith(".npy")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"{path}: not an .npz archive ({exc})") from None
        for key, required in ((x_key, True), (y_key or "y", y_key is not None)):
            if required and key not in keys:
                raise DatasetError(f"{path}: no array {key!r} in the archive (it has {keys})")
        self._x = _NpyMember(path, f"{x_key}.npy")
        prep = preprocessing if preprocessing is not None else Preprocessing()
        _check_stack(self._x, str(path), prep)
        if labels is None and (y_key or "y") in keys:
            labels = _small_member(path, y_key or "y")
        elif isinstance(labels, (str, Path)):
            labels = _load_npy(Path(labels), "labels")
        n_classes = len(classes) if classes is not None else None
        y = as_labels(labels, self._x.shape[0], str(path), n_classes) if labels is not None \
            else None
        # a text member "source" is the data's attribution (the bundled digits have one)
        text = _small_member(path, "source") if "source" in keys else None
        attribution = str(text) if text is not None and text.dtype.kind == "U" else None
        super().__init__(str(path), prep, y, classes, attribution)

    def __len__(self) -> int:
        return int(self._x.shape[0])

    def _raw_chunks(self, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
        if self._x.fortran and len(self._x.shape) > 1:
            # column-major rows are not contiguous: read the member once, then slice it
            x = _small_member(Path(self.source), self._x.name[:-4])
            for s in range(start, stop, size):
                yield x[s : min(s + size, stop)]
            return
        yield from self._x.rows(start, stop, size)
