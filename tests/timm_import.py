"""Import ``timm`` beside a torch build whose torchvision C extension does not load.

timm imports torchvision, whose ``__init__`` registers fake kernels for its ``nms`` and ``qnms``
operators; without the C extension these operators do not exist and the import fails. Defining
their schemas first lets the pure-Python parts of torchvision (and so timm) load; no torchvision
operator is ever run.
"""

from __future__ import annotations

import importlib
import sys
import types

import torch

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor",
}
_library: torch.library.Library | None = None


def import_timm() -> types.ModuleType:
    """The ``timm`` package, with torchvision's operator schemas defined where it needs them."""
    global _library
    try:
        return importlib.import_module("timm")
    except (RuntimeError, ImportError):  # "operator torchvision::nms does not exist", or a
        pass  # torchvision stand-in of another test (tests/zennit_import.py) in this process
    if _library is None:
        _library = torch.library.Library("torchvision", "DEF")
        for op, schema in _SCHEMAS.items():
            try:
                _library.define(op + schema)
            except RuntimeError:  # already defined by a loaded extension
                pass

    for name in [m for m in sys.modules if m.split(".")[0] in ("torchvision", "timm")]:
        del sys.modules[name]
    return importlib.import_module("timm")
