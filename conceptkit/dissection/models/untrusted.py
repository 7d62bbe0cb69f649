"""Decide from a model file's bytes, before loading it, whether loading it could run code.

Loading runs code from the file in two cases: a TorchScript archive (``torch.jit.load`` runs the
archive's ``code/``, e.g. a ``__setstate__``) and a pickle that references Python objects
beyond tensors (unpickling calls them). :func:`scan` tells them apart without unpickling
anything:

- a zip archive (``torch.save``'s format) is TorchScript when it holds a ``constants.pkl`` or a
  ``code/`` folder, as ``torch.load`` itself decides; otherwise every ``*.pkl`` member (the
  ``data.pkl``) is read opcode by opcode with :func:`pickletools.genops`;
- any other file must start as a pickle does (``torch.save``'s legacy format is up to five
  pickles in a row, then raw storage bytes) and its pickles are read the same way.

Every ``GLOBAL``, ``INST`` and ``STACK_GLOBAL`` reference is collected and compared with what
``torch.load(weights_only=True)`` accepts (:func:`allowed_global`: containers, tensor rebuild
functions, storage and legacy tensor types, dtypes, ``torch.Size``, ``torch.device``). Nothing
depends on the wording of torch's own error messages. Files that are neither zip nor pickle,
truncated archives and malformed pickles are refused with one line.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
import re
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from conceptkit import limits
from conceptkit.errors import ModelLoadError

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"  # PROTO opcode: every pickle of protocol 2+ (torch.save writes 2)
_LEGACY_PICKLES = 5  # magic number, protocol, sys_info, the object, storage keys

# what torch.load(weights_only=True) accepts (torch._weights_only_unpickler); checked against
# torch's own list in the tests
_ALLOWED_EXACT = frozenset(
    {
        "_codecs.encode",
        "builtins.bytearray",
        "builtins.complex",
        "builtins.set",
        "collections.Counter",
        "collections.OrderedDict",
        "torch.Size",
        "torch.Tensor",
        "torch.device",
        "torch.nn.parameter.Parameter",
        "torch.serialization._get_layout",
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor._rebuild_from_type_v2",
    }
)
_ALLOWED_PATTERN = re.compile(
    r"torch\._utils\._rebuild_[a-z0-9_]+"  # _rebuild_tensor_v2, _rebuild_parameter, ...
    r"|torch(\.cuda)?(\.sparse)?\.[A-Z][A-Za-z0-9]*(Storage|Tensor)"  # FloatStorage, ...
)
_TORCH_ATTR = re.compile(r"torch\.([a-z][a-z0-9_]*)")


def allowed_global(name: str) -> bool:
    """Whether ``module.name`` is one of the globals a weights-only load may reference."""
    if name in _ALLOWED_EXACT or _ALLOWED_PATTERN.fullmatch(name):
        return True
    m = _TORCH_ATTR.fullmatch(
        name
    )  # a dtype (torch.float32) or a qscheme (torch.per_tensor_affine)
    return m is not None and isinstance(vars(torch).get(m.group(1)), torch.dtype | torch.qscheme)


@dataclass
class Scan:
    """What a model file holds, from its bytes.

    torchscript: a TorchScript archive (``torch.jit.load`` would run its code).
    unsafe: globals its pickles reference beyond :func:`allowed_global`, in file order, once each
    (``<unresolved STACK_GLOBAL>`` when the names cannot be told without running the pickle).
    """

    torchscript: bool = False
    unsafe: list[str] = field(default_factory=list)

    def add(self, names: list[str]) -> None:
        for n in names:
            if not allowed_global(n) and n not in self.unsafe:
                self.unsafe.append(n)


# --------------------------------------------------------------------------------------------
# pickles, opcode by opcode


class _Capped:
    """A read-only view of a binary file that never reads past ``size`` bytes from its start.

    pickletools reads as many bytes as an opcode declares; capping keeps a declared length of
    2**60 from allocating anything (the read comes back short and genops raises ValueError).
    """

    def __init__(self, f: IO[bytes], size: int) -> None:
        self._f = f
        self._size = size

    def _left(self) -> int:
        return max(0, self._size - self._f.tell())

    def read(self, n: int = -1) -> bytes:
        return self._f.read(self._left() if n < 0 else min(n, self._left()))

    def readline(self) -> bytes:
        return self._f.readline(self._left())

    def tell(self) -> int:
        return self._f.tell()


_STRINGS = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE"})
_STRINGS8 = frozenset({"SHORT_BINUNICODE", "BINUNICODE8"})
_MEMO_PUT = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_MEMO_GET = frozenset({"GET", "BINGET", "LONG_BINGET"})
_NO_STACK = frozenset({"PROTO", "FRAME", "MEMOIZE"}) | _MEMO_PUT


def _global_name(module: str, name: str) -> str:
    """``module.name`` as the unpickler resolves it (Python 2 names mapped, as pickle does)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _opcodes(f: Any) -> Iterator[tuple[str, Any]]:
    for op, arg, _pos in pickletools.genops(f):
        yield op.name, arg


def pickle_globals(f: Any) -> list[str]:
    """Every global one pickle references, reading ``f`` up to and including its STOP opcode.

    ``STACK_GLOBAL`` takes its names from the two values pushed before it; they are followed
    through the memo (``MEMOIZE`` / ``BINGET``). When they are anything but strings pushed that
    way the reference is ``<unresolved STACK_GLOBAL>``; ``EXT*`` (copyreg's extension registry)
    is ``<extension N>``. Raises ValueError (or struct.error, EOFError) on a malformed pickle.
    """
    found: list[str] = []
    memo: dict[int, str | None] = {}
    recent: list[str | None] = [None, None]  # values of the last two stack pushes, if strings
    for name, arg in _opcodes(f):
        if name in _NO_STACK:
            top = recent[-1]
            if name == "MEMOIZE":
                memo[len(memo)] = top
            elif name in _MEMO_PUT:
                memo[int(arg)] = top
            continue
        value: str | None = None
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            found.append(_global_name(module, attr))
        elif name == "STACK_GLOBAL":
            module_s, attr_s = recent[-2], recent[-1]
            ok = module_s is not None and attr_s is not None
            found.append(
                _global_name(module_s, attr_s) if ok else "<unresolved STACK_GLOBAL>"  # type: ignore[arg-type]
            )
        elif name.startswith("EXT"):
            found.append(f"<extension {arg}>")
        elif name in _STRINGS or name in _STRINGS8:
            value = arg if isinstance(arg, str) else None
        elif name in _MEMO_GET:
            value = memo.get(int(arg))
        recent = [recent[-1], value]
    return found


_MALFORMED = (ValueError, EOFError, struct.error, OverflowError)


def _scan_raw(path: Path, spec: str, size: int) -> Scan:
    """A file that is not a zip: one pickle, or torch's legacy run of pickles."""
    out = Scan()
    with open(path, "rb") as raw:
        f = _Capped(raw, size)
        try:
            out.add(pickle_globals(f))
        except _MALFORMED as e:
            raise ModelLoadError(
                f"not a torch file (a truncated or malformed pickle: {str(e)[:100]})", file=spec
            ) from e
        for _ in range(_LEGACY_PICKLES - 1):
            if f.tell() >= size:
                break
            try:
                out.add(pickle_globals(f))
            except _MALFORMED:
                break  # raw storage bytes follow the pickles; torch.load reads them itself
    return out


# --------------------------------------------------------------------------------------------
# zip archives


def _scan_zip(path: Path, spec: str) -> Scan:
    """A ``torch.save`` or ``torch.jit.save`` zip archive."""
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            limits.check("zip_members", len(infos), file=spec, error=ModelLoadError)
            members = [i.filename for i in infos]
            if any(n.endswith("constants.pkl") or "code/" in n.split("/", 1)[-1] for n in members):
                return Scan(torchscript=True)
            pickles = [i for i in infos if i.filename.endswith(".pkl")]
            if not pickles:
                raise ModelLoadError(
                    "not a torch file (a zip archive without a data.pkl)", file=spec
                )
            out = Scan()
            for info in pickles:
                _check_member(info, spec)
                with z.open(info) as f:
                    out.add(pickle_globals(f))
            return out
    except ModelLoadError:
        raise
    except _MALFORMED + (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as e:
        raise ModelLoadError(
            f"not a torch file (a truncated or corrupt zip archive: {type(e).__name__}: "
            f"{str(e)[:100]})",
            file=spec,
        ) from e


def _check_member(info: zipfile.ZipInfo, spec: str) -> None:
    limits.check(
        "zip_member_bytes", info.file_size, file=spec, place=info.filename, error=ModelLoadError
    )
    if info.compress_size > 0:
        limits.check(
            "zip_ratio",
            info.file_size // info.compress_size,
            file=spec,
            place=info.filename,
            error=ModelLoadError,
        )


def scan(path: Path, spec: str) -> Scan:
    """What the model file at ``path`` holds; ModelLoadError (one line) if it is no torch file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ModelLoadError(f"cannot read the model file: {e.strerror}", file=spec) from e
    if head.startswith(_ZIP_MAGIC):
        return _scan_zip(path, spec)
    if head.startswith(_PICKLE_PROTO):
        return _scan_raw(path, spec, size)
    raise ModelLoadError(
        "not a torch file (neither a torch.save zip archive nor a pickle)", file=spec
    )


def refuse_untrusted(found: Scan, spec: str) -> None:
    """Raise the one-line refusal, naming ``--trust-pickle``, for a file that would run code."""
    if found.torchscript:
        raise ModelLoadError(
            "file is a TorchScript archive; loading it runs the code inside it: pass "
            "--trust-pickle if you trust its source, or save model.state_dict() instead",
            file=spec,
        )
    if found.unsafe:
        raise ModelLoadError(
            f"file holds a pickled Python object ({found.unsafe[0]}), not just tensors; "
            "unpickling it runs code from the file: pass --trust-pickle if you trust its "
            "source, or save model.state_dict() instead",
            file=spec,
        )
