"""Read the tensors of a PyTorch ``torch.save`` file as NumPy arrays, without PyTorch and without
running code from the file.

Two layouts exist:

* the legacy one (``_use_new_zipfile_serialization=False``, and everything before PyTorch 1.6):
  five pickles and raw data back to back in one stream::

      magic number      0x1950a86a20f9469cfc6c
      protocol version  1001
      system info       {"little_endian": True, "type_sizes": {...}, "protocol_version": 1001}
      the object        tensors inside are persistent ids ("storage", type, key, location, numel,
                        view) rebuilt by torch._utils._rebuild_tensor_v2(storage, offset, size,
                        stride, requires_grad, backward_hooks)
      storage keys      the list of keys whose data follows, in that order
      per storage       int64 little-endian element count, then the raw little-endian elements

* the zip one (``PK`` header): ``<archive>/data.pkl`` holds the object, with persistent ids
  ``("storage", type, key, location, numel)``, and ``<archive>/data/<key>`` the raw storages.

The unpickler resolves only an explicit whitelist of globals (the tensor rebuilders, the typed
storage classes, ``collections.OrderedDict``) to local NumPy stand-ins; any other global, such as
``os.system`` or a ``torch.nn.Module`` subclass, raises :class:`WeightsError` before anything
from the file is called. Only state dicts of tensors are supported, which is what published
weight files (LPIPS heads, DISTS alpha/beta) are.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from harness.errors import HarnessError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

MAX_EXPANDED = 1 << 27
"""The most elements a tensor may have beyond those of its storage (stride-0 expansion)."""

STORAGE_DTYPES: dict[str, np.dtype] = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 by _bfloat16_to_float32
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
"""The typed storages a weights file may name, with the NumPy dtype of their raw data."""


class WeightsError(HarnessError):
    """Pretrained weights are missing, corrupt or unsafe (here and in :mod:`harness.data.weights`,
    which fetches, caches and reads the other weight files)."""


# --------------------------------------------------------------------------- stand-ins


@dataclass(frozen=True)
class _StorageType:
    """What ``torch.FloatStorage`` and friends resolve to: only a name and a dtype."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    """A storage announced by a persistent id; its data is attached after the pickle."""

    kind: _StorageType
    key: str
    numel: int
    data: np.ndarray | None = None
    view_of: tuple[_Storage, int] | None = None  # (root storage, element offset)

    def array(self) -> np.ndarray:
        if self.view_of is not None:
            root, offset = self.view_of
            return root.array()[offset : offset + self.numel]
        if self.data is None:
            raise WeightsError(f"storage {self.key} has no data in the file (truncated file?).")
        return self.data


@dataclass
class _Tensor:
    """A tensor whose storage may not be read yet: materialised by :meth:`array`."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    def array(self) -> np.ndarray:
        flat = self.storage.array()
        itemsize = flat.dtype.itemsize
        if any(s < 0 for s in self.stride) or len(self.size) != len(self.stride):
            raise WeightsError(f"tensor has an invalid size {self.size} / stride {self.stride}.")
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        if 0 in self.size:
            return np.zeros(self.size, flat.dtype)
        count = int(np.prod(self.size, dtype=np.int64))
        if count > max(flat.size, MAX_EXPANDED):  # stride-0 sizes could claim any memory
            raise WeightsError(
                f"tensor of size {self.size} expands its storage of {flat.size} elements to "
                f"{count}; refusing (more than {MAX_EXPANDED} elements)."
            )
        if self.offset < 0 or last >= flat.size:
            raise WeightsError(
                f"tensor of size {self.size} at offset {self.offset} runs past its storage of "
                f"{flat.size} elements."
            )
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(s * itemsize for s in self.stride),
            writeable=False,
        )
        out = np.array(view)  # contiguous copy, detached from the file buffer
        if self.storage.kind.name == "BFloat16Storage":
            out = _bfloat16_to_float32(out)
        return out


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _as_int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(isinstance(v, int) for v in value):
        raise WeightsError(f"a tensor's {what} is {value!r}, not a tuple of integers.")
    return tuple(int(v) for v in value)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _Tensor:
    """Stand-in for ``torch._utils._rebuild_tensor_v2``: records where the tensor lies."""
    if not isinstance(storage, _Storage):
        raise WeightsError(f"a tensor's storage is a {type(storage).__name__}, not a storage.")
    if not isinstance(storage_offset, int):
        raise WeightsError(f"a tensor's storage offset is {storage_offset!r}, not an integer.")
    return _Tensor(
        storage, storage_offset, _as_int_tuple(size, "size"), _as_int_tuple(stride, "stride")
    )


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is its tensor."""
    if not isinstance(data, _Tensor):
        raise WeightsError(f"a parameter wraps a {type(data).__name__}, not a tensor.")
    return data


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}
"""Every global a weights file may name, and the local stand-in it resolves to."""


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a state dict of tensors with :data:`_ALLOWED_GLOBALS` only."""

    def __init__(self, file: IO[bytes], storages: dict[str, _Storage]):
        super().__init__(file)
        self.storages = storages

    def find_class(self, module: str, name: str) -> Any:
        found = _ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise WeightsError(
                f"refusing to unpickle the global {module}.{name}: a PyTorch weights file may "
                "only hold tensors in (ordered) dicts. The file is a pickled model or program, "
                "not a plain state dict (it may be malicious); do not load it."
            )
        return found

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise WeightsError(
                f"refusing a persistent id of kind {kind!r}: only tensor storages are supported "
                "(a saved module's source code is not)."
            )
        if len(pid) not in (5, 6):
            raise WeightsError(f"a storage persistent id has {len(pid)} fields, not 5 or 6.")
        _, kind, key, _location, numel, *rest = pid
        if not isinstance(kind, _StorageType):
            raise WeightsError(f"storage {key!r} has the type {kind!r}, not a typed storage.")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise WeightsError(f"a storage persistent id is malformed: {pid!r}.")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(kind, key, numel)
        elif storage.kind != kind:
            raise WeightsError(
                f"storage {key} is named as both {storage.kind.name} and {kind.name}."
            )
        view = rest[0] if rest else None
        if view is None:
            return storage
        # Legacy views: (view key, element offset, view numel) into the root storage.
        if not (isinstance(view, tuple) and len(view) == 3):
            raise WeightsError(f"storage {key} has a malformed view {view!r}.")
        view_key, offset, view_numel = view
        if not (isinstance(offset, int) and isinstance(view_numel, int)):
            raise WeightsError(f"storage {key} has a malformed view {view!r}.")
        if offset < 0 or offset + view_numel > numel:
            raise WeightsError(f"storage view {view_key} runs past its root storage {key}.")
        sub = self.storages.get(f"view:{view_key}")
        if sub is None:
            sub = _Storage(kind, str(view_key), view_numel, view_of=(storage, offset))
            self.storages[f"view:{view_key}"] = sub
        return sub


# --------------------------------------------------------------------------- the two layouts


def _load_pickle(data: bytes | IO[bytes], storages: dict[str, _Storage], path: Path) -> Any:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _TorchUnpickler(stream, storages).load()
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except Exception as exc:  # truncated, or not a pickle at all
        raise WeightsError(
            f"{path} is not a readable PyTorch weights file ({type(exc).__name__}: {exc})."
        ) from None


def _plain_pickle(stream: IO[bytes], path: Path, what: str) -> Any:
    """One of the legacy header pickles: plain data, no globals at all."""

    class _NoGlobals(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise WeightsError(f"refusing the global {module}.{name} in the {what}.")

        def persistent_load(self, pid: Any) -> Any:
            raise WeightsError(f"refusing a persistent id in the {what}.")

    try:
        return _NoGlobals(stream).load()
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    except Exception as exc:
        raise WeightsError(
            f"{path}: cannot read the {what} of a legacy PyTorch file ({type(exc).__name__}: "
            f"{exc})."
        ) from None


def _load_legacy(raw: bytes, path: Path) -> tuple[Any, dict[str, _Storage]]:
    stream = io.BytesIO(raw)
    magic = _plain_pickle(stream, path, "magic number")
    if magic != LEGACY_MAGIC:
        raise WeightsError(
            f"{path} is neither a zip nor a legacy PyTorch file (no magic number); files written "
            "by PyTorch before 0.4 (tar archives) and plain pickles are not supported."
        )
    protocol = _plain_pickle(stream, path, "protocol version")
    if protocol != LEGACY_PROTOCOL:
        raise WeightsError(f"{path} has the serialization protocol {protocol!r}, not 1001.")
    info = _plain_pickle(stream, path, "system info")
    if not isinstance(info, Mapping) or not info.get("little_endian", False):
        raise WeightsError(f"{path} was written on a big-endian machine; that is not supported.")
    storages: dict[str, _Storage] = {}
    obj = _load_pickle(stream, storages, path)
    keys = _plain_pickle(stream, path, "storage key list")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise WeightsError(f"{path}: the storage key list is {type(keys).__name__}, not strings.")
    for key in keys:
        storage = storages.get(key)
        if storage is None:
            raise WeightsError(f"{path}: data for storage {key}, which no tensor uses.")
        head = stream.read(8)
        if len(head) != 8:
            raise WeightsError(f"{path} is truncated: storage {key} has no element count.")
        (count,) = struct.unpack("<q", head)
        if count != storage.numel:
            raise WeightsError(
                f"{path}: storage {key} holds {count} elements, its tensors say {storage.numel}."
            )
        nbytes = count * storage.kind.dtype.itemsize
        body = stream.read(nbytes)
        if len(body) != nbytes:
            raise WeightsError(f"{path} is truncated inside the data of storage {key}.")
        storage.data = np.frombuffer(body, storage.kind.dtype)
    return obj, storages


def _load_zip(path: Path) -> tuple[Any, dict[str, _Storage]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"{path} is not a readable zip file ({exc}).") from None
    with archive:
        names = archive.namelist()
        pickles = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise WeightsError(
                f"{path} is a zip file but not a PyTorch one: expected one <archive>/data.pkl, "
                f"found {len(pickles)}."
            )
        prefix = pickles[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in names and archive.read(order).strip() not in (b"little", b""):
            raise WeightsError(f"{path} stores big-endian data; that is not supported.")
        storages: dict[str, _Storage] = {}
        obj = _load_pickle(archive.read(pickles[0]), storages, path)
        for key, storage in storages.items():
            if storage.view_of is not None:
                continue
            member = f"{prefix}data/{key}"
            try:
                body = archive.read(member)
            except KeyError:
                raise WeightsError(f"{path} lacks {member}, the data of storage {key}.") from None
            nbytes = storage.numel * storage.kind.dtype.itemsize
            if len(body) < nbytes:
                raise WeightsError(
                    f"{path}: {member} has {len(body)} bytes, storage {key} needs {nbytes}."
                )
            storage.data = np.frombuffer(body[:nbytes], storage.kind.dtype)
    return obj, storages


# --------------------------------------------------------------------------- entry point


def _collect(value: Any, prefix: str, out: dict[str, np.ndarray], dtype: Any) -> None:
    if isinstance(value, _Tensor):
        array = value.array()
        out[prefix] = array.astype(dtype) if dtype is not None else array
    elif isinstance(value, Mapping):
        for key, sub in value.items():
            _collect(sub, f"{prefix}.{key}" if prefix else str(key), out, dtype)
    # Anything else (epoch counters, strings, None) is not a tensor and is left out.


def load_torch_arrays(path: str | Path, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    """The tensors of a PyTorch weights file (a state dict) as ``{name: array}``.

    Args:
        path: a file written by ``torch.save``, legacy or zip layout.
        dtype: the dtype every array is cast to (float32 by default); ``None`` keeps the stored
            dtype (float64, int64, ...; bfloat16 becomes float32).

    Names are the mapping's keys (``"lin0.model.1.weight"``); a nested mapping's tensors are
    named with dotted paths. Shapes are PyTorch's (``(out, in, kh, kw)`` for convolutions).
    Raises :class:`WeightsError` for a missing, truncated or unsafe file.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc}") from None
    if raw[:4] == b"PK\x03\x04":
        obj, _ = _load_zip(path)
    else:
        obj, _ = _load_legacy(raw, path)
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a mapping of tensors)."
        )
    out: dict[str, np.ndarray] = {}
    _collect(obj, "", out, dtype)
    if not out:
        raise WeightsError(f"{path} holds no tensors.")
    return out
