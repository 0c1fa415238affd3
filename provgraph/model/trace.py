"""Forward trace: every tensor's activation for a batch of inputs."""

from __future__ import annotations

import warnings
import weakref
from dataclasses import dataclass

import numpy as np
import torch

from provgraph.errors import InputError
from provgraph.model.network import Network
from provgraph.model.ops import Op


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
    of elements in another shape (a 28×28 image for a 784-input MLP). A ``uint8`` array is read as
    an 8-bit image and scaled to [0, 1] (divided by 255, as the command line reads image files),
    with a :class:`UserWarning` that says so; pass floats to choose another scaling.
    """
    return split_batch(network, x)[0]


def split_batch(
    network: Network, x: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, tuple[int, ...], bool]:
    """:func:`as_batch`, with the shape of one sample as the caller gave it.

    Returns
    -------
    batch : ``(N, *input_shape)`` float64
    sample_shape : one sample's shape as given (``(28, 28)`` for a 28×28 image given to a
        784-input MLP; ``x.shape[1:]`` for a batch)
    batched : whether ``x`` carried a batch axis
    """
    if isinstance(x, torch.Tensor):
        if x.is_meta:
            raise InputError("the input is a meta tensor: it has a shape but no values")
        if x.layout != torch.strided:
            x = x.to_dense()
        x = x.detach().cpu().numpy()
    if isinstance(x, (str, bytes)):
        raise InputError(f"the input is text ({type(x).__name__}), not an array of numbers")
    if np.iscomplexobj(x):
        raise InputError("the input is complex; provgraph explains real-valued inputs")
    if isinstance(x, np.ndarray) and x.dtype == np.uint8:
        warnings.warn(
            "the input is uint8: read as an 8-bit image and scaled to [0, 1] (divided by 255); "
            "pass a float array to use another scaling",
            UserWarning,
            stacklevel=2,
        )
        x = x / 255.0
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"input cannot be read as a numeric array: {exc}") from None
    shape = network.input_shape
    given, batched = tuple(arr.shape), False
    if arr.shape == shape:
        arr = arr[None]
    elif arr.shape[1:] == shape and arr.ndim == len(shape) + 1:
        given, batched = given[1:], True
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
    return arr, given, batched


def forward_trace(
    network: Network,
    x: np.ndarray | torch.Tensor,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> Trace:
    """Run ``network`` on ``x`` and keep every tensor's activation."""
    batch = as_batch(network, x)
    values = {network.input_name: torch.as_tensor(batch, dtype=dtype, device=device)}
    tested, sums = tested_outputs(network), []
    with torch.inference_mode():
        for op in network.ops:
            values[op.output] = op.forward(*(values[t] for t in op.inputs))
            if op.output in tested:
                sums.append(activation_sum(values[op.output]))
        check_activations(network, network.ops, values, sums)
    return Trace(network, values)


def activation_sum(value: torch.Tensor) -> torch.Tensor:
    """The float64 sum that :func:`check_activations` tests; taken as soon as an op's output is
    computed, while it is still in the cache, it costs little beside the op."""
    return value.sum().to(torch.float64)


_TESTED: weakref.WeakKeyDictionary[Network, frozenset[str]] = weakref.WeakKeyDictionary()


def tested_outputs(network: Network) -> frozenset[str]:
    """The op outputs whose sums :func:`check_activations` tests; a NaN or ±∞ anywhere in the
    trace reaches one of them.

    An output need not be tested when every consumer propagates non-finite values
    (:attr:`~provgraph.model.ops.Op.propagates_non_finite`: they then reach the consumer's
    output), nor when it only copies values of tested tensors
    (:attr:`~provgraph.model.ops.Op.computes_values` false). The input is finite (checked).
    """
    if network not in _TESTED:
        consumers: dict[str, list[Op]] = {}
        for op in network.ops:
            for t in op.inputs:
                consumers.setdefault(t, []).append(op)
        finite, tested = {network.input_name}, set()
        for op in network.ops:
            readers = consumers.get(op.output, [])
            if not op.computes_values and all(t in finite for t in op.inputs):
                finite.add(op.output)
            elif (op.output == network.output_name or not readers
                  or not all(r.propagates_non_finite for r in readers)):
                tested.add(op.output)
                finite.add(op.output)
        _TESTED[network] = frozenset(tested)
    return _TESTED[network]


def check_activations(
    network: Network,
    ops: list[Op],
    values: dict[str, torch.Tensor],
    sums: list[torch.Tensor] | None = None,
) -> None:
    """Refuse a trace in which some op's output holds NaN or ±∞ (an overflow), naming the first
    such op and the sample: no explanation can be computed from it.

    One sum per :func:`tested_outputs` tensor and a single device synchronisation; the exact
    search over every op runs only when a sum is not finite (a sum can also overflow while every
    value is finite: that passes). ``sums``: the :func:`activation_sum` of each tested output,
    in the order of ``ops``, when the forward pass took them.
    """
    if sums is None:
        tested = tested_outputs(network)
        sums = [activation_sum(values[op.output]) for op in ops if op.output in tested]
    if not sums or bool(torch.isfinite(torch.stack(sums)).all()):
        return
    for op in ops:
        value = values[op.output]
        finite = torch.isfinite(value).reshape(len(value), -1).all(dim=1)
        if not bool(finite.all()):
            sample = int(torch.nonzero(~finite)[0])
            raise InputError(
                f"{network.name}: the output of {op.describe()} is not finite for sample "
                f"{sample} (an overflow in {str(value.dtype)[6:]}?); no explanation can start "
                "from it"
            )
