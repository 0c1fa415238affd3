"""Train the bundled small CNN on the bundled digits' training split.

conv(1→8, 3×3, pad 1)-ReLU-maxpool 2 → conv(8→16, 3×3, pad 1)-ReLU-maxpool 2 → flatten →
dense(784→10), trained with Adam on the 4,000 training digits of
``provgraph.apps.bundled_mnist("train")`` and tested on the 1,000 held-out digits of
``bundled_mnist("test")`` with onnxruntime.

Outputs (in ``--out-dir``, default ``provgraph/data``)::

    mnist_cnn.onnx   input "input" (N, 1, 28, 28), pixel / 255 -> output "logits" (N, 10)
    mnist_cnn.json   architecture, data, training and the onnxruntime test accuracy

Usage::

    python examples/train_mnist_cnn.py --epochs 8 --seed 0
"""

from __future__ import annotations

import argparse
import io
import json
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from provgraph.apps.sources import bundled_mnist
from provgraph.io.atomic import atomic_write

LR = 3e-3
BATCH_SIZE = 64


def build_cnn() -> nn.Sequential:
    """The 1→8→16 channel CNN with a 784→10 dense head."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )


def split(name: str) -> tuple[np.ndarray, np.ndarray]:
    """One bundled split as float32 images (N, 1, 28, 28) in [0, 1] and int64 labels."""
    data = bundled_mnist(name)
    return data.read().reshape(-1, 1, 28, 28).astype(np.float32), data.targets().astype(np.int64)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    """Adam with a cosine learning-rate decay on shuffled mini-batches."""
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    steps = epochs * -(-len(xs) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(xs), generator=generator)
        total = 0.0
        for start in range(0, len(xs), BATCH_SIZE):
            batch = order[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = loss_fn(model(xs[batch]), ys[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(batch)
        print(f"  epoch {epoch + 1:2d}/{epochs}: train loss {total / len(xs):.4f}")
    model.eval()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`provgraph.io.atomic.atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def export_onnx(model: nn.Module) -> bytes:
    """The model as ONNX (TorchScript exporter: plain Conv/Relu/MaxPool/Flatten/Gemm)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (torch.zeros(1, 1, 28, 28),), buffer, dynamo=False,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
        )
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    parser.add_argument("--out-dir", type=Path, default=Path("provgraph/data"))
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    x_train, y_train = split("train")
    x_test, y_test = split("test")
    model = build_cnn()
    started = time.perf_counter()
    train(model, x_train, y_train, args.epochs, args.seed)
    seconds = time.perf_counter() - started

    onnx_path = args.out_dir / "mnist_cnn.onnx"
    write_atomic(onnx_path, export_onnx(model))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": x_test})[0]
    accuracy = float((logits.argmax(axis=1) == y_test).mean())
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()
    metadata = {
        "architecture": "CNN conv(1→8,3×3,pad 1)-ReLU-maxpool 2-conv(8→16,3×3,pad 1)-ReLU-"
                        "maxpool 2-flatten-dense(784→10)",
        "input": {"name": "input", "shape": ["batch", 1, 28, 28], "scaling": "pixel / 255"},
        "output": {"name": "logits", "shape": ["batch", 10], "softmax": False},
        "data": "provgraph.apps.bundled_mnist('train') (4,000 digits); tested on "
                "bundled_mnist('test') (1,000 held-out digits)",
        "train_size": len(x_train),
        "test_size": len(x_test),
        "epochs": args.epochs,
        "seed": args.seed,
        "optimizer": f"Adam, lr {LR:g} with cosine decay, batch {BATCH_SIZE}",
        "training_seconds": round(seconds, 1),
        "test_accuracy": accuracy,
        "test_accuracy_measured_with": f"onnxruntime {ort.__version__}",
        "opset_version": 17,
        "torch_version": torch.__version__,
    }
    write_atomic(args.out_dir / "mnist_cnn.json", (json.dumps(metadata, indent=2) + "\n").encode())
    print(f"training time:       {seconds:.1f} s")
    print(f"test accuracy (ort): {accuracy:.4f}")
    print(f"max |torch - ort|:   {float(np.abs(logits - torch_logits).max()):.3e}")


if __name__ == "__main__":
    main()
