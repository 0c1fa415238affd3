"""Reading samples from files: ``.npy``, ``.npz``, ``.png``, ``.jpg``, shaped for a network."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from provgraph.errors import InputError
from provgraph.model.network import Network

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


def read_input(path: str | Path, network: Network) -> np.ndarray:
    """The array stored in ``path``, shaped for ``network`` (one sample or a batch).

    Images are scaled to [0, 1]; they are converted to grayscale or RGB and resized to the
    network's spatial size ((C, H, W) inputs, or flat inputs of a square number of pixels).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: input file not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                key = "x" if "x" in data.files else data.files[0]
                return data[key]
        if suffix in IMAGE_SUFFIXES:
            return read_image(path, network.input_shape)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: cannot read input: {str(exc).splitlines()[0]}") from None
    raise InputError(f"{path}: unsupported input format {suffix!r}; use .npy, .npz, .png or .jpg")


def image_layout(input_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(channels, height, width)`` an image must have for this input shape, or ``None``."""
    if len(input_shape) == 3 and input_shape[0] in (1, 3):
        return input_shape[0], input_shape[1], input_shape[2]
    if len(input_shape) == 1:
        n = input_shape[0]
        for c in (1, 3):
            side = math.isqrt(n // c)
            if n % c == 0 and side * side * c == n:
                return c, side, side
    return None


def read_image(path: Path, input_shape: tuple[int, ...]) -> np.ndarray:
    """The image at ``path`` as floats in [0, 1], shaped ``input_shape``.

    An image converted to the network's colour mode (grey ↔ RGB) or resized to its spatial size
    is reported in one INFO line on the ``provgraph.io.inputs`` logger (shown by the command line
    unless ``-q``).
    """
    from PIL import Image, UnidentifiedImageError

    layout = image_layout(input_shape)
    if layout is None:
        raise InputError(f"{path}: the model's input shape {input_shape} is not an image")
    c, h, w = layout
    mode = "L" if c == 1 else "RGB"
    try:
        with Image.open(path) as img:
            changes = []
            if img.mode != mode:
                changes.append(f"converted {_mode_name(img.mode)} to {_mode_name(mode)}")
                img = img.convert(mode)
            if img.size != (w, h):
                changes.append(f"resized {img.size[0]}x{img.size[1]} to {w}x{h}")
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image") from None
    if changes:
        log.info("%s: %s for the model's input %s", path, " and ".join(changes), input_shape)
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    return arr.reshape(input_shape)


def _mode_name(mode: str) -> str:
    """PIL's image mode in words (``L`` → ``greyscale``)."""
    return {"L": "greyscale", "1": "black-and-white", "P": "palette", "LA": "greyscale+alpha",
            "RGBA": "RGBA", "RGB": "RGB", "I;16": "16-bit greyscale"}.get(mode, mode)
