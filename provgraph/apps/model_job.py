"""The model side of a dataset job: a picklable model reference, its forward pass, its explainers.

A dataset job (:mod:`provgraph.apps.streaming`) may be shipped to other processes, so it holds
the model as a file path or as ONNX bytes, never as a loaded object: :class:`ModelRef` keeps a
:class:`~provgraph.apps.model_handle.ModelHandle` (pickled as its sha256, the bytes sent once per
worker), loads the network and builds explainers on first use and drops them when pickled.
Every output records :meth:`ModelRef.record` (the model's sha256) and :func:`case_record`
(semiring, rule, Θ).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.dataset_errors import DatasetError
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.relevance_job import torch_threads
from provgraph.errors import InputError


@dataclass(frozen=True)
class Case:
    """One way of explaining: a semiring with a rule and a Θ (``None``: the semiring's default).

    Written ``semiring`` or ``semiring/rule`` (``"real/epsilon:0.01"``, ``"boolean/lrp0"``).
    """

    semiring: str
    rule: str | None = None
    theta: str | float | None = None

    @classmethod
    def parse(cls, text: str, theta: str | float | None = None) -> Case:
        """``"semiring"`` or ``"semiring/rule"``; a one-line error for anything else."""
        from provgraph.algebra.semirings import BUILTIN_SEMIRINGS

        name, _, rule = text.strip().partition("/")
        name = name.strip().lower()
        if name not in BUILTIN_SEMIRINGS:
            raise InputError(f"unknown semiring {name!r} in {text!r}; choose from "
                             f"{', '.join(BUILTIN_SEMIRINGS)}")
        return cls(name, rule.strip() or None, theta)

    @property
    def label(self) -> str:
        """``semiring/rule`` with the rule and Θ actually used (defaults resolved)."""
        rule, theta = self.resolved()
        return f"{self.semiring}/{rule}" + (f" Θ={theta}" if self.theta is not None else "")

    def resolved(self) -> tuple[str, str]:
        """``(rule, Θ)`` as text, the semiring's defaults filled in."""
        from provgraph.algebra.semirings import get_semiring

        k = get_semiring(self.semiring)
        rule = self.rule if self.rule is not None else str(k.default_rule)
        theta = self.theta if self.theta is not None else k.default_theta
        return rule, str(theta)


def case_record(case: Case) -> dict[str, str]:
    """Semiring, rule and Θ of ``case`` for an output's metadata."""
    rule, theta = case.resolved()
    return {"semiring": case.semiring, "rule": rule, "theta": theta}


class ModelRef:
    """A model given as a path or ONNX bytes, loaded lazily, picklable.

    Parameters
    ----------
    model : str, Path or bytes
        An ONNX file or its bytes.
    backend : str
        Backend of the explainers (``"torch"``: batches in one pass).
    device, counting : str, optional
        The torch backend's device and Counting carrier (``"int64"``, ``"float64"``, ``"log"``).
    threads : int
        Torch threads of every forward pass and explanation. Float64 sums in torch depend on
        how many threads split them, so a fixed count makes a sample's relevance the same in
        every process (this one, any cluster worker).
    """

    def __init__(self, model: str | Path | bytes, backend: str = "torch",
                 device: str | None = None, counting: str | None = None,
                 threads: int = 1) -> None:
        if isinstance(model, (str, Path)):
            path = Path(model)
            if not path.is_file():
                raise InputError(f"{path}: model file not found")
            self.model = str(path)
        elif isinstance(model, (bytes, bytearray)):
            self.model = f"<{len(model)} bytes>"
        else:
            raise InputError(f"a dataset job takes the model as a path or ONNX bytes, got "
                             f"{type(model).__name__}")
        # pickled as its sha256: the bytes reach each worker once (model_handle)
        self.handle = ModelHandle(model)
        self.sha256 = self.handle.sha256
        self.backend, self.device, self.counting = backend, device, counting
        self.threads = int(threads)
        self._explainers: dict[Any, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_explainers": {}}

    @property
    def network(self) -> Any:
        """The imported :class:`~provgraph.model.network.Network` (once per process)."""
        return self.handle.network()

    def record(self) -> dict[str, str]:
        """What identifies the model in outputs: its source and sha256."""
        return {"model": self.model, "model_sha256": self.sha256, "backend": self.backend,
                "device": self.device or "cpu"}

    def explainer(self, case: Case, init: str = "one") -> Any:
        """The :class:`~provgraph.engine.explainer.Explainer` of ``case`` (built once)."""
        key = (case, init)
        if key not in self._explainers:
            from provgraph.engine.explainer import Explainer

            backend: Any = self.backend
            if self.device is not None or self.counting is not None:
                from provgraph.backends import get_backend

                options = {"device": self.device or "cpu"}
                if self.counting is not None:
                    options["counting"] = self.counting
                backend = get_backend("torch", **options)
            # float64 throughout: the real relevance of a sample must not depend on its chunk
            self._explainers[key] = Explainer(self.network, case.semiring, rule=case.rule,
                                              theta=case.theta, init=init, backend=backend,
                                              dtype="float64")
        return self._explainers[key]

    def explain(self, case: Case, x: np.ndarray, targets: np.ndarray | None) -> Any:
        """Batch relevance of ``x``, one target per sample (``None``: each predicted class);
        the explainer groups samples by target, so each sample is explained for its own only."""
        with torch_threads(self.threads):
            return self.explainer(case)(x, target=None if targets is None else targets.tolist())

    def tie_breaker(self, x: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Real LRP-0 relevance (logit initialisation) of each sample's target, ``(B, inputs)``:
        the secondary ranking key of :mod:`provgraph.apps.ranking`."""
        with torch_threads(self.threads):
            rel = self.explainer(Case("real", "lrp0"), init="logit")(x, target=targets.tolist())
        return np.asarray(rel.input, dtype=np.float64).reshape(len(x), -1)

    def batch(self, x: np.ndarray) -> np.ndarray:
        """A chunk's samples as ``(B, *input_shape)`` float64 (the dataset's samples may be flat
        or images of the same number of values)."""
        x = np.asarray(x, dtype=np.float64)
        shape = tuple(self.network.input_shape)
        if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise DatasetError(f"samples of shape {x.shape[1:]} do not fit the model's input "
                               f"{shape}; declare a resize or another shape")
        return x.reshape((len(x), *shape))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``(B, classes)`` logits of a batch (float64 forward pass)."""
        from provgraph.model.trace import forward_trace

        with torch_threads(self.threads):
            return forward_trace(self.network, x).logits

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(B, classes)`` softmax of the logits."""
        return softmax(self.logits(x))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise ``exp(z − max z) / Σ exp(z − max z)``."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dataset_targets(chunk: Any, logits: np.ndarray, mode: str) -> np.ndarray:
    """Per-sample targets of a :class:`~provgraph.apps.datasets.Chunk`: its labels
    (``mode="label"``) or the predicted classes (``"predicted"``).

    Raises
    ------
    DatasetError
        A label outside the model's classes (naming the sample), or no labels where they are
        the targets.
    """
    n_classes = logits.shape[1]
    if chunk.labels is not None:
        labels = np.asarray(chunk.labels, dtype=np.int64)
        bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
        if len(bad):
            raise DatasetError(f"label {labels[bad[0]]} of sample {chunk.indices[bad[0]]} is not "
                               f"in 0..{n_classes - 1} (the model has {n_classes} classes)")
    if mode == "predicted":
        return np.argmax(logits, axis=1).astype(np.int64)
    if mode != "label":
        raise InputError(f"targets must be 'label' or 'predicted', got {mode!r}")
    if chunk.labels is None:
        raise DatasetError("the dataset has no labels; explain the predicted classes instead")
    return np.asarray(chunk.labels, dtype=np.int64)
