"""Explain a dataset: per-class relevance sums, means and non-zero frequencies, as a Reduction.

:class:`ClassRelevance` explains every sample for its own label (torch backend, float64) and
reduces the input relevance maps per class with
:class:`~provgraph.apps.streaming.ClassStatistics`: in the real semiring the class means
``(1/|S_c|) Σ_{i ∈ S_c} R_i``, in the Boolean semiring the relevance frequency per input
``(1/|S_c|) Σ_{i ∈ S_c} [R_i = 1]`` (the class-wise masks of Kersting and Wagner's K-LRP
"image mask computation"), in the Counting semiring exact path-count sums. The model is held
as a :class:`~provgraph.apps.model_handle.ModelHandle`, so it runs unchanged on a cluster.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.streaming import ClassPartial, ClassStatistics, ClassSummary

_EXPLAINERS: dict[str, Any] = {}
_LOCK = threading.Lock()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Torch computes with ``threads`` threads inside the block (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class ClassRelevance:
    """Per-class statistics of the input relevance of every sample, explained for its label.

    Parameters
    ----------
    model : ModelHandle, str, Path or bytes
        The classifier (an ONNX file or its bytes are wrapped in a handle).
    n_classes : int
        Number of classes; labels must lie in 0..n_classes-1.
    semiring : str
        A built-in semiring's name (``real``, ``boolean``, ``counting``, …).
    rule, theta, init : optional
        As in :func:`provgraph.api.explain` (names or numbers, so that the job can be hashed).
    counting : str, optional
        The torch backend's path counts for the Counting semiring (``int64`` exact, default).
    threads : int
        Torch threads while explaining. Float64 sums in torch depend on how many threads split
        them, so a fixed count (default 1) makes real-valued results identical in every process;
        the job's parallelism comes from its partitions.
    """

    def __init__(self, model: ModelHandle | Any, n_classes: int, semiring: str = "real",
                 rule: str | None = None, theta: str | float | None = None,
                 init: str = "one", counting: str | None = None, threads: int = 1) -> None:
        self.model = model if isinstance(model, ModelHandle) else ModelHandle(model)
        self.n_classes = ClassStatistics(n_classes).n_classes  # checked there
        self.settings = {"semiring": semiring, "rule": rule, "theta": theta, "init": init,
                         "counting": counting}
        self.threads = int(threads)
        self._explainer()  # bad settings fail here, not on a worker

    def _explainer(self) -> Any:
        """The explainer of this model and settings, built once per process."""
        key = json.dumps([self.model.sha256, self.settings], sort_keys=True, default=str)
        with _LOCK:
            if key not in _EXPLAINERS:
                import torch

                from provgraph.backends import get_backend
                from provgraph.engine.explainer import Explainer

                options = {"counting": self.settings["counting"]} if self.settings["counting"] \
                    else {}
                _EXPLAINERS[key] = Explainer(
                    self.model.network(), self.settings["semiring"], rule=self.settings["rule"],
                    theta=self.settings["theta"], init=self.settings["init"],
                    backend=get_backend("torch", device="cpu", **options), dtype=torch.float64,
                    keep=())
            return _EXPLAINERS[key]

    def relevance(self, chunk: Chunk) -> np.ndarray:
        """Input relevance of the chunk's samples for their labels, ``(samples, *input)``."""
        explainer = self._explainer()
        with torch_threads(self.threads):
            batch = explainer.explain_batch(self._as_input(chunk.x, explainer.network),
                                            np.asarray(chunk.targets()))
        return np.asarray(batch.input).reshape((len(chunk.indices), *chunk.x.shape[1:]))

    @staticmethod
    def _as_input(x: np.ndarray, network: Any) -> np.ndarray:
        """Samples laid out as the model's input when only the layout differs (a 28×28 image
        for a flat 784 input); anything else is left for the explainer to refuse."""
        shape = tuple(network.input_shape)
        if x.shape[1:] != shape and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
            return x.reshape((len(x), *shape))
        return x

    def map(self, chunk: Chunk) -> ClassPartial:
        """Per-class sums and non-zero counts of the chunk's relevance maps."""
        return self.map_with_outputs(chunk)[0]

    def map_with_outputs(self, chunk: Chunk) -> tuple[ClassPartial, dict[str, np.ndarray]]:
        """The partial and the per-sample outputs: ``relevance`` maps and ``label`` s."""
        maps = self.relevance(chunk)
        partial = ClassStatistics(self.n_classes, values=lambda _: maps).map(chunk)
        return partial, {"relevance": maps, "label": np.asarray(chunk.targets())}

    def combine(self, a: ClassPartial, b: ClassPartial) -> ClassPartial:
        """Elementwise sums (exact for Boolean and Counting)."""
        return ClassStatistics(self.n_classes).combine(a, b)

    def finish(self, partial: ClassPartial) -> ClassSummary:
        """Counts, sums, non-zero counts; ``.means`` and ``.frequencies`` derived."""
        return ClassStatistics(self.n_classes).finish(partial)

    def describe(self) -> dict[str, Any]:
        """The model and settings, for the job's outputs."""
        return {"model": self.model.describe(), "classes": self.n_classes, **self.settings}
