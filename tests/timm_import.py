"""Import ``timm`` and ``transformers`` beside a torchvision whose C extension does not load.

torchvision's ``__init__`` registers fake kernels for its ``nms`` and ``qnms`` operators; without
the C extension these operators do not exist and ``import torchvision`` fails, and with it every
package that imports torchvision (timm, and transformers' vision models, which check for it).
Defining the two schemas first lets the pure-Python parts of torchvision load; no torchvision
operator is ever run. :func:`make_torchvision_importable` runs once per test process
(``tests/conftest.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import torch

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None


def _forget(*packages: str) -> None:
    for name in [m for m in sys.modules if m.split(".")[0] in packages]:
        del sys.modules[name]


def make_torchvision_importable() -> None:
    """Define torchvision's operator schemas if an installed torchvision cannot load without
    them; nothing happens when torchvision is absent or loads by itself."""
    global _library
    if importlib.util.find_spec("torchvision") is None or _library is not None:
        return
    try:
        importlib.import_module("torchvision")
        return
    except (RuntimeError, ImportError):  # "operator torchvision::nms does not exist"
        _forget("torchvision")
    _library = torch.library.Library("torchvision", "DEF")
    for op, schema in _SCHEMAS.items():
        try:
            _library.define(op + schema)
        except RuntimeError:  # already defined by a loaded extension
            pass


def import_timm() -> types.ModuleType:
    """The ``timm`` package, with torchvision's operator schemas defined where it needs them."""
    try:
        return importlib.import_module("timm")
    except (RuntimeError, ImportError):
        pass
    make_torchvision_importable()
    _forget("torchvision", "timm")
    return importlib.import_module("timm")
