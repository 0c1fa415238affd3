"""Forward trace: every tensor's activation for a batch of inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from provgraph.errors import InputError
from provgraph.model.network import Network


@dataclass
class Trace:
    """Activations of every tensor of ``network`` for one batch (batch axis first)."""

    network: Network
    values: dict[str, torch.Tensor]

    def __getitem__(self, tensor: str) -> torch.Tensor:
        return self.values[tensor]

    @property
    def batch_size(self) -> int:
        return int(self.values[self.network.input_name].shape[0])

    @property
    def logits(self) -> np.ndarray:
        """``(N, num_classes)`` output of the network."""
        out = self.values[self.network.output_name]
        return out.reshape(out.shape[0], -1).detach().cpu().numpy()

    def flat(self, tensor: str, sample: int = 0) -> np.ndarray:
        """One sample's activation of ``tensor`` as a flat float64 numpy vector."""
        v = self.values[tensor][sample]
        return v.detach().cpu().double().reshape(-1).numpy()

    def sample(self, index: int) -> Trace:
        """The trace of one sample of the batch (batch size 1)."""
        return Trace(self.network, {k: v[index : index + 1] for k, v in self.values.items()})


def as_batch(network: Network, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Validate ``x`` and shape it as ``(N, *input_shape)`` float64.

    Accepted: one sample of the input shape, a batch of them, or one sample with the right number
    of elements in another shape (a 28×28 image for a 784-input MLP).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input cannot be read as a numeric array: {exc}") from None
    shape = network.input_shape
    if arr.shape == shape:
        arr = arr[None]
    elif arr.shape[1:] == shape and arr.ndim == len(shape) + 1:
        pass
    elif arr.size == int(np.prod(shape)):
        arr = arr.reshape((1,) + shape)
    else:
        raise InputError(
            f"input of shape {arr.shape} does not fit {network.name}, which expects "
            f"{shape} or (batch, {', '.join(map(str, shape))})"
        )
    if arr.shape[0] == 0:
        raise InputError("input batch is empty")
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(f"input contains {bad} NaN or infinite values")
    return arr


def forward_trace(
    network: Network,
    x: np.ndarray | torch.Tensor,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Trace:
    """Run ``network`` on ``x`` and keep every tensor's activation."""
    batch = as_batch(network, x)
    values = {network.input_name: torch.as_tensor(batch, dtype=dtype, device=device)}
    with torch.no_grad():
        for op in network.ops:
            values[op.output] = op.forward(*(values[t] for t in op.inputs))
    return Trace(network, values)
