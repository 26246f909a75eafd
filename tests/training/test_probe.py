"""training.probe / probe_ship: the pooled features (cell-only pools drop the area term), the HED stain jitter,
and the shipped network: its class-activation map averages to its logit and survives the ONNX export."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.probe import POOLS, Backbone, CellMask, MaskedPool, hed_jitter, pool_slice
from training.probe_cv import Head, Recipe, fit_head, sample_weights


def test_masked_pools_match_numpy_and_ignore_how_much_background_there_is():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    m = np.zeros((2, 8, 8, 1), np.float32)
    m[0, 2:6, 2:6] = 1
    m[1, 1:7, 1:7] = 1
    f[1, 1:7, 1:7] = np.tile(f[0, 2:6, 2:6], (2, 2, 1))[:6, :6]  # a cell of the same texture, larger
    out = np.asarray(MaskedPool()(f, m))
    assert out.shape == (2, 12)
    gap, gstd, mmean, _ = (out[:, k * 3 : (k + 1) * 3] for k in range(4))
    np.testing.assert_allclose(gap[0], f[0].mean((0, 1)), atol=1e-5)
    np.testing.assert_allclose(gstd[0], f[0].std((0, 1)), atol=1e-3)
    np.testing.assert_allclose(mmean[0], f[0, 2:6, 2:6].mean((0, 1)), atol=1e-3)
    np.testing.assert_allclose(pool_slice(out, ("mmean",)), mmean)


def test_cell_mask_is_the_foreground_on_the_feature_grid():
    x = np.zeros((1, 16, 16, 3), np.float32)
    x[0, :8, :8] = 200.0
    m = np.asarray(CellMask((4, 4), 4)(x))[0, :, :, 0]
    np.testing.assert_array_equal(m, np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], np.float32))


def test_hed_jitter_keeps_the_background_black_and_changes_the_cell_a_little():
    rng = np.random.default_rng(0)
    x = np.zeros((4, 32, 32, 3), np.float32)
    x[:, 8:24, 8:24] = rng.uniform(60, 220, (4, 16, 16, 3))
    y = hed_jitter(x, np.random.default_rng(1))
    assert (y[:, :8] == 0).all() and (y[:, :, :8] == 0).all()
    d = np.abs(y[:, 8:24, 8:24] - x[:, 8:24, 8:24])
    assert 0.5 < d.mean() < 30
    assert np.array_equal(y, hed_jitter(x, np.random.default_rng(1)))  # reproducible per seed


def test_donor_weights_give_every_donor_and_class_the_same_total():
    y = np.array([0] * 10 + [0] * 90 + [1] * 50)
    g = np.array(["H1"] * 10 + ["H2"] * 90 + ["7"] * 50)
    w = sample_weights(y, g, "donor")
    assert w[g == "H1"].sum() == pytest.approx(w[g == "H2"].sum())
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    assert w.mean() == pytest.approx(1.0)


def test_fit_head_returns_weights_on_raw_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)) * [1, 10, 100, 1, 1] + [0, 5, -50, 0, 0]
    y = (x[:, 0] + x[:, 1] / 10 > 0.5).astype(int)
    h = fit_head(x, y, np.ones(len(y)), 1.0)
    from sklearn.linear_model import LogisticRegression

    mu, sd = x.mean(0), x.std(0) + 1e-6
    ref = LogisticRegression(C=1.0, max_iter=3000).fit((x - mu) / sd, y).decision_function((x - mu) / sd)
    np.testing.assert_allclose(h.logit(x), ref, atol=1e-3)


@pytest.mark.parametrize("size_w", [0.0, 0.7])
def test_shipped_network_reproduces_the_head_and_its_map_averages_to_the_logit(tmp_path, monkeypatch, size_w):
    """A small VGG19 trunk (random weights, 32 px): the exported ONNX gives the head's logit on the pooled
    features and a 'cam' whose mean is that logit."""
    import onnxruntime as ort

    from training import probe, probe_ship
    from training.export import export_onnx

    monkeypatch.setitem(probe.BACKBONES, "vgg19", Backbone("vgg19", 32, 0.85, ("block3_conv4",)))
    r = Recipe("t", "vgg19", ("block3_conv4",), ("gap", "mstd"))
    head = Head(np.random.default_rng(0).normal(0, 0.05, 2 * 256), 0.3, 1.0)
    feats_d0 = {"block3_conv4": np.zeros((1, 4 * 256))}
    w = probe_ship.full_weights(r, head, feats_d0)
    assert w.shape == (len(POOLS) * 256,) and not w[256:512].any()  # unused pools weigh nothing
    model = probe_ship.shipped_network(r, None, w, head.b, size_w)
    rng = np.random.default_rng(1)
    x = np.zeros((3, 32, 32, 3), np.float32)
    x[:, 8:24, 8:24] = rng.uniform(40, 230, (3, 16, 16, 3))
    trunk = probe.pooled_trunk(probe.BACKBONES["vgg19"], None, ("block3_conv4",))
    trunk.set_weights(model.get_layer("vgg19_pooled_maps").get_weights())
    feats = np.asarray(trunk(x))
    from training.metrics import cell_area

    want = pool_slice(feats, r.pools) @ head.w + head.b + size_w * np.log(cell_area(x))
    path = export_onnx(model, tmp_path / "m.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["logit", "cam"]
    z, cam = sess.run(None, {"image": x})
    np.testing.assert_allclose(z[:, 0], want, atol=1e-4)
    assert cam.shape == (3, 8, 8)
    np.testing.assert_allclose(cam.mean(axis=(1, 2)), z[:, 0], atol=2e-3)


def test_size_adjusted_head_does_not_follow_size_within_a_class():
    """Features that grow with the cell inside each class (texture scale): after the adjustment, a large healthy
    cell scores like a small one, while the class difference the features carry is kept."""
    from training.probe_cv import LOG_AREA, heads_for

    rng = np.random.default_rng(0)
    n = 400
    y = np.repeat([0, 1], n // 2)
    la = rng.normal(-2.0, 0.2, n) + 0.3 * y  # ALL cells larger on average
    x = np.c_[la * 3 + rng.normal(0, 0.1, n), y * 1.0 + rng.normal(0, 0.5, n)]  # size-led + class-led feature
    feats = {"d0": {"l": np.repeat(x, 2, axis=1)}, LOG_AREA: la}  # 2 'pools' of the one layer
    r = Recipe("t", "vgg19", ("l",), ("gap",), size_adjust=True)
    r_plain = Recipe("t", "vgg19", ("l",), ("gap",))
    groups = np.array([f"s{i % 20}" for i in range(n)])
    from training.probe_cv import test_logit

    adj = heads_for(feats, r, np.arange(n), y, groups, [1.0])[0]
    plain = heads_for(feats, r_plain, np.arange(n), y, groups, [1.0])[0]
    big = np.array([0]), np.array([0])
    feats_big = {"d0": {"l": np.repeat(np.c_[[-1.2 * 3], [0.0]], 2, axis=1)}, LOG_AREA: np.array([-1.2])}
    feats_avg = {"d0": {"l": np.repeat(np.c_[[-2.0 * 3], [0.0]], 2, axis=1)}, LOG_AREA: np.array([-2.0])}
    gap_adj = test_logit(feats_big, r, adj, big[0]) - test_logit(feats_avg, r, adj, big[0])
    gap_plain = test_logit(feats_big, r_plain, plain, big[0]) - test_logit(feats_avg, r_plain, plain, big[0])
    assert abs(gap_adj[0]) < 0.25 * abs(gap_plain[0])


def test_cv_arch_choices_are_the_backbones():
    """`cv --arch` offers exactly the backbones the features can be extracted for (the table is light to import)."""
    from training import probe
    from training.registry import BACKBONE_KEYS

    assert set(BACKBONE_KEYS) == set(probe.BACKBONES)


def test_every_backbone_gets_its_weights(tmp_path):
    """Each backbone key resolves to its architecture's weights file (a new key is never left without weights)."""
    from training import probe
    from training.options import BackboneWeights

    (tmp_path / "vgg.h5").write_bytes(b"")
    (tmp_path / "inception.h5").write_bytes(b"")
    w = BackboneWeights(str(tmp_path / "vgg.h5"), str(tmp_path / "inception.h5"))
    got = {k: v.rsplit("/", 1)[-1] for k, v in w.resolved().items() if v}
    assert got == {k: "vgg.h5" if bb.arch == "vgg19" else "inception.h5" for k, bb in probe.BACKBONES.items()}
