"""Atomic file output: write to a temporary file beside the target, then rename.

A reader never sees a half-written file, and an interrupted write leaves the previous file (or
none) in place. A path that cannot be written is a one-line :class:`ProvgraphError`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from provgraph.errors import ProvgraphError


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write`` on a temporary file in ``path``'s folder, then move it into place.

    Raises
    ------
    ProvgraphError
        The folder cannot be created or the file cannot be written (message names the path).
    """
    path = Path(path)
    _make_folder(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ProvgraphError(f"{path}: cannot write: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise ProvgraphError(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException:
        _remove(tmp)
        raise


def _make_folder(path: Path) -> None:
    """Create ``path``'s missing folders, except directly below the file system's root: an
    absolute path with a typo must not create folders there."""
    folder = path.parent
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ProvgraphError(f"{path}: cannot write: {existing} is a file, not a folder")
    if existing == folder:
        return
    root = Path(existing.resolve().anchor)
    if existing.resolve() == root and not Path.cwd().resolve() == root:
        raise ProvgraphError(
            f"{path}: cannot write: the folder {folder} does not exist, and provgraph does not "
            f"create folders in {root} (create it first)"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProvgraphError(f"{path}: cannot write: {exc.strerror or exc}") from None


def atomic_save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """``numpy.savez_compressed`` of ``arrays`` to ``path``, atomically."""
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def _remove(tmp: str) -> None:
    if os.path.exists(tmp):
        os.unlink(tmp)
