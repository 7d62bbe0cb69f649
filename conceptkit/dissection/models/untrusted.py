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

The pickle's stack is followed as far as strings, ints and tuples go (nothing is called), so
every ``GLOBAL``, ``INST`` and ``STACK_GLOBAL`` reference is named and compared with what
``torch.load(weights_only=True)`` accepts (:func:`allowed_global`: containers, tensor rebuild
functions, storage and legacy tensor types, dtypes, ``torch.Size``, ``torch.device``), and the
storages' declared sizes are summed: more bytes than the file holds is refused before torch
allocates them (its legacy reader allocates every storage at its declared size first). Nothing
depends on the wording of torch's own error messages. Files that are neither zip nor pickle,
truncated archives and malformed pickles are refused with one line.

Without ``--trust-pickle`` the loader then calls only ``torch.load(weights_only=True)``, so
safety never rests on this scan alone; the scan decides which one-line message the user gets.
"""

from __future__ import annotations

import _compat_pickle
import pickletools
import re
import struct
import zipfile
import zlib
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
    storages: ``{key: bytes}`` its pickles declare for the tensors' storages.
    """

    torchscript: bool = False
    unsafe: list[str] = field(default_factory=list)
    storages: dict[str, int] = field(default_factory=dict)

    def add(self, refs: PickleRefs) -> None:
        for n in refs.globals:
            if not allowed_global(n) and n not in self.unsafe:
                self.unsafe.append(n)
        for key, nbytes in refs.storages.items():
            self.storages[key] = max(self.storages.get(key, 0), nbytes)

    @property
    def storage_bytes(self) -> int:
        return sum(self.storages.values())


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


@dataclass(frozen=True)
class _Global:
    name: str


_MARK = object()  # a MARK on the simulated stack
_UNKNOWN = object()  # a value the scan does not follow (lists, dicts, objects, floats, ...)
_LITERALS = frozenset(
    {"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "NEWTRUE", "NEWFALSE"}
    | {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE"}
    | {"BINUNICODE8"}
)
_TUPLES = frozenset({"EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
# bytes per element of the storage types torch's legacy format names (others: 1, a lower bound)
_ELEMENT_BYTES = {
    "Double": 8, "Long": 8, "ComplexFloat": 8, "ComplexDouble": 16, "Float": 4, "Int": 4,
    "QInt32": 4, "Half": 2, "BFloat16": 2, "Short": 2,
}  # fmt: skip


@dataclass
class PickleRefs:
    """What one pickle references, read without running it.

    globals: every ``GLOBAL`` / ``INST`` / ``STACK_GLOBAL`` name in order (``module.name``;
    ``<unresolved STACK_GLOBAL>`` when the names are not plain strings, ``<extension N>`` for
    copyreg's registry).
    storages: ``{key: bytes}`` that its ``('storage', Type, key, location, numel, ...)``
    persistent ids declare (numel times the element size of ``Type``; a storage that several
    tensors share is referenced once per tensor and counted once).
    """

    globals: list[str] = field(default_factory=list)
    storages: dict[str, int] = field(default_factory=dict)


class _Machine:
    """A pickle's stack, followed as far as literals, tuples and globals go (nothing is called).

    Each opcode pops and pushes what pickletools says it does (``stack_before`` /
    ``stack_after``); strings, ints, tuples and globals keep their values, everything else
    is ``_UNKNOWN``. A pop from an empty stack is a malformed pickle (ValueError).
    """

    def __init__(self) -> None:
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.refs = PickleRefs()

    def pop(self) -> Any:
        if not self.stack:
            raise ValueError("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        """The items above the topmost MARK, which is removed too."""
        items: list[Any] = []
        while True:
            item = self.pop()
            if item is _MARK:
                return items[::-1]
            items.append(item)

    def pop_for(self, before: list[str]) -> list[Any]:
        """Pop what ``before`` lists (``mark``: everything down to the topmost MARK).

        Returns the popped values in stack order: for a marked opcode the items above the mark.
        """
        if "mark" in before:
            items = self.pop_mark()
            for _ in before[: before.index("mark")]:
                self.pop()
            return items
        return [self.pop() for _ in before][::-1]

    def step(self, op: Any, arg: Any) -> None:
        """Follow one opcode."""
        name = op.name
        if name in _LITERALS:
            self.stack.append(arg)
        elif name == "NONE":
            self.stack.append(None)
        elif name in _GETS:
            self.stack.append(self.memo.get(int(arg), _UNKNOWN))
        elif name in _PUTS or name == "MEMOIZE":
            top = self.stack[-1] if self.stack else _UNKNOWN
            self.memo[int(arg) if name in _PUTS else len(self.memo)] = top
        elif name == "DUP":
            self.stack.append(self.stack[-1] if self.stack else _UNKNOWN)
        elif name == "MARK":
            self.stack.append(_MARK)
        else:
            items = self.pop_for([s.name for s in op.stack_before])
            value = self._value(name, arg, items)
            if op.stack_after:
                self.stack.append(value)

    def _value(self, name: str, arg: Any, items: list[Any]) -> Any:
        """What opcode ``name`` pushes, given the values it popped; records globals, storages."""
        if name in _TUPLES:
            return tuple(items)
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            self.refs.globals.append(_global_name(module, attr))
            return _Global(self.refs.globals[-1]) if name == "GLOBAL" else _UNKNOWN
        if name == "STACK_GLOBAL":
            ok = all(isinstance(v, str) for v in items)
            full = _global_name(items[0], items[1]) if ok else "<unresolved STACK_GLOBAL>"
            self.refs.globals.append(full)
            return _Global(full)
        if name.startswith("EXT"):
            self.refs.globals.append(f"<extension {arg}>")
        elif name == "BINPERSID":
            _declare_storage(items[0], self.refs.storages)
        return _UNKNOWN


def _global_name(module: str, name: str) -> str:
    """``module.name`` as the unpickler resolves it (Python 2 names mapped, as pickle does)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


def _declare_storage(pid: Any, storages: dict[str, int]) -> None:
    """Record the bytes of a torch storage persistent id ``('storage', Type, key, loc, numel)``."""
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        return
    kind, key, numel = pid[1], str(pid[2]), pid[4]
    if not isinstance(numel, int) or isinstance(numel, bool) or numel < 0:
        return
    stem = kind.name.rsplit(".", 1)[-1].removesuffix("Storage") if isinstance(kind, _Global) else ""
    storages[key] = max(storages.get(key, 0), numel * _ELEMENT_BYTES.get(stem, 1))


def read_pickle(f: Any) -> PickleRefs:
    """The globals and declared storage bytes of one pickle, reading ``f`` through its STOP.

    Raises ValueError (or struct.error, EOFError) on a malformed pickle.
    """
    machine = _Machine()
    for op, arg, _pos in pickletools.genops(f):
        machine.step(op, arg)
    return machine.refs


_MALFORMED = (ValueError, EOFError, struct.error, OverflowError)


def _scan_raw(path: Path, spec: str, size: int) -> Scan:
    """A file that is not a zip: one pickle, or torch's legacy run of pickles.

    The legacy format allocates every storage at its declared size before reading its bytes
    from the file, so declared storages larger than the file are refused here.
    """
    out = Scan()
    with open(path, "rb") as raw:
        f = _Capped(raw, size)
        try:
            out.add(read_pickle(f))
        except _MALFORMED as e:
            raise ModelLoadError(
                f"not a torch file (a truncated or malformed pickle: {str(e)[:100]})", file=spec
            ) from e
        for _ in range(_LEGACY_PICKLES - 1):
            if f.tell() >= size:
                break
            try:
                out.add(read_pickle(f))
            except _MALFORMED:
                break  # raw storage bytes follow the pickles; torch.load reads them itself
    _check_storages(out, size, spec)
    return out


def _check_storages(found: Scan, size: int, spec: str) -> None:
    """Refuse storages that declare more bytes than the file (or archive) holds."""
    if found.storage_bytes > size:
        raise ModelLoadError(
            f"its tensors declare {found.storage_bytes:,} bytes of storage but the file holds "
            f"{size:,} bytes (truncated, or sizes made up to exhaust memory)",
            file=spec,
        )


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
                    out.add(read_pickle(f))
            _check_storages(out, sum(i.file_size for i in infos), spec)
            return out
    except ModelLoadError:
        raise
    except _MALFORMED + (zipfile.BadZipFile, zlib.error, OSError, RuntimeError) as e:
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
    if not head.startswith((_ZIP_MAGIC, _PICKLE_PROTO)):
        raise ModelLoadError(
            "not a torch file (neither a torch.save zip archive nor a pickle)", file=spec
        )
    try:
        return _scan_zip(path, spec) if head.startswith(_ZIP_MAGIC) else _scan_raw(path, spec, size)
    except MemoryError as e:
        raise ModelLoadError(
            "its pickles are too large to read in the memory available", file=spec
        ) from e


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
