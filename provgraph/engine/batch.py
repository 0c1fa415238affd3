"""Batches: many samples (and many targets) explained in one pass.

A :class:`BatchGraph` holds the trace of a whole batch, computed on the backend's device; its
:meth:`~BatchGraph.aggregate` runs the ordinary driver once for all samples with a backend that
runs batches (torch; other backends: one sample at a time) and returns a :class:`BatchRelevance`,
whose arrays carry a leading sample axis; ``batch[i]`` is sample ``i``'s
:class:`~provgraph.engine.relevance.Relevance` (views, no copy).
:class:`~provgraph.engine.explainer.Explainer` splits large inputs into chunks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from provgraph.algebra.semirings import Semiring
from provgraph.algebra.theta import Layer
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.relevance import Relevance, tensor_shape
from provgraph.model.network import Network
from provgraph.model.trace import Trace


def runs_batches(engine: Any) -> bool:
    """Whether ``engine`` propagates a whole batch in one pass (its
    :class:`~provgraph.backends.base.Capabilities`)."""
    return bool(type(engine).capabilities.batches)


class BatchGraph:
    """A network and the trace of a batch of samples (on any device).

    Build one with :meth:`from_inputs`; targets ``None`` then mean each sample's own predicted
    class.
    """

    batched = True

    def __init__(self, network: Network, trace: Trace) -> None:
        self.network = network
        self.trace = trace
        n = len(network.linear_ops)
        self.layers: dict[str, Layer] = {
            op.name: Layer(op, i, n) for i, op in enumerate(network.linear_ops)
        }
        self._samples: dict[int, AnnotatedGraph] = {}

    @classmethod
    def from_inputs(
        cls,
        network: Network,
        x: np.ndarray | torch.Tensor,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = torch.float64,
    ) -> BatchGraph:
        """Run ``network`` on the batch ``x`` on ``device`` and keep every activation there."""
        from provgraph.backends.torch_device import device_trace, resolve_device, resolve_dtype

        return cls(network, device_trace(network, x, resolve_device(device), resolve_dtype(dtype)))

    @property
    def batch_size(self) -> int:
        return self.trace.batch_size

    @property
    def logits(self) -> np.ndarray:
        """``(B, num_classes)``."""
        return self.trace.logits

    @property
    def predicted_class(self) -> np.ndarray:
        """``(B,)`` arg-max class of every sample."""
        return np.argmax(self.logits, axis=1)

    def sample(self, index: int) -> AnnotatedGraph:
        """The annotated graph of one sample (kept, so its edge weights serve every call)."""
        if index not in self._samples:
            self._samples[index] = AnnotatedGraph(self.network, self.trace.sample(index))
        return self._samples[index]

    def aggregate(
        self, semiring: Any = "real", backend: Any = "torch", **kwargs: Any
    ) -> BatchRelevance:
        """Relevance of every sample; keyword arguments as
        :func:`provgraph.engine.driver.aggregate`.

        ``backend`` is ``"torch"`` (default, one pass for the whole batch), a backend object, or
        another backend's name (a backend that does not run batches goes one sample at a time).
        """
        from provgraph.backends import get_backend
        from provgraph.engine.driver import aggregate

        engine = get_backend(backend, self)
        if not runs_batches(engine):
            rels = [aggregate(self.sample(i), semiring, backend=engine, **kwargs)
                    for i in range(self.batch_size)]
            return BatchRelevance.stack(rels)
        rel = aggregate(self, semiring, backend=engine, **kwargs)
        columns = [np.broadcast_to(np.asarray(t), (self.batch_size,)) for t in rel.targets]
        return BatchRelevance(
            rel.network, rel.semiring, np.stack(columns, axis=1), rel.tensors, rel.biases,
            rel.logits, rel.info,
        )

    def __repr__(self) -> str:
        return f"BatchGraph({self.network.name!r}, {self.batch_size} samples)"


@dataclass
class BatchRelevance:
    """Relevance of a batch: arrays with a leading sample axis.

    Attributes
    ----------
    targets : ``(B, T)`` explained class of each sample and column
    tensors : relevance per tensor name, ``(B, n_neurons, T)`` in K
    biases : what each bias source absorbed, ``(B, T)``
    logits : ``(B, num_classes)``
    input_shape : one sample's input shape as the caller gave it (``None``: the network's);
        :attr:`input` is ``(B, *input_shape)``
    """

    network: Network
    semiring: Semiring
    targets: np.ndarray
    tensors: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    logits: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.logits)

    def __getitem__(self, index: int) -> Relevance:
        """Sample ``index`` as a :class:`Relevance` (views into the batch arrays)."""
        return Relevance(
            self.network,
            self.semiring,
            [int(t) for t in self.targets[index]],
            {name: v[index] for name, v in self.tensors.items()},
            {name: v[index] for name, v in self.biases.items()},
            self.logits[index],
            dict(self.info),
            self.input_shape,
        )

    def __iter__(self) -> Iterator[Relevance]:
        return (self[i] for i in range(len(self)))

    def layer(self, tensor: str, target_index: int = 0) -> np.ndarray:
        """``(B, *tensor_shape)`` relevance map of ``tensor`` for one target column.

        Raises
        ------
        ProvgraphError
            ``tensor`` is not a tensor of the network (the message lists the valid names).
        """
        shape = tensor_shape(self.network, tensor)
        if tensor not in self.tensors:
            return self.semiring.zeros((len(self),) + shape)
        return self.tensors[tensor][:, :, target_index].reshape((len(self),) + shape)

    @property
    def input(self) -> np.ndarray:
        """``(B, *input_shape)`` input relevance for the first target column, each sample shaped
        as the caller gave it."""
        r = self.layer(self.network.input_name)
        return r if self.input_shape is None else r.reshape((len(self),) + self.input_shape)

    def take(self, order: Sequence[int] | np.ndarray) -> BatchRelevance:
        """The samples ``order`` (in that order) as a new batch."""
        idx = np.asarray(order, dtype=np.int64)
        return BatchRelevance(
            self.network,
            self.semiring,
            self.targets[idx],
            {t: v[idx] for t, v in self.tensors.items()},
            {n: v[idx] for n, v in self.biases.items()},
            self.logits[idx],
            dict(self.info),
            self.input_shape,
        )

    @staticmethod
    def stack(parts: Sequence[Relevance | BatchRelevance]) -> BatchRelevance:
        """One batch from single-sample results and/or batches (same network and semiring)."""
        batches = [p if isinstance(p, BatchRelevance) else _as_batch(p) for p in parts]
        first = batches[0]
        return BatchRelevance(
            first.network,
            first.semiring,
            np.concatenate([b.targets for b in batches]),
            {t: np.concatenate([b.tensors[t] for b in batches]) for t in first.tensors},
            {n: np.concatenate([b.biases[n] for b in batches]) for n in first.biases},
            np.concatenate([b.logits for b in batches]),
            dict(first.info),
            first.input_shape,
        )

    def __repr__(self) -> str:
        return (
            f"BatchRelevance({self.semiring.name}, {len(self)} samples, "
            f"{self.targets.shape[1]} target(s), info={self.info})"
        )


def _as_batch(rel: Relevance) -> BatchRelevance:
    return BatchRelevance(
        rel.network,
        rel.semiring,
        np.asarray([rel.targets]),
        {t: v[None] for t, v in rel.tensors.items()},
        {n: np.asarray(v)[None] for n, v in rel.biases.items()},
        np.asarray(rel.logits)[None],
        dict(rel.info),
        rel.input_shape,
    )
