"""The result of an aggregation: relevance of every tensor and of every bias source."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError
from provgraph.io.atomic import atomic_save_npz
from provgraph.model.network import Network


@dataclass
class Relevance:
    """Relevance of every neuron for one sample, one column per explained target.

    Attributes
    ----------
    tensors : relevance per tensor name, arrays of shape ``(n_neurons, n_targets)`` in K
    biases : relevance absorbed by each linear op's bias source, ``(n_targets,)`` in K
    input_shape : shape of the input as the caller gave it (``None``: the network's input
        shape); :attr:`input` takes this shape
    """

    network: Network
    semiring: Semiring
    targets: list[int]
    tensors: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    logits: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, ...] | None = None

    @property
    def target(self) -> int:
        return self.targets[0]

    def layer(self, tensor: str, target_index: int = 0) -> np.ndarray:
        """Relevance map of ``tensor`` shaped like the tensor (zero where none arrived).

        Raises
        ------
        ProvgraphError
            ``tensor`` is not a tensor of the network (the message lists the valid names).
        """
        shape = tensor_shape(self.network, tensor)
        if tensor not in self.tensors:
            return self.semiring.zeros(shape)
        return self.tensors[tensor][:, target_index].reshape(shape)

    @property
    def input(self) -> np.ndarray:
        """Relevance of the input (first target), shaped like the input the caller gave."""
        r = self.layer(self.network.input_name)
        return r if self.input_shape is None else r.reshape(self.input_shape)

    def tokens(self, target_index: int = 0) -> np.ndarray:
        """Relevance per token of a text model: ⊕ over each token's embedding vector.

        The input of a model imported with token ids is ``(tokens, hidden)`` (the embedding
        vectors, :mod:`provgraph.importers.graph_inputs`); :meth:`layer` of the input gives the
        per-dimension map, this its ⊕ over the hidden axis: ``(tokens,)``.
        """
        if self.network.token_input is None:
            raise ProvgraphError(
                f"{self.network.name}: relevance per token needs a model imported from token ids"
            )
        r = self.layer(self.network.input_name, target_index)
        k = self.semiring
        return np.array([k.sum(k.asarray(row)) for row in r.reshape(r.shape[0], -1)])

    def bias_total(self, target_index: int = 0) -> Any:
        """⊕ of what every bias source absorbed."""
        values = [v[target_index] for v in self.biases.values()]
        return self.semiring.sum(self.semiring.asarray(values)) if values else self.semiring.zero

    def save(self, path: str | Path) -> None:
        """Write every tensor's and bias's relevance to an ``.npz`` file (atomically)."""
        arrays: dict[str, np.ndarray] = {}
        for name, v in self.tensors.items():
            arrays[f"tensor/{name}"] = _storable(v)
        for name, v in self.biases.items():
            arrays[f"bias/{name}"] = _storable(v)
        arrays["input"] = _storable(self.input)
        arrays["targets"] = np.asarray(self.targets)
        arrays["logits"] = self.logits
        arrays["semiring"] = np.asarray(self.semiring.name)
        atomic_save_npz(path, arrays)

    def __repr__(self) -> str:
        return (
            f"Relevance({self.semiring.name}, target {self.targets}, "
            f"{len(self.tensors)} tensors, info={self.info})"
        )


def tensor_shape(network: Network, tensor: str) -> tuple[int, ...]:
    """One sample's shape of ``tensor``; an unknown name raises an error listing the valid ones."""
    if tensor not in network.shapes:
        raise ProvgraphError(
            f"{network.name} has no tensor {tensor!r}; its tensors are: "
            + ", ".join(network.shapes)
        )
    return tuple(network.shapes[tensor])


def _storable(v: np.ndarray) -> np.ndarray:
    """Object arrays (exact integers) are stored as strings when they exceed int64."""
    if v.dtype != object:
        return v
    try:
        fits = all(abs(int(x)) < 2**63 for x in v.reshape(-1))
        return v.astype(np.int64) if fits else v.astype(str)
    except (TypeError, ValueError):
        return v.astype(str)
