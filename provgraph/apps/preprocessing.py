"""Declared preprocessing: what is done to raw samples before a model sees them.

Nothing here is inferred from the data. A :class:`Preprocessing` states every step (colour mode,
resize, scale, per-channel normalisation, sample shape, dtype), is applied explicitly by the
datasets of :mod:`provgraph.apps.datasets`, and is recorded in every output through
:meth:`Preprocessing.as_dict` and :meth:`Preprocessing.describe`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from provgraph.apps.dataset_errors import DatasetError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_MODES = {"L": 1, "RGB": 3}
DTYPES = ("float32", "float64")


def _floats(values: Any, name: str) -> tuple[float, ...]:
    """``values`` (a number or a sequence of numbers) as a tuple of finite floats."""
    if values is None:
        return ()
    seq = (values,) if np.isscalar(values) else tuple(values)
    try:
        out = tuple(float(v) for v in seq)
    except (TypeError, ValueError):
        raise DatasetError(f"preprocessing {name} must be numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in out):
        raise DatasetError(f"preprocessing {name} must be finite, got {values!r}")
    return out


def _ints(values: Any, name: str) -> tuple[int, ...] | None:
    """``values`` as a tuple of positive ints, or ``None``."""
    if values is None:
        return None
    seq = (values,) if np.isscalar(values) else tuple(values)
    if not seq or not all(isinstance(v, (int, np.integer)) and v > 0 for v in seq):
        raise DatasetError(f"preprocessing {name} must be positive integers, got {values!r}")
    return tuple(int(v) for v in seq)


@dataclass(frozen=True)
class Preprocessing:
    """The declared transformation of raw samples, applied in this order.

    1. images only: convert to colour ``mode`` (``"L"`` grey or ``"RGB"``) and resize to
       ``size`` = (height, width) with bilinear resampling;
    2. ``x ← x · scale`` (``scale=1/255`` maps 8-bit pixels to [0, 1], as torchvision's
       ``ToTensor``);
    3. per channel c: ``x_c ← (x_c − mean_c) / std_c`` (torchvision's ``Normalize``); one value
       applies to every channel, several need samples shaped (channels, …);
    4. each sample reshaped to ``shape`` (for example ``(784,)`` for a flat MLP input);
    5. cast to ``dtype``.

    The default does nothing but cast to float32: a uint8 stack stays in 0..255 unless
    ``scale`` says otherwise.

    Parameters
    ----------
    scale : float
        Factor applied to the raw values.
    mean, std : tuple of float
        Per-channel mean and standard deviation; empty means 0 and 1.
    size : (int, int), optional
        (height, width) images are resized to; image sources only.
    mode : {"L", "RGB"}, optional
        Colour mode images are converted to; image sources only.
    shape : tuple of int, optional
        Shape of one sample after preprocessing.
    dtype : {"float32", "float64"}
        Floating-point type of the samples.
    """

    scale: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    size: tuple[int, int] | None = None
    mode: str | None = None
    shape: tuple[int, ...] | None = None
    dtype: str = "float32"

    def __post_init__(self) -> None:
        scales = _floats(self.scale, "scale")
        scale = scales[0] if len(scales) == 1 else 0.0
        if scale == 0.0:
            raise DatasetError(f"preprocessing scale must be a finite non-zero number, "
                               f"got {self.scale!r}")
        mean, std = _floats(self.mean, "mean"), _floats(self.std, "std")
        if mean and std and len(mean) != len(std):
            raise DatasetError(f"preprocessing mean has {len(mean)} values but std has {len(std)}")
        if any(s <= 0.0 for s in std):
            raise DatasetError(f"preprocessing std must be positive, got {std}")
        size = _ints(self.size, "size")
        if size is not None and len(size) != 2:
            raise DatasetError(f"preprocessing size must be (height, width), got {self.size!r}")
        if self.mode is not None and self.mode not in IMAGE_MODES:
            raise DatasetError(f"preprocessing mode must be 'L' or 'RGB', got {self.mode!r}")
        if self.dtype not in DTYPES:
            raise DatasetError(f"preprocessing dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name, value in (("scale", scale), ("mean", mean), ("std", std), ("size", size),
                            ("shape", _ints(self.shape, "shape"))):
            object.__setattr__(self, name, value)

    @property
    def touches_images(self) -> bool:
        """Whether a step applies to images only (colour mode or resize)."""
        return self.size is not None or self.mode is not None

    @property
    def channels(self) -> int:
        """The number of channels the normalisation declares (1 when it declares none)."""
        return max(len(self.mean), len(self.std), 1)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Steps 2–5 on a batch ``raw`` of shape (samples, …); a new array of ``dtype``.

        Raises
        ------
        DatasetError
            If the per-channel values do not match the samples' channels, or the samples do
            not have ``shape``'s number of values.
        """
        x = np.asarray(raw, dtype=np.float64)
        if self.scale != 1.0:
            x = x * self.scale
        if self.mean or self.std:
            x = self._normalise(x)
        if self.shape is not None:
            n = math.prod(self.shape)
            if math.prod(x.shape[1:]) != n:
                raise DatasetError(f"samples of shape {x.shape[1:]} cannot be reshaped to the "
                                   f"declared shape {self.shape}")
            x = x.reshape((len(x), *self.shape))
        return np.array(x, dtype=self.dtype, copy=True)

    def _normalise(self, x: np.ndarray) -> np.ndarray:
        c = self.channels
        mean = np.asarray(self.mean or (0.0,) * c)
        std = np.asarray(self.std or (1.0,) * c)
        if c == 1:
            return (x - mean[0]) / std[0]
        if x.ndim < 3 or x.shape[1] != c:
            raise DatasetError(f"preprocessing declares {c} channels but samples have shape "
                               f"{x.shape[1:]} (channels first expected)")
        view = (1, c) + (1,) * (x.ndim - 2)
        return (x - mean.reshape(view)) / std.reshape(view)

    def image(self, img: Image.Image, path: Path, reference: tuple[str, tuple[int, int]] | None
              ) -> tuple[np.ndarray, tuple[str, tuple[int, int]]]:
        """Step 1 on one image: raw pixel values shaped (channels, height, width).

        ``reference`` is the (mode, size) of the dataset's first image, which every image
        must share when ``mode`` or ``size`` are not declared. Returns the array and the
        image's own (mode, size) before conversion.

        Raises
        ------
        DatasetError
            Naming ``path``, if its mode or size differ from ``reference`` where nothing
            declares a conversion, or its mode is neither grey nor RGB.
        """
        from PIL import Image

        own = (img.mode, img.size)
        mode = self.mode or img.mode
        if self.mode is None and reference is not None and img.mode != reference[0]:
            raise DatasetError(f"{path}: colour mode {img.mode} differs from the first image's "
                               f"{reference[0]}; declare mode='L' or mode='RGB'")
        if mode not in IMAGE_MODES:
            raise DatasetError(f"{path}: colour mode {img.mode} is neither grey nor RGB; "
                               f"declare mode='L' or mode='RGB'")
        if self.size is None and reference is not None and img.size != reference[1]:
            raise DatasetError(f"{path}: size {img.size[0]}x{img.size[1]} differs from the first "
                               f"image's {reference[1][0]}x{reference[1][1]}; declare a resize")
        if img.mode != mode:
            img = img.convert(mode)
        if self.size is not None and img.size != (self.size[1], self.size[0]):
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float64)
        return (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)), own

    def describe(self) -> str:
        """The steps in one line, for logs and figure captions (``"none"`` when empty)."""
        steps = []
        if self.mode is not None:
            steps.append(f"mode {self.mode}")
        if self.size is not None:
            steps.append(f"resize to {self.size[0]}x{self.size[1]} (bilinear)")
        if self.scale != 1.0:
            steps.append(f"scale x{self.scale:.6g}")
        if self.mean or self.std:
            steps.append(f"normalise mean {list(self.mean) or [0.0]} std {list(self.std) or [1.0]}")
        if self.shape is not None:
            steps.append(f"shape {self.shape}")
        return ", ".join(steps + [self.dtype])

    def as_dict(self) -> dict[str, Any]:
        """Every field as JSON-compatible values; :meth:`from_dict` reads it back."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessing:
        """The preprocessing :meth:`as_dict` recorded."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DatasetError(f"unknown preprocessing fields {unknown}; known: {sorted(names)}")
        return cls(**data)
