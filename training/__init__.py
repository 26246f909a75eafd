"""LeukoScan training: data discovery, subject-wise splits, InceptionV3/VGG19 fine-tuning, evaluation,
ONNX export and model cards (``leukoscan-train``).  Needs the ``train`` extra (TensorFlow/Keras)."""
