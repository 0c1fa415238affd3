"""A folder of images, one subfolder per class (torchvision's ``ImageFolder`` convention).

Classes are the subfolders sorted by name (class index = position in that order), images are
sorted by file name within each class, and samples run class by class. Images are decoded with
Pillow one at a time, so a chunk is all that is held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.datasets import Dataset, as_labels
from provgraph.apps.preprocessing import Preprocessing

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff",
                  ".webp")


def _visible(entries: Iterator[Path]) -> list[Path]:
    """Entries sorted by name, hidden ones (``.DS_Store``, ``.git``) left out."""
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


class ImageFolder(Dataset):
    """Images in ``root/<class>/<image>``, labelled by their class folder.

    Parameters
    ----------
    root : str or Path
        The folder holding one subfolder per class.
    preprocessing : Preprocessing, optional
        Declared colour mode, resize, scale, normalisation and shape. Without a declared mode or
        size every image must have the first image's.

    Raises
    ------
    DatasetError
        If ``root`` is not a folder, has no class folders, a class folder has no images, or holds
        a file that is not an image (named); reading an image that is unreadable, or of another
        size or mode than declared, names the file.
    """

    def __init__(self, root: str | Path, preprocessing: Preprocessing | None = None) -> None:
        root = Path(root)
        if not root.is_dir():
            raise DatasetError(f"{root}: image folder not found")
        entries = _visible(root.iterdir())
        stray = [e for e in entries if not e.is_dir()]
        if stray:
            raise DatasetError(f"{stray[0]}: a file directly in the image folder; images go in "
                               f"one subfolder per class")
        if not entries:
            raise DatasetError(f"{root}: empty image folder (expected one subfolder per class)")
        files: list[Path] = []
        labels: list[int] = []
        for index, folder in enumerate(entries):
            images = _visible(folder.iterdir())
            nested = [p for p in images if p.is_dir()]
            if nested:
                raise DatasetError(f"{nested[0]}: a folder inside a class folder; each class "
                                   f"folder holds its images directly")
            other = [p for p in images if p.suffix.lower() not in IMAGE_SUFFIXES]
            if other:
                raise DatasetError(f"{other[0]}: not an image file (expected "
                                   f"{', '.join(IMAGE_SUFFIXES)})")
            if not images:
                raise DatasetError(f"{folder}: class folder without images")
            files += images
            labels += [index] * len(images)
        self.files = tuple(files)
        classes = [e.name for e in entries]
        super().__init__(str(root), preprocessing,
                         as_labels(np.array(labels), len(files), str(root), len(classes)),
                         classes)
        self._reference: tuple[str, tuple[int, int]] | None = None

    def __len__(self) -> int:
        return len(self.files)

    def _raw_chunks(self, start: int, stop: int, size: int) -> Iterator[np.ndarray]:
        for s in range(start, stop, size):
            yield np.stack([self._decode(p) for p in self.files[s : min(s + size, stop)]])

    def _decode(self, path: Path) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        if self._reference is None and path != self.files[0]:
            self._decode(self.files[0])  # every image is compared with the first one
        try:
            with Image.open(path) as img:
                img.load()
                arr, own = self.preprocessing.image(img, path, self._reference)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DatasetError(f"{path}: not a readable image ({reason})") from None
        if self._reference is None:
            self._reference = own
        return arr
