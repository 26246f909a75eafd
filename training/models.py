"""The TensorFlow-backed Keras that the frozen-feature recipes use, imported once with TensorFlow's log quieted, and
the layers a saved model needs registered before it loads.  Every exported model takes 0-255 RGB NHWC and returns
one logit column of P(ALL); the [-1, 1] (InceptionV3) or mean-subtraction (VGG19) normalisation is its first layer
(``training.layers.Normalize``)."""

from __future__ import annotations

import os

from engine.preprocess import dihedral  # noqa: F401  (one definition of the views, shared with the app)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: F401  (re-exported: the recipes import keras and tf from here)
import tensorflow as tf  # noqa: F401

from .layers import VGG_MEAN_BGR, Normalize  # noqa: F401  (keras.ops only: any backend)
