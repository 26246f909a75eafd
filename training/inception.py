"""InceptionV3 recipe on cached frozen-backbone activations.

Phase 1: logistic-regression head on globally pooled ``mixed10`` features of the frozen ImageNet network.
Phase 2: the blocks after ``cut`` (default ``mixed8``: mixed9 + mixed10) + the head fine-tuned at a low learning
rate on the cached ``cut`` activations of the augmentation views (dihedral flips/rotations), class-weighted,
BatchNorm layers in inference mode, validation weighted F1 tracked per epoch.

Test-time augmentation: validation (and the app, through the card's ``test_time_augmentation``) scores a cell as the
mean logit over the dihedral views ``Recipe.test_views``; temperature and threshold are fitted on that mean.

Cross-validation by subject runs the whole recipe per fold, keeps every epoch's validation logits, and picks ONE
epoch count for all folds (the epoch maximising the mean fold weighted F1); the out-of-fold logits at that epoch
are the honest validation predictions.  The shipped model is refit on all subjects with that epoch count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .models import full_inception, inception_base, keras, set_trainable_top, tf, top_submodel
from .progress import Progress


@dataclass
class Recipe:
    size: int = 224
    cut: str = "mixed8"
    views: tuple[int, ...] = (0, 5, 2)
    # dihedral views averaged (as logits) at validation and in the app (written into the model card); a subset of
    # ``views`` whose features are cached.  () = all of ``views``.
    tta_views: tuple[int, ...] = ()
    epochs: int = 8
    batch: int = 32
    lr: float = 1e-4
    dropout: float = 0.3
    head_c: float = 0.1  # inverse L2 strength of the phase-1 logistic regression
    bn_trainable: bool = False
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        tv = self.test_views
        if tv[0] != 0 or not set(tv) <= set(self.views):
            raise ValueError(f"tta_views {tv} must start with 0 and be cached training views {self.views}")

    @property
    def test_views(self) -> tuple[int, ...]:
        return tuple(self.tta_views) or tuple(self.views)


def class_weights(y: np.ndarray) -> dict[int, float]:
    n = len(y)
    return {c: n / (2.0 * max(int((y == c).sum()), 1)) for c in (0, 1)}


class InceptionTrainer:
    """Holds one InceptionV3 (weights shared between the full model and the top sub-model)."""

    def __init__(self, recipe: Recipe, weights: str | None, log: Callable[[str], None] = print):
        self.r = recipe
        self.weights = weights
        self.log = log
        keras.utils.set_random_seed(recipe.seed)
        self.base = inception_base(recipe.size, weights)
        self._initial = [w.copy() for w in self.base.get_weights()]
        self.top = top_submodel(self.base, recipe.cut)
        self.dense = keras.layers.Dense(1, name="head_logit", dtype="float32")
        self.dense.build((None, 2048))
        self.dropout = keras.layers.Dropout(recipe.dropout, seed=recipe.seed)

    # -- state
    def reset(self) -> None:
        self.base.set_weights(self._initial)

    def set_head(self, coef: np.ndarray, intercept: float) -> None:
        self.dense.set_weights([coef.reshape(2048, 1).astype(np.float32), np.array([intercept], np.float32)])

    # -- frozen pooled features (phase 1)
    def pooled(self, feats: np.ndarray, batch: int = 128) -> np.ndarray:
        f = tf.function(lambda x: tf.reduce_mean(self.top(tf.cast(x, tf.float32), training=False), axis=(1, 2)))
        out = np.zeros((len(feats), 2048), np.float32)
        for i in range(0, len(feats), batch):
            out[i : i + batch] = f(tf.constant(np.asarray(feats[i : i + batch]))).numpy()
        return out

    def logits(self, feats: np.ndarray, batch: int = 128) -> np.ndarray:
        out = np.zeros(len(feats), np.float32)
        for i in range(0, len(feats), batch):
            out[i : i + batch] = self._infer(tf.constant(np.asarray(feats[i : i + batch]))).numpy()[:, 0]
        return out

    # -- phase 2
    def finetune(
        self,
        feats: dict[int, np.ndarray],
        y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray | None,
        epochs: int,
        on_epoch: Callable[[int, dict], None] | None = None,
    ) -> dict:
        r = self.r
        set_trainable_top(self.base, r.cut, r.bn_trainable)
        train_vars = self.top.trainable_variables + self.dense.trainable_variables
        opt = keras.optimizers.Adam(learning_rate=r.lr)
        cw = class_weights(y[train_idx])
        top, dense, drop = self.top, self.dense, self.dropout
        bn_training = r.bn_trainable

        @tf.function(reduce_retracing=True)
        def step(x, t, w):
            with tf.GradientTape() as tape:
                h = top(tf.cast(x, tf.float32), training=bn_training)
                h = tf.reduce_mean(h, axis=(1, 2))
                z = dense(drop(h, training=True))[:, 0]
                loss = tf.reduce_sum(w * tf.nn.sigmoid_cross_entropy_with_logits(labels=t, logits=z)) / tf.reduce_sum(w)
            g = tape.gradient(loss, train_vars)
            opt.apply_gradients(zip(g, train_vars))
            return loss

        self._infer = tf.function(
            lambda x: dense(tf.reduce_mean(top(tf.cast(x, tf.float32), training=False), axis=(1, 2))),
            reduce_retracing=True,
        )
        rng = np.random.default_rng(r.seed)
        views = list(feats)
        hist = {"loss": [], "val_weighted_f1": [], "val_logits": [], "seconds": []}
        from .metrics import weighted_f1

        for ep in range(1, epochs + 1):
            t0 = time.time()
            order = rng.permutation(train_idx)
            losses = []
            progress = Progress(len(order) // r.batch, f"epoch {ep}/{epochs}", per_step=r.batch)
            for i in range(0, len(order) - r.batch + 1, r.batch):
                idx = order[i : i + r.batch]
                vs = rng.integers(0, len(views), len(idx))
                x = np.stack([feats[views[v]][j] for j, v in zip(idx, vs)])
                t = y[idx].astype(np.float32)
                w = np.where(t == 1, cw[1], cw[0]).astype(np.float32)
                losses.append(float(step(tf.constant(x), tf.constant(t), tf.constant(w))))
                progress.update(1, loss=float(np.mean(losses)))
            progress.close()
            hist["loss"].append(float(np.mean(losses)))
            if val_idx is not None:
                # every test-time view, as the app scores cells: (V, n_val); the decision uses the mean logit
                zv = np.stack([self.logits(np.asarray(feats[v])[val_idx]) for v in r.test_views])
                hist["val_logits"].append(zv)
                hist["val_weighted_f1"].append(weighted_f1(y[val_idx], (zv.mean(0) >= 0).astype(int)))
            hist["seconds"].append(time.time() - t0)
            msg = f"epoch {ep}/{epochs}: loss {hist['loss'][-1]:.4f}"
            if val_idx is not None:
                msg += f", val weighted F1 {hist['val_weighted_f1'][-1]:.4f}"
            self.log(msg + f" ({hist['seconds'][-1]:.0f}s)")
            if on_epoch:
                on_epoch(ep, hist)
        return hist

    def export_model(self) -> keras.Model:
        """The full network (0-255 input, normalisation layer, fine-tuned base, head) as one Keras model."""
        return full_inception(self.base, self.dense, self.r.size)


def fit_head(pooled: dict[int, np.ndarray], y: np.ndarray, idx: np.ndarray, c: float, seed: int = 0):
    """Phase 1: class-weighted logistic regression on the pooled features of all views of the ``idx`` cells."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([pooled[v][idx] for v in pooled])
    t = np.concatenate([y[idx] for _ in pooled])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000, random_state=seed)
    clf.fit((x - mu) / sd, t)
    # fold the standardisation into the Dense weights: w.(x-mu)/sd + b = (w/sd).x + (b - w.mu/sd)
    w = clf.coef_[0] / sd
    return w.astype(np.float32), float(clf.intercept_[0] - np.dot(w, mu))
