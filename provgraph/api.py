"""The user-facing calls: load a model, annotate a sample, explain it in one or many semirings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from provgraph.algebra.composites import Composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import Theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import InitSpec
from provgraph.engine.relevance import Relevance
from provgraph.errors import InputError, ModelLoadError
from provgraph.model.network import Network
from provgraph.model.trace import as_batch, forward_trace

ModelSpec = str | Path | Network


def load(
    model: ModelSpec, output: str | None = None, input_shape: tuple[int, ...] | None = None
) -> Network:
    """A :class:`Network` from an ONNX file path (or bytes), or the network itself.

    ``input_shape`` gives one sample's shape when the model's input has dynamic axes.
    """
    if isinstance(model, Network):
        return model
    if isinstance(model, (str, Path, bytes)):
        from provgraph.importers import load_onnx

        return load_onnx(model, output=output, input_shape=input_shape)
    raise ModelLoadError(f"cannot load a model from {type(model).__name__}; give an ONNX path")


def annotate(model: ModelSpec, x: np.ndarray | torch.Tensor) -> AnnotatedGraph:
    """One forward pass of one sample: the annotated graph every semiring reuses."""
    net = load(model)
    batch = as_batch(net, x)
    if batch.shape[0] != 1:
        raise InputError(
            f"got a batch of {batch.shape[0]} samples; annotate one sample at a time "
            "(or use explain_batch)"
        )
    return AnnotatedGraph(net, forward_trace(net, batch))


def explain(
    model: ModelSpec,
    x: np.ndarray | torch.Tensor,
    target: int | Sequence[int] | None = None,
    semiring: str | Semiring = "real",
    theta: Theta | str | float | Callable | None = None,
    rule: Composite | Rule | str | None = None,
    init: InitSpec = "one",
    backend: Any = "auto",
) -> Relevance:
    """Explain one sample: relevance of every neuron for ``target`` in ``semiring``.

    Parameters
    ----------
    model
        ONNX file path or :class:`Network`.
    x
        One sample (input shape, or any shape with the right number of elements).
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
        ``"auto"`` (scipy within its edge budget, torch above it), ``"scipy"`` (reference),
        ``"torch"`` / ``"torch:cuda"``, or a backend object such as ``TorchBackend(device=…)``.

    Returns
    -------
    Relevance
        ``.input`` is the input map; ``.layer(name)`` any tensor's; ``.biases`` what the bias
        sources absorbed.
    """
    graph = annotate(model, x)
    return graph.aggregate(
        semiring, rule=rule, theta=theta, init=init, target=target, backend=backend
    )


def explain_batch(
    model: ModelSpec,
    x: np.ndarray | torch.Tensor,
    target: int | Sequence[int] | None = None,
    semiring: str | Semiring = "real",
    progress: bool = False,
    backend: Any = "auto",
    batch_size: int | None = None,
    **kwargs: Any,
) -> list[Relevance]:
    """:func:`explain` for every sample of a batch, one :class:`Relevance` per sample.

    With the torch backend (``"auto"`` picks it for batches) all samples and targets go through
    one pass per chunk of ``batch_size`` samples (see
    :func:`provgraph.engine.batch.explain_batched`);
    ``target=None`` then explains each sample's own predicted class. With ``backend="scipy"``
    one forward pass for the whole batch, then one aggregation per sample.
    """
    from tqdm.auto import tqdm

    from provgraph.backends import Request, get_backend
    from provgraph.engine.batch import explain_batched

    net = load(model)
    engine = get_backend(backend, request=Request(batches=True))
    if engine.name == "torch":
        batch = explain_batched(
            net, x, semiring, backend=engine, batch_size=batch_size, progress=progress,
            target=target, **kwargs,
        )
        return list(batch)
    trace = forward_trace(net, x)
    samples = tqdm(range(trace.batch_size), desc="explain", unit="sample", disable=not progress)
    return [
        AnnotatedGraph(net, trace.sample(i)).aggregate(
            semiring, target=target, backend=engine, **kwargs
        )
        for i in samples
    ]


def explain_many(
    model: ModelSpec | AnnotatedGraph,
    x: np.ndarray | torch.Tensor | None,
    semirings: Sequence[str | Semiring],
    target: int | Sequence[int] | None = None,
    **kwargs: Any,
) -> dict[str, Relevance]:
    """Several semirings' relevance from one annotated graph (one forward pass, shared weights).

    Rules and Θ default per semiring; pass ``rule=`` / ``theta=`` to force one for all.
    """
    graph = model if isinstance(model, AnnotatedGraph) else annotate(model, x)
    results = {}
    for s in semirings:
        k = get_semiring(s)
        results[k.name] = graph.aggregate(k, target=target, **kwargs)
    return results
