"""Small Keras classifiers with random weights, exported to ONNX with ``tf2onnx.convert.from_keras``
as a user exports them (NHWC input, dynamic batch, opset 17).

TensorFlow is imported only in a child process (``python tests/keras_models.py OUT NAME…``):
its LLVM and numba's cannot be loaded into one process, and its import is slow. Each model is
written as ``OUT/NAME.onnx`` with ``OUT/NAME.npz`` (``x``: an input of batch 1, ``keras``: the
Keras model's own output on it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SIDE, CLASSES = 32, 5
TOKENS, WIDTH = 6, 8


def _applications() -> Any:
    import tensorflow as tf

    return tf.keras.applications


def _mobilenet_v2() -> Any:
    return _applications().MobileNetV2(input_shape=(SIDE, SIDE, 3), alpha=0.35, weights=None,
                                       classes=CLASSES, classifier_activation=None)


def _mobilenet_v3_small() -> Any:
    return _applications().MobileNetV3Small(input_shape=(SIDE, SIDE, 3), alpha=0.75,
                                            weights=None, classes=CLASSES,
                                            classifier_activation=None,
                                            include_preprocessing=False)


def _efficientnet_b0() -> Any:
    return _applications().EfficientNetB0(input_shape=(SIDE, SIDE, 3), weights=None,
                                          classes=CLASSES, classifier_activation=None)


def _sequential_cnn() -> Any:
    from tensorflow import keras

    layers = keras.layers
    return keras.Sequential([
        keras.Input((16, 16, 3)),
        layers.Conv2D(4, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(6, 3, padding="same", strides=2),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Flatten(),
        layers.Dense(CLASSES),
    ])


def _small_resnet() -> Any:
    """A ResNet-like stem and two residual stages (Conv-BN-ReLU, identity and projection
    shortcuts), global average pooling and a dense head."""
    from tensorflow import keras

    layers = keras.layers

    def block(x: Any, filters: int, stride: int) -> Any:
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.ReLU()(layers.BatchNormalization()(y))
        y = layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same",
                                                      use_bias=False)(y))
        if stride != 1 or x.shape[-1] != filters:
            x = layers.BatchNormalization()(layers.Conv2D(filters, 1, strides=stride)(x))
        return layers.ReLU()(layers.Add()([x, y]))

    inputs = keras.Input((SIDE, SIDE, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.MaxPooling2D(padding="same")(x)
    x = block(block(x, 8, 1), 16, 2)
    outputs = layers.Dense(CLASSES)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _transformer_block() -> Any:
    """One post-norm encoder block on ``(tokens, width)``: MultiHeadAttention, residual,
    LayerNormalization, a ReLU feed-forward, mean over tokens, dense head.

    The feed-forward layers are ``EinsumDense`` (as inside MultiHeadAttention): a ``Dense`` on
    a rank-3 tensor runs ``tf.tensordot``, which tf2onnx writes as a reshape that merges the
    batch axis with the tokens. Keras's exact GELU becomes TensorFlow's ``Erfc``, which tf2onnx
    cannot convert."""
    from tensorflow import keras

    layers = keras.layers
    inputs = keras.Input((TOKENS, WIDTH))
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs)
    h = layers.LayerNormalization()(layers.Add()([inputs, attended]))
    hidden = layers.EinsumDense("btd,df->btf", output_shape=(None, 16), bias_axes="f",
                                activation="relu")(h)
    f = layers.EinsumDense("btf,fd->btd", output_shape=(None, WIDTH), bias_axes="d")(hidden)
    h = layers.LayerNormalization()(layers.Add()([h, f]))
    outputs = layers.Dense(CLASSES)(layers.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, outputs)


#: name → builder of the Keras model (random weights)
BUILDERS: dict[str, Callable[[], Any]] = {
    "keras_sequential_cnn": _sequential_cnn,
    "keras_small_resnet": _small_resnet,
    "keras_mobilenet_v2": _mobilenet_v2,
    "keras_mobilenet_v3_small": _mobilenet_v3_small,
    "keras_efficientnet_b0": _efficientnet_b0,
    "keras_transformer_block": _transformer_block,
}

#: exported with tf2onnx's einsum optimizer off: it rewrites the attention's batched products
#: ``'btnh,bsnh->bnts'`` as MatMuls over a reshape that merges the batch axis with the heads,
#: which provgraph refuses (its tensors keep the batch axis apart); the Einsum nodes import
KEEP_EINSUM = {"keras_transformer_block"}

#: exports that provgraph refuses, with the words its one-line error must contain: the same
#: block with all of tf2onnx's optimizers (its batched products reshape across the batch axis)
REFUSED: dict[str, tuple[str, str]] = {
    # the merged batch-and-heads reshape is read as a window fold; its softmax then feeds a
    # product provgraph does not see as attention
    "keras_transformer_block_all_optimizers": (
        "keras_transformer_block",
        "a softmax inside the network is supported only as attention weights"),
}


def _randomise(model: Any, rng: np.random.Generator) -> None:
    """He-normal kernels and random batch-norm statistics, so that the logits of a deep random
    network stay of order one (Keras's defaults shrink them to ~1e-10 in MobileNet)."""
    for layer in model.layers:
        for variable in layer.weights:
            shape = tuple(variable.shape)
            name = variable.path if hasattr(variable, "path") else variable.name
            if "moving_variance" in name or "gamma" in name:
                value = rng.uniform(0.5, 1.5, size=shape)
            elif len(shape) >= 2:
                fan_in = int(np.prod(shape[:2] if "depthwise" in name else shape[:-1]))
                value = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
            else:
                value = rng.normal(0.0, 0.1, size=shape)
            variable.assign(value.astype(np.float32))


def _export(name: str, out: Path) -> None:
    import tensorflow as tf
    import tf2onnx

    model = BUILDERS[REFUSED[name][0] if name in REFUSED else name]()
    if isinstance(model, tf.keras.Sequential):
        # tf2onnx looks the outputs up by the Keras tensor names, which a Sequential model
        # does not carry: the same layers as a functional model export as they are
        model = tf.keras.Model(model.inputs, model.outputs)
    rng = np.random.default_rng(sum(map(ord, name)))
    _randomise(model, rng)
    sample = tuple(int(d) for d in model.input_shape[1:])
    spec = (tf.TensorSpec((None, *sample), tf.float32, name="x"),)
    optimizers = None
    if name in KEEP_EINSUM:
        from tf2onnx import optimizer

        optimizers = {k: v for k, v in optimizer._get_optimizers().items()
                      if k != "einsum_optimizer"}
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                                          optimizers=optimizers)
    x = rng.normal(size=(1, *sample)).astype(np.float32)
    (out / f"{name}.onnx").write_bytes(proto.SerializeToString())
    np.savez(out / f"{name}.npz", x=x, keras=np.asarray(model(x)))


def export_in_child(names: list[str], out: Path, timeout: float = 600.0) -> dict[str, Path]:
    """Export ``names`` into ``out`` in a child Python process; ``name → ONNX path``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    missing = [n for n in names if not (out / f"{n}.onnx").exists()]
    if missing:
        run = subprocess.run([sys.executable, __file__, str(out), *missing], env=env,
                             capture_output=True, text=True, timeout=timeout)
        if run.returncode:
            raise RuntimeError(f"Keras export failed:\n{run.stderr[-4000:]}")
    return {n: out / f"{n}.onnx" for n in names}


if __name__ == "__main__":
    import contextlib
    import io

    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    for model_name in sys.argv[2:]:
        with contextlib.redirect_stdout(io.StringIO()):
            _export(model_name, target)
