"""The entry object: a model and an explanation method configured once, called per input.

In the spirit of Zennit's attributors, an :class:`Explainer` holds the network, the semiring,
the rule or composite, Θ, the initialisation and the backend (with its device, dtype and batch
size), and is then called on inputs::

    explainer = Explainer("vgg16.onnx", "real", rule="epsilon", backend="torch")
    rel = explainer(x, target=3)          # one sample: a Relevance
    batch = explainer(xs, target=labels)  # a batch: a BatchRelevance, one label per sample

Every public explain call (:mod:`provgraph.api`) is a thin function over it, so every path runs
the same loop over chunks of samples and picks the same kernels: with a backend that runs
batches (torch) the trace is computed on that backend's device in its dtype and each chunk goes
through one backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from provgraph.algebra.composites import Composite
from provgraph.algebra.counting_carriers import COUNTING_MODES
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import RealSemiring, Semiring, get_semiring
from provgraph.algebra.theta import Theta
from provgraph.backends import Backend, get_backend
from provgraph.backends.torch_device import resolve_dtype
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph, BatchRelevance, runs_batches
from provgraph.engine.driver import check_method
from provgraph.engine.initialisation import InitSpec, check_target
from provgraph.engine.relevance import Relevance
from provgraph.errors import InputError, ProvgraphError, TargetError
from provgraph.model.network import Network
from provgraph.model.trace import forward_trace, split_batch

if TYPE_CHECKING:
    from provgraph.importers.model_sources import ModelSpec

TargetSpec = int | Sequence[int] | Sequence[Sequence[int]] | np.ndarray | torch.Tensor | None


@dataclass(frozen=True)
class Selection:
    """What ``backend="auto"`` looks at before any trace exists: the network's size and whether
    a batch of samples runs in one pass."""

    network: Network
    batched: bool


def default_dtype(semiring: Semiring) -> torch.dtype:
    """The torch backend's dtype when none is asked for.

    float32 for the real semiring (the precision Captum and Zennit compute LRP in, and the fast
    path); float64 for every other semiring, where Θ thresholds and exact path counts need it.
    The scipy reference always computes in float64.
    """
    return torch.float32 if isinstance(semiring, RealSemiring) else torch.float64


class Explainer:
    """A classifier and an explanation method, configured once and called per input or batch.

    Parameters
    ----------
    model
        An ONNX file path, ONNX bytes, an ``onnx.ModelProto``, a ``torch.nn.Module`` (with
        ``example_input``), or a :class:`~provgraph.model.network.Network`.
    semiring
        ``real``, ``boolean``, ``counting``, ``viterbi``, ``tropical``, ``fuzzy`` or an object.
    rule
        Rule or composite (object or name); ``None`` is the semiring's default.
    theta
        Θ : ℝ → K; a number is a threshold; ``None`` is the semiring's default.
    init
        ``"one"`` (K-LRP), ``"logit"`` (classic LRP), a vector, or a
        :class:`~provgraph.engine.initialisation.Contrastive`.
    backend
        ``"auto"`` (one sample: scipy within its edge budget, torch above it; a batch: torch),
        ``"scipy"``, ``"torch"`` / ``"torch:cuda"``, or a backend object.
    device
        Torch device of the trace and the kernels (``"cpu"``, ``"cuda"``, ``"auto"``); giving
        one selects the torch backend under ``"auto"``.
    dtype
        ``"float32"`` or ``"float64"`` for the torch backend; ``None`` is
        :func:`default_dtype`: float32 for the real semiring, float64 for the others. The scipy
        backend computes in float64 only.
    batch_size
        Samples per backward pass (``None``: the whole batch at once).
    keep
        Tensors whose relevance results keep (the input's always); ``None`` keeps all.
    progress
        Show a progress bar over the samples.
    output, input_shape, example_input
        How to import the model: the logits tensor's name, one sample's shape for dynamic ONNX
        inputs, and the example batch a ``torch.nn.Module`` is exported with
        (:func:`~provgraph.importers.model_sources.load_model`).

    Notes
    -----
    The explained class is chosen per call with ``target``: ``None`` explains each sample's
    predicted class; an integer that class for every sample. For one sample, a list explains
    several classes (one result column each). For a batch of B samples, a 1-d sequence of length
    B gives one class per sample, a ``(B, T)`` array T classes per sample, and ``classes=[…]``
    the same classes for every sample; a 1-d target of another length is an error, never a
    guess.
    """

    def __init__(
        self,
        model: ModelSpec,
        semiring: str | Semiring = "real",
        *,
        rule: Composite | Rule | str | None = None,
        theta: Theta | str | float | Callable | None = None,
        init: InitSpec = "one",
        backend: str | Backend | None = "auto",
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int | None = None,
        keep: Collection[str] | None = None,
        progress: bool = False,
        output: str | None = None,
        input_shape: Sequence[int] | None = None,
        example_input: Any = None,
    ) -> None:
        if isinstance(model, Network):
            self.network = model
        else:  # the importers (and onnx) load only when a model has to be imported
            from provgraph.importers.model_sources import load_model

            self.network = load_model(model, output, input_shape, example_input)
        self.semiring = get_semiring(semiring)
        self.rule, self.theta, self.init = rule, theta, init
        self.backend, self.device, self.keep, self.progress = backend, device, keep, progress
        self.dtype = None if dtype is None else resolve_dtype(dtype)
        if batch_size is not None and int(batch_size) < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = None if batch_size is None else int(batch_size)
        self._engines: dict[tuple[bool, torch.dtype], Backend] = {}
        check_method(self.network, self.semiring, rule, theta, init)

    def __repr__(self) -> str:
        return (
            f"Explainer({self.network.name!r}, {self.semiring.name}, rule={self.rule!r}, "
            f"backend={self.backend!r})"
        )

    # --- calls ---
    def __call__(
        self, x: Any, target: TargetSpec = None, *, classes: Sequence[int] | None = None
    ) -> Relevance | BatchRelevance:
        """Explain ``x``: a :class:`Relevance` for one sample, a :class:`BatchRelevance` for an
        input with a leading batch axis."""
        batch, sample_shape, batched = split_batch(self.network, x)
        if batched:
            return self._batch(batch, sample_shape, target, classes)
        return self._one(batch, tuple(np.shape(x)), target, classes)

    def explain(
        self, x: Any, target: TargetSpec = None, *, classes: Sequence[int] | None = None
    ) -> Relevance:
        """Relevance of every neuron of one sample; ``rel.input`` has the shape of ``x``."""
        batch, _, _ = split_batch(self.network, x)
        return self._one(batch, tuple(np.shape(x)), target, classes)

    def explain_batch(
        self, x: Any, target: TargetSpec = None, *, classes: Sequence[int] | None = None
    ) -> BatchRelevance:
        """Relevance of every sample of ``x`` (chunks of ``batch_size``), in input order."""
        batch, sample_shape, _ = split_batch(self.network, x)
        return self._batch(batch, sample_shape, target, classes)

    def _one(
        self, batch: np.ndarray, shape: tuple[int, ...], target: TargetSpec,
        classes: Sequence[int] | None,
    ) -> Relevance:
        _one_sample(batch, "explain")
        rel = self._run(self.semiring, batch, target, classes, single=True)[0]
        rel.input_shape = shape
        return rel

    def _batch(
        self, batch: np.ndarray, sample_shape: tuple[int, ...], target: TargetSpec,
        classes: Sequence[int] | None,
    ) -> BatchRelevance:
        result = self._run(self.semiring, batch, target, classes, single=False)
        result.input_shape = sample_shape
        return result

    def explain_many(
        self, x: Any, semirings: Sequence[str | Semiring], target: TargetSpec = None
    ) -> dict[str, Relevance]:
        """One sample in several semirings from one forward pass; keys are semiring names.

        With ``rule=None`` / ``theta=None`` each semiring takes its own default.
        """
        batch, _, _ = split_batch(self.network, x)
        _one_sample(batch, "explain_many")
        ks = [get_semiring(s) for s in semirings]
        engines = [self.engine(k, batched=False) for k in ks]
        graph = self._graph(batch, engines)
        groups = self._groups(target, None, 1, single=True)
        results = {}
        for k, engine in zip(ks, engines):
            rel = self._aggregate(graph, k, engine, groups[0][1])[0]
            rel.input_shape = tuple(np.shape(x))
            results[k.name] = rel
        return results

    def annotate(self, x: Any) -> AnnotatedGraph:
        """One sample's forward pass in float64: the annotated graph every semiring reuses."""
        batch, _, _ = split_batch(self.network, x)
        _one_sample(batch, "annotate")
        return AnnotatedGraph(self.network, forward_trace(self.network, batch))

    # --- configuration ---
    def engine(self, semiring: str | Semiring | None = None, *, batched: bool = True) -> Backend:
        """The backend that explains ``semiring`` (default: the explainer's), for a batch or for
        one sample (``"auto"`` may choose differently)."""
        k = self.semiring if semiring is None else get_semiring(semiring)
        dtype = self.dtype or default_dtype(k)
        key = (batched, dtype)
        if key not in self._engines:
            self._engines[key] = self._make_engine(batched, dtype)
        return self._engines[key]

    def _make_engine(self, batched: bool, dtype: torch.dtype) -> Backend:
        probe = Selection(self.network, batched)
        if isinstance(self.backend, Backend):
            engine = self.backend
            for name, wanted in (("device", self.device), ("dtype", self.dtype)):
                have = getattr(engine, name, None)
                if wanted is not None and have is not None and str(have) != str(wanted):
                    raise ProvgraphError(
                        f"{name}={wanted!s} conflicts with the backend object's {name} {have!s}; "
                        "give it in one place"
                    )
            return engine
        options = {} if self.device is None else {"device": self.device}
        try:
            engine = get_backend(self.backend, probe, **options)
            if getattr(engine, "dtype", dtype) != dtype:
                engine = get_backend(self.backend, probe, dtype=dtype, **options)
        except TypeError:
            raise ProvgraphError(
                f"backend {self.backend!r} takes no device; device= needs the torch backend"
            ) from None
        if not hasattr(engine, "dtype") and self.dtype not in (None, torch.float64):
            raise ProvgraphError(
                f"the {engine.name} backend computes in float64; dtype={str(self.dtype)[6:]} "
                "needs the torch backend"
            )
        return engine

    # --- the one loop over chunks of samples ---
    def _run(
        self,
        k: Semiring,
        batch: np.ndarray,
        target: TargetSpec,
        classes: Sequence[int] | None,
        single: bool,
    ) -> BatchRelevance:
        engine = self.engine(k, batched=not single)
        groups = self._groups(target, classes, len(batch), single)
        size = self.batch_size or len(batch)
        parts, order = [], []
        from tqdm.auto import tqdm

        with tqdm(total=len(batch), desc="explain", unit="sample",
                  disable=not self.progress) as bar:
            for indices, columns in groups:
                for start in range(0, len(indices), size):
                    chunk = indices[start : start + size]
                    graph = self._graph(batch[chunk], [engine])
                    parts.append(self._aggregate(graph, k, engine, columns))
                    order.append(chunk)
                    bar.update(len(chunk))
        carriers = {type(p.semiring): p.semiring for p in parts}
        if len(carriers) > 1:  # counts outgrew their carrier in some chunk: all in the widest
            widest = max(carriers.values(), key=lambda s: COUNTING_MODES.index(s.counting_mode))
            return self._run(widest, batch, target, classes, single)
        result = parts[0] if len(parts) == 1 else BatchRelevance.stack(parts)
        position = np.concatenate(order)
        if np.any(position != np.arange(len(position))):
            result = result.take(np.argsort(position, kind="stable"))
        return result

    def _graph(self, chunk: np.ndarray, engines: Sequence[Backend]) -> BatchGraph:
        """The chunk's trace: on the device of a backend that runs batches, in the widest dtype
        the engines use; otherwise the float64 reference trace."""
        first = engines[0]
        if not runs_batches(first):
            return BatchGraph(self.network, forward_trace(self.network, chunk))
        dtypes = [getattr(e, "dtype", torch.float64) for e in engines]
        dtype = torch.float64 if torch.float64 in dtypes else dtypes[0]
        return BatchGraph.from_inputs(self.network, chunk, first.device, dtype)

    def _aggregate(
        self, graph: BatchGraph, k: Semiring, engine: Backend, columns: list[int] | None
    ) -> BatchRelevance:
        return graph.aggregate(
            k, backend=engine, rule=self.rule, theta=self.theta, init=self.init,
            target=columns, keep=self.keep,
        )

    def _groups(
        self,
        target: TargetSpec,
        classes: Sequence[int] | None,
        n: int,
        single: bool,
    ) -> list[tuple[np.ndarray, list[int] | None]]:
        """Samples that share their explained classes: ``[(indices, columns or None), …]``.

        ``None`` columns explain each sample's predicted class in one pass.
        """
        every = np.arange(n)
        classes_n = self.network.num_classes
        if classes is not None:
            if target is not None:
                raise TargetError("give target= or classes=, not both")
            return [(every, _class_list(classes, classes_n))]
        if target is None:
            return [(every, None)]
        if isinstance(target, torch.Tensor):  # as Captum takes them
            target = target.tolist()
        arr = np.asarray(target, dtype=object)
        if arr.ndim == 0:
            return [(every, [check_target(target, classes_n)])]
        if single:
            if arr.ndim == 2 and arr.shape[0] == 1:
                arr = arr[0]
            if arr.ndim != 1:
                raise TargetError(
                    f"target of shape {arr.shape} for one sample: give a class or a list of them"
                )
            return [(every, _class_list(arr, classes_n))]
        if arr.ndim == 1:
            if len(arr) != n:
                raise TargetError(
                    f"target has {len(arr)} entries for a batch of {n} samples: give one class "
                    "per sample, a (samples, classes) array, or classes=[...] to explain the "
                    "same classes for every sample"
                )
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] == 0:
            raise TargetError(
                f"target of shape {arr.shape} does not fit a batch of {n} samples: give one "
                f"class per sample or a ({n}, classes) array"
            )
        rows = [tuple(_class_list(row, classes_n)) for row in arr]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault(row, []).append(i)
        return [(np.asarray(idx), list(row)) for row, idx in groups.items()]


def _class_list(values: Any, num_classes: int) -> list[int]:
    items = list(np.asarray(values, dtype=object).reshape(-1))
    if not items:
        raise TargetError("no class to explain: the target list is empty")
    return [check_target(_plain(t), num_classes) for t in items]


def _plain(t: Any) -> Any:
    """A Python int for integer-valued numpy scalars; anything else unchanged (then refused)."""
    return int(t) if isinstance(t, np.integer) else t


def _one_sample(batch: np.ndarray, call: str) -> None:
    if batch.shape[0] != 1:
        raise InputError(
            f"got a batch of {batch.shape[0]} samples; {call} takes one sample "
            "(use explain_batch for a batch)"
        )
