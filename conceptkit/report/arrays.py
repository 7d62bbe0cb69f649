"""The run's arrays (``quantile_<layer>.npy``, ``topn_<layer>.npz``) read safely.

Every array's header is read first and checked before anything is allocated: the format
version, a plain numeric dtype of the expected kind (object arrays are never loaded, and
``allow_pickle`` is always False), the shape's rank, and the bytes it declares against the bytes
the file (or zip member) really holds. An ``.npz`` is opened with :mod:`zipfile`: its members
are counted and their expanded sizes checked against :mod:`conceptkit.limits` first. Every
failure is one :class:`~conceptkit.errors.LayoutError` naming the file and the array.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

from conceptkit import limits
from conceptkit.errors import ConceptkitError, LayoutError

_KINDS = {"f": "floating-point", "i": "integer", "u": "integer"}


def _fail(path: Path, place: str | None, message: str) -> LayoutError:
    return LayoutError(message, file=path, place=place)


def _header(fh: IO[bytes], path: Path, place: str | None) -> tuple[tuple[int, ...], bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` from an ``.npy`` header (versions 1.0 and 2.0)."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    if version == (1, 0):
        return fmt.read_array_header_1_0(fh)  # type: ignore[no-any-return]
    if version == (2, 0):
        return fmt.read_array_header_2_0(fh)  # type: ignore[no-any-return]
    raise _fail(
        path, place, f"is .npy format version {version[0]}.{version[1]}, expected 1.0 or 2.0"
    )


def read_array(
    fh: IO[bytes],
    size: int,
    path: Path,
    place: str | None,
    kinds: str,
    ndim: int,
) -> np.ndarray:
    """The array in the ``.npy`` stream ``fh`` of ``size`` bytes, checked before it is read.

    ``kinds``: the dtype kinds accepted (``"f"``, ``"iu"``); ``ndim``: the rank expected.
    """
    try:
        shape, fortran, dtype = _header(fh, path, place)
    except ValueError as exc:
        raise _fail(path, place, f"is not a .npy array ({exc})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in kinds:
        want = " or ".join(sorted({_KINDS[k] for k in kinds}))
        raise _fail(path, place, f"has dtype {dtype}, expected {want} numbers")
    if len(shape) != ndim:
        raise _fail(path, place, f"has shape {shape}, expected {ndim} dimensions")
    declared = math.prod(shape) * dtype.itemsize
    held = size - fh.tell()
    if declared != held:
        raise _fail(
            path, place, f"declares shape {shape} ({declared:,} bytes) but holds {held:,} bytes"
        )
    data = fh.read(declared)
    if len(data) != declared:
        raise _fail(path, place, "is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(dtype.newbyteorder("="), copy=False)


def load_npy(path: Path, kinds: str, ndim: int) -> np.ndarray:
    """The array of the ``.npy`` file ``path`` (see :func:`read_array`)."""
    if not path.is_file():
        raise _fail(path, None, "is missing or not a regular file")
    try:
        with open(path, "rb") as fh:
            return read_array(fh, path.stat().st_size, path, None, kinds, ndim)
    except OSError as exc:
        raise _fail(path, None, f"cannot be read ({exc.strerror or exc})") from None


def _member(zf: zipfile.ZipFile, path: Path, key: str) -> zipfile.ZipInfo:
    try:
        info = zf.getinfo(f"{key}.npy")
    except KeyError:
        raise _fail(path, None, f"has no array {key!r}") from None
    place = f"array {key!r}"
    limits.check("zip_member_bytes", info.file_size, file=path, place=place, error=LayoutError)
    if info.compress_type != zipfile.ZIP_STORED:
        ratio = info.file_size / max(info.compress_size, 1)
        limits.check("zip_ratio", int(ratio), file=path, place=place, error=LayoutError)
    return info


def load_npz(path: Path, arrays: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """The arrays ``{key: (kinds, ndim)}`` of the ``.npz`` file ``path``, each checked."""
    if not path.is_file():
        raise _fail(path, None, "is missing or not a regular file")
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            limits.check("zip_members", len(zf.infolist()), file=path, error=LayoutError)
            for key, (kinds, ndim) in arrays.items():
                info = _member(zf, path, key)
                with zf.open(info) as fh:
                    out[key] = read_array(fh, info.file_size, path, f"array {key!r}", kinds, ndim)
    except ConceptkitError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise _fail(path, None, f"cannot be read as .npz ({exc})") from None
    return out
