"""Keras model builders.  Every exported model takes 0-255 RGB NHWC and returns one logit column of P(ALL);
the [-1, 1] (InceptionV3) or mean-subtraction (VGG19) normalisation is the model's first layer."""

from __future__ import annotations

import os

from engine.preprocess import dihedral  # noqa: F401  (one definition of the views, shared with the app)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import tensorflow as tf

from .layers import VGG_MEAN_BGR, Normalize  # noqa: F401  (keras.ops only: any backend)
from .weights import resolve_weights  # noqa: F401  (re-exported: older callers import it from training.models)

DEFAULT_INCEPTION_WEIGHTS = "../shared/weights/inception_v3_imagenet_notop.fp16.weights.h5"


def strategy() -> tf.distribute.Strategy:
    """MirroredStrategy across GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def inception_base(size: int, weights: str | None) -> keras.Model:
    """InceptionV3 convolutional base (expects inputs in [-1, 1])."""
    if weights == "imagenet":
        base = keras.applications.InceptionV3(weights="imagenet", include_top=False, input_shape=(size, size, 3))
    else:
        base = keras.applications.InceptionV3(weights=None, include_top=False, input_shape=(size, size, 3))
        if weights:
            base.load_weights(weights)
    return base


def head(features, dropout: float, name_prefix: str = "head"):
    x = keras.layers.GlobalAveragePooling2D(name=f"{name_prefix}_gap")(features)
    x = keras.layers.Dropout(dropout, name=f"{name_prefix}_dropout")(x)
    return keras.layers.Dense(1, name=f"{name_prefix}_logit", dtype="float32")(x)


def full_inception(base: keras.Model, head_dense: keras.layers.Dense, size: int) -> keras.Model:
    """0-255 RGB -> Normalize -> base -> GAP -> the trained Dense: the exported network (one logit)."""
    inp = keras.Input((size, size, 3), name="image")
    x = Normalize("inception", name="normalize")(inp)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = head_dense(x)
    return keras.Model(inp, out, name="inceptionv3_leukoscan")


def top_submodel(base: keras.Model, cut: str) -> keras.Model:
    """The layers of ``base`` after ``cut`` as a model taking the cut's activations (weights shared)."""
    return keras.Model(base.get_layer(cut).output, base.output, name=f"top_after_{cut}")


def set_trainable_top(base: keras.Model, cut: str, bn_trainable: bool) -> None:
    """Freeze everything up to ``cut``; unfreeze the layers after it (BN layers per ``bn_trainable``)."""
    after = False
    for layer in base.layers:
        if after:
            layer.trainable = bn_trainable if isinstance(layer, keras.layers.BatchNormalization) else True
        else:
            layer.trainable = False
        if layer.name == cut:
            after = True


def vgg19_model(size: int, weights: str | None, dropout: float = 0.3) -> keras.Model:
    """Keras VGG19 convolutional base (16 conv layers, no BatchNorm, as published) + GAP + dropout + one logit."""
    inp = keras.Input((size, size, 3), name="image")
    x = Normalize("vgg", name="normalize")(inp)
    base = keras.applications.VGG19(
        weights="imagenet" if weights == "imagenet" else None, include_top=False, input_shape=(size, size, 3)
    )
    if weights and weights != "imagenet":
        base.load_weights(weights)
    x = base(x)
    out = head(x, dropout)
    return keras.Model(inp, out, name="vgg19_leukoscan")
