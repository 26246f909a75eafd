"""LeukoScan training (``leukoscan-train``, its commands in training/registry.py): data discovery and subject-wise
splits, the donor-level cross-validation of frozen-feature recipes and their refit (the 4.0 models), the 3.0
whole-network and 2.0 frozen VGG19 recipes, evaluation, ONNX export, int8 and model cards.  Needs the ``train`` extra
(TensorFlow/Keras)."""
