"""A model that travels as bytes once per process and is loaded once per process.

A :class:`ModelHandle` holds the ONNX bytes of a model and their sha256. Pickled, it carries only
the digest and the loading options, so a dataset job's reduction can be sent with every task
without the model; the bytes reach each worker once (:func:`provide_models`) and the model is
imported once per process, cached by digest (:meth:`ModelHandle.network`).
"""

from __future__ import annotations

import hashlib
import io
import pickle
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provgraph.errors import ModelLoadError

if TYPE_CHECKING:
    from provgraph.model.network import Network

_BYTES: dict[str, bytes] = {}
_NETWORKS: dict[tuple[str, str | None, tuple[int, ...] | None], Network] = {}
_LOCK = threading.Lock()


class ModelHandle:
    """An ONNX model by content: ``sha256`` of its bytes, plus how to import it.

    Parameters
    ----------
    model : str, Path or bytes
        An ONNX file or its bytes.
    output : str, optional
        Name of the logits tensor (see :func:`provgraph.api.load`).
    input_shape : tuple of int, optional
        One sample's shape, for dynamic model inputs.
    """

    def __init__(self, model: str | Path | bytes, output: str | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
            self.name = "model bytes"
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelLoadError(f"{path}: model file not found")
            data = path.read_bytes()
            self.name = str(path)
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.output = output
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._bytes: bytes | None = data
        with _LOCK:
            _BYTES.setdefault(self.sha256, data)

    @property
    def payload(self) -> bytes:
        """The model's bytes (from this handle, or provided to this process)."""
        data = self._bytes if self._bytes is not None else _BYTES.get(self.sha256)
        if data is None:
            raise ModelLoadError(f"model {self.sha256[:12]} ({self.name}) was not provided to "
                                 f"this process")
        return data

    def network(self) -> Network:
        """The imported model, imported once per process and options."""
        key = (self.sha256, self.output, self.input_shape)
        with _LOCK:
            if key not in _NETWORKS:
                from provgraph.api import load

                _NETWORKS[key] = load(self.payload, output=self.output,
                                      input_shape=self.input_shape)
            return _NETWORKS[key]

    def describe(self) -> dict[str, Any]:
        """What identifies the model in a job's outputs and resume hashes."""
        return {"name": self.name, "sha256": self.sha256, "output": self.output,
                "input_shape": list(self.input_shape) if self.input_shape else None}

    def __getstate__(self) -> dict[str, Any]:
        # the bytes travel separately, once per process (provide_models)
        return {k: v for k, v in self.__dict__.items() if k != "_bytes"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bytes = None

    def __repr__(self) -> str:
        return f"ModelHandle({self.name!r}, sha256={self.sha256[:12]}…)"


def provide_models(payloads: Mapping[str, bytes]) -> None:
    """Make the model bytes ``payloads`` (sha256 → bytes) known to this process."""
    with _LOCK:
        for digest, data in payloads.items():
            if hashlib.sha256(data).hexdigest() != digest:
                raise ModelLoadError(f"model bytes do not match their sha256 {digest[:12]}")
            _BYTES.setdefault(digest, data)


def _pickled(obj: Any, pickler: type[pickle.Pickler]) -> tuple[bytes, dict[str, ModelHandle]]:
    """``obj`` pickled by ``pickler`` with every :class:`ModelHandle` written as its digest,
    and the handles met on the way."""
    found: dict[str, ModelHandle] = {}

    class Finder(pickler):  # type: ignore[misc, valid-type]
        def persistent_id(self, o: Any) -> str | None:
            if isinstance(o, ModelHandle):
                found[o.sha256] = o
                return o.sha256
            return None

    buffer = io.BytesIO()
    Finder(buffer, protocol=4).dump(obj)
    return buffer.getvalue(), found


def fingerprint(obj: Any) -> tuple[str, dict[str, ModelHandle]]:
    """The sha256 of ``obj``'s pickle (handles pickled as their digest) and the handles in it.

    Objects the standard pickler refuses (lambdas) are pickled by ``cloudpickle`` when it is
    installed (it comes with the ``distributed`` extra).

    Raises
    ------
    ModelLoadError
        ``obj`` cannot be pickled.
    """
    try:
        data, found = _pickled(obj, pickle.Pickler)
    except (pickle.PicklingError, TypeError, AttributeError):
        try:
            import cloudpickle
        except ImportError:
            raise ModelLoadError(f"{type(obj).__name__} cannot be pickled (a lambda?); install "
                                 f"provgraph[distributed] or use a named function") from None
        try:
            data, found = _pickled(obj, cloudpickle.Pickler)
        except Exception as exc:  # cloudpickle raises many kinds
            raise ModelLoadError(f"{type(obj).__name__} cannot be pickled: {exc}") from None
    return hashlib.sha256(data).hexdigest(), found
