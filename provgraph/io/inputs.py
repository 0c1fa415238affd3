"""Reading samples from files: ``.npy``, ``.npz``, ``.png``, ``.jpg``, shaped for a network."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from provgraph.errors import InputError
from provgraph.model.network import Network

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
    from PIL import Image, UnidentifiedImageError

    layout = image_layout(input_shape)
    if layout is None:
        raise InputError(f"{path}: the model's input shape {input_shape} is not an image")
    c, h, w = layout
    try:
        with Image.open(path) as img:
            img = img.convert("L" if c == 1 else "RGB")
            if img.size != (w, h):
                img = img.resize((w, h), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.float64) / 255.0
    except UnidentifiedImageError:
        raise InputError(f"{path}: not a readable image") from None
    arr = arr[None] if c == 1 else arr.transpose(2, 0, 1)
    return arr.reshape(input_shape)
