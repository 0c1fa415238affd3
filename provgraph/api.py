"""The user-facing calls: load a model, annotate a sample, explain it in one or many semirings.

Each explain call is a thin function over :class:`~provgraph.engine.explainer.Explainer`, so all
of them take the same fast path (on the torch backend: the trace on the device, float32 for the
real semiring by default). Build an ``Explainer`` yourself to configure once and call it many
times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from provgraph.algebra.composites import Composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import Theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchRelevance
from provgraph.engine.explainer import Explainer, TargetSpec
from provgraph.engine.initialisation import InitSpec
from provgraph.engine.relevance import Relevance
from provgraph.model.network import Network

if TYPE_CHECKING:
    from provgraph.importers.model_sources import ModelSpec


def load(
    model: ModelSpec,
    output: str | None = None,
    input_shape: tuple[int, ...] | None = None,
    example_input: Any = None,
    max_memory: int | str | None = None,
) -> Network:
    """A :class:`Network` from any model source (see
    :func:`~provgraph.importers.model_sources.load_model`).

    Parameters
    ----------
    model
        An ONNX file path, ONNX bytes, an ``onnx.ModelProto``, a ``torch.nn.Module`` (with
        ``example_input``) or a ``Network`` (returned as it is).
    output
        Name of the logits tensor of an ONNX model.
    input_shape
        One sample's shape when the model's input has dynamic axes besides the batch.
    example_input
        For a torch module: a batch it accepts, to export it and check the export.
    max_memory
        Bytes (or ``"4G"``) one sample's tensors may take; larger models are refused before
        anything is allocated (default: half the machine's memory).

    Returns
    -------
    Network
        The imported classifier.
    """
    if isinstance(model, Network):
        return model
    from provgraph.importers.model_sources import load_model

    return load_model(model, output, input_shape, example_input, max_memory)


def annotate(model: ModelSpec, x: np.ndarray | torch.Tensor) -> AnnotatedGraph:
    """One forward pass of one sample (float64): the annotated graph every semiring reuses."""
    return Explainer(model).annotate(x)


def explain(
    model: ModelSpec,
    x: np.ndarray | torch.Tensor,
    target: TargetSpec = None,
    semiring: str | Semiring = "real",
    theta: Theta | str | float | Callable | None = None,
    rule: Composite | Rule | str | None = None,
    init: InitSpec = "one",
    backend: Any = "auto",
    **options: Any,
) -> Relevance:
    """Explain one sample: relevance of every neuron for ``target`` in ``semiring``.

    Parameters
    ----------
    model
        ONNX file path, ONNX bytes, ``onnx.ModelProto``, ``torch.nn.Module`` (with
        ``example_input=``) or :class:`Network`.
    x
        One sample (input shape, or any shape with the right number of elements); a ``uint8``
        array is scaled to [0, 1] with a warning. For a text model, a mapping of its graph
        inputs (``{"input_ids": ids, "attention_mask": mask}``; the mask defaults to ones): the
        embedding vectors are explained (``Relevance.tokens()`` per token).
    target
        Class index (or several); ``None`` explains the predicted class.
    semiring
        ``real``, ``boolean``, ``counting``, ``viterbi``, ``tropical``, ``fuzzy`` or an object.
    theta
        Θ : ℝ → K; a number is a threshold; ``None`` is the semiring's default.
    rule
        Rule or composite (object or name); ``None`` is the semiring's default.
    init
        ``"one"`` (K-LRP), ``"logit"`` (classic LRP), a vector, or a Contrastive.
    backend
        ``"auto"`` (scipy within its edge budget, numba above it on the CPU), ``"scipy"``,
        ``"torch"`` / ``"torch:cuda"``, or a backend object such as ``TorchBackend(device=…)``.
    **options
        Further :class:`~provgraph.engine.explainer.Explainer` settings: ``device``, ``dtype``
        (torch: float32 for the real semiring by default, float64 otherwise), ``keep``,
        ``output``, ``input_shape``, ``example_input``.

    Returns
    -------
    Relevance
        ``.input`` is the input map, shaped like ``x``; ``.layer(name)`` any tensor's;
        ``.biases`` what the bias sources absorbed.
    """
    if isinstance(x, Mapping):
        model, x = bind_tokens(model, x, options)
    explainer = Explainer(
        model, semiring, rule=rule, theta=theta, init=init, backend=backend, **options
    )
    return explainer.explain(x, target)


def bind_tokens(
    model: ModelSpec, inputs: Mapping[str, Any], options: dict[str, Any]
) -> tuple[Network, np.ndarray]:
    """A text model imported with its graph ``inputs`` bound (``input_ids``, optionally
    ``attention_mask``, ``token_type_ids``; :mod:`provgraph.importers.graph_inputs`) and the
    embedding vectors of the ids, the sample to explain."""
    from provgraph.errors import InputError
    from provgraph.importers.onnx_loader import load_onnx

    if isinstance(model, Network):
        raise InputError("token inputs need the ONNX model (a path, bytes or ModelProto)")
    values = {k: np.asarray(v) for k, v in inputs.items()}
    net = load_onnx(model, output=options.pop("output", None), inputs=values)
    if net.token_input is None:
        raise InputError(f"{net.name}: none of {sorted(values)} is looked up in an embedding table")
    return net, net.token_input.embeddings()


def explain_batch(
    model: ModelSpec,
    x: np.ndarray | torch.Tensor,
    target: TargetSpec = None,
    semiring: str | Semiring = "real",
    progress: bool = False,
    backend: Any = "auto",
    batch_size: int | None = None,
    classes: Sequence[int] | None = None,
    **options: Any,
) -> list[Relevance]:
    """:func:`explain` for every sample of a batch, one :class:`Relevance` per sample.

    ``target`` is ``None`` (each sample's predicted class), a class for every sample, or one
    class per sample (length = batch size); ``classes=[…]`` explains the same several classes for
    every sample. With the torch backend (``"auto"`` picks it for batches) all samples and
    targets go through one pass per chunk of ``batch_size`` samples. Other keyword arguments are
    :class:`~provgraph.engine.explainer.Explainer` settings.
    """
    return list(
        explain_batched(
            model, x, semiring, backend=backend, batch_size=batch_size, progress=progress,
            target=target, classes=classes, **options,
        )
    )


def explain_batched(
    model: ModelSpec,
    x: np.ndarray | torch.Tensor,
    semiring: str | Semiring = "real",
    *,
    backend: Any = "torch",
    batch_size: int | None = None,
    progress: bool = False,
    target: TargetSpec = None,
    classes: Sequence[int] | None = None,
    **options: Any,
) -> BatchRelevance:
    """Explain every sample of ``x`` in chunks of ``batch_size`` (all at once by default).

    Returns one :class:`~provgraph.engine.batch.BatchRelevance` (arrays with a leading sample
    axis). ``backend`` is ``"torch"`` (default), ``"torch:cuda"``, a backend object, or any
    other backend (then one sample at a time); targets as in :func:`explain_batch`; other
    keyword arguments are :class:`~provgraph.engine.explainer.Explainer` settings (``rule``,
    ``theta``, ``init``, ``keep``, ``device``, ``dtype``, …).
    """
    explainer = Explainer(
        model, semiring, backend=backend, batch_size=batch_size, progress=progress, **options
    )
    return explainer.explain_batch(x, target, classes=classes)


def explain_many(
    model: ModelSpec | AnnotatedGraph,
    x: np.ndarray | torch.Tensor | None,
    semirings: Sequence[str | Semiring],
    target: TargetSpec = None,
    **options: Any,
) -> dict[str, Relevance]:
    """Several semirings' relevance from one forward pass (shared edge weights).

    ``model`` may be an :class:`AnnotatedGraph` (then ``x`` is ignored). Rules and Θ default per
    semiring; pass ``rule=`` / ``theta=`` to force one for all. Other keyword arguments are
    :class:`~provgraph.engine.explainer.Explainer` settings (or, for a graph, aggregation
    keywords).
    """
    if isinstance(model, AnnotatedGraph):
        results = {}
        for s in semirings:
            k = get_semiring(s)
            results[k.name] = model.aggregate(k, target=target, **options)
        return results
    return Explainer(model, **options).explain_many(x, semirings, target)
