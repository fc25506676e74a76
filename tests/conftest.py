"""Shared fixtures. The benchmark images live outside the repository (never committed)."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sqlite3
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import harness  # noqa: F401  # before TensorFlow loads: oneDNN on, as in the CLI's processes

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA_ENV = "HARNESS_SHARED_DATA"

pytest_plugins = ["pytester"]  # runs a pytest inside a test, in the same process


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared image data (set5, set14, bsd100, t91, bsd200, vid4): ``$HARNESS_SHARED_DATA``
    or ``../shared/data`` next to the repository; the test is skipped when it is absent."""
    path = Path(os.environ.get(SHARED_DATA_ENV) or REPO.parent / "shared" / "data")
    if not (path / "set5").is_dir():
        pytest.skip(
            f"shared image data not found at {path} (set {SHARED_DATA_ENV} to the folder holding "
            "set5/, set14/, t91/, ...)"
        )
    return path


BOMB_SIDE = 20000
"""The side of :func:`bomb_png`: 400 M pixels, over the default limit of 8192 x 8192."""


def write_bomb_png(path: Path, side: int = BOMB_SIDE) -> Path:
    """A valid all-black 1-bit ``side`` x ``side`` PNG, written row by row (about 50 KB on disk,
    1.2 GB as RGB): the decompression bomb every image read path must refuse from its header."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte 0, then the packed bits
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row * 1000) for _ in range(side // 1000))
    idat += deflate.compress(row * (side % 1000)) + deflate.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit grey: Pillow mode "1"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.fixture(scope="session")
def bomb_png(tmp_path_factory) -> Path:
    """:func:`write_bomb_png` once per session; copy it where a test needs it."""
    return write_bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


@pytest.fixture
def no_big_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make Pillow refuse to decode anything over a million pixels, to show that a path turns
    :func:`bomb_png` away from its header alone (small images still decode)."""
    from PIL import ImageFile

    load = ImageFile.ImageFile.load

    def guarded(self, *args, **kwargs):
        if self.size[0] * self.size[1] > 1_000_000:
            raise AssertionError(f"Pillow was asked to decode {self.size[0]}x{self.size[1]} pixels")
        return load(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", guarded)


@pytest.fixture(scope="session")
def registry():
    """The installed plugins, loaded once per session and passed explicitly where needed."""
    from harness.plugin_api.registry import build_registry

    return build_registry()


TRAINING_POLICIES = ("float32", "mixed_bfloat16")
"""The policies a generator is trained under: float32, and the CPU default of
``precision = "auto"`` on a CPU with bf16 support."""


@dataclass(frozen=True)
class SavedGenerator:
    """A tiny generator saved as training saves it (``generator.keras``) under ``policy``, and
    ``float32``: the same architecture and weights built in float32 (the reference that
    exports, serving, evaluation and upscaling are compared with)."""

    policy: str
    path: Path
    float32: Any


def save_generator(folder: Path, registry, policy: str, seed: int = 7, **params) -> SavedGenerator:
    """Build a tiny SRResNet under ``policy`` (as a run does), save it, and its float32 twin."""
    import keras

    from harness.training.precision import policy_scope

    params = {"scale": 4, "blocks": 1, "filters": 8, **params}
    keras.utils.set_random_seed(seed)
    with policy_scope(policy):
        model = registry.factory("generator", "srresnet")(**params)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "generator.keras"
    model.save(path)
    twin = registry.factory("generator", "srresnet")(**params)
    twin.set_weights(model.get_weights())
    return SavedGenerator(policy, path, twin)


@pytest.fixture(scope="session", params=TRAINING_POLICIES)
def trained(request, tmp_path_factory, registry) -> SavedGenerator:
    """A tiny generator saved under each training policy (tests using it run once per policy)."""
    return save_generator(tmp_path_factory.mktemp(request.param), registry, request.param)


@functools.cache
def _empty_store() -> Path:
    """One empty MLflow SQLite store per test process, made by MLflow itself (creating and
    migrating a store's tables takes seconds; copying the file takes milliseconds)."""
    from mlflow.tracking import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="harness-test-mlflow-"))
    atexit.register(shutil.rmtree, folder, True)
    MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
    return folder / "mlflow.db"


def new_store(folder: Path, name: str = "mlflow.db") -> str:
    """The URI of a new, empty MLflow SQLite store at ``folder / name``: a copy of
    :func:`_empty_store` whose Default experiment keeps its artifacts where MLflow would have
    put them (``./mlruns/0`` of the working directory)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copyfile(_empty_store(), path)
    with sqlite3.connect(path) as db:
        location = str(Path.cwd() / "mlruns" / "0")
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
        )
    return f"sqlite:///{path}"


@functools.cache
def scratch_store() -> str:
    """An MLflow store for the runs of tests that do not look at MLflow (so that they log into
    a temporary folder, not into ``./mlflow.db`` of the checkout)."""
    folder = Path(tempfile.mkdtemp(prefix="harness-test-runs-"))
    atexit.register(shutil.rmtree, folder, True)
    return new_store(folder)


def tiny_overrides(tmp_path: Path, steps: int = 4, pretrain: int = 2) -> list[str]:
    """--set overrides that shrink the quickstart to a few seconds."""
    sets = {
        "experiment.runs_dir": f'"{tmp_path / "runs"}"',
        "data.patch": "32",
        "data.val_limit": "1",
        "data.val_max_side": "32",
        "generator.blocks": "1",
        "generator.filters": "8",
        "discriminator.filters": "8",
        "discriminator.dense": "16",
        "train.steps": str(steps),
        "train.pretrain_steps": str(pretrain),
        "train.batch_size": "2",
        "train.log_every": "1",
        "train.checkpoint_every": "2",
        "train.learning_rate": "1e-4",
        "validation.every": "2",
        "validation.samples": "1",
    }
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out


def tiny_benchmark_set(folder: Path) -> Path:
    """Two 64x64 crops of scikit-image photographs: a benchmark folder for reports."""
    from PIL import Image

    from harness.data import pipeline as data

    folder.mkdir(parents=True)
    for name, hr in data.load_folder("skimage", 4, limit=2):
        Image.fromarray(hr[:64, :64]).save(folder / f"{name}.png")
    return folder
