"""`.mts` files: metatensor-core's ZIP + NPY format, read and written without metatensor.

A TensorMap is a ZIP archive of STORED members (deflated with `compress=True`; files
from other tools may deflate any member), in this order:

    keys.npy                                   Labels: structured int32 array, one field per name
    blocks/<i>/values.npy                      values, shape [samples, *components, properties]
    blocks/<i>/samples.npy                     Labels
    blocks/<i>/components/<j>.npy              Labels, one per component axis
    blocks/<i>/properties.npy                  Labels (gradients share their block's)
    blocks/<i>/gradients/<parameter>/...       values, samples, components of the gradient,
                                               parameters sorted, nested the same way
    info.json                                  {"key": "value"} pretty-printed, keys sorted; absent if empty

A TensorBlock is the same without `keys.npy`, `blocks/<i>/` and `info.json`; Labels
are a bare `.npy` file. Bytes are those metatensor-core 0.2.6 writes (see `_zip.py` and
`_npy.py`). Writes to a path are atomic; loading never unpickles, inflates only within
zip-bomb bounds, and refuses anything unexpected with a `FormatError`
naming the member (`docs/formats.md`).
"""

from __future__ import annotations

import json
import mmap as _mmap
import os
import stat
import warnings
from typing import Union

import numpy as np

from .. import atomic
from ..errors import FormatError, MetadataError, MtdslError
from ..tensor import Labels, TensorBlock, TensorMap, _metatensor_api
from ..tensor._array import to_numpy
from ..tensor.labels import check_names
from . import _npy
from ._zip import Member, ZipWriter, check_crc, inflate, read_directory

Data = Union[TensorMap, TensorBlock, Labels]

__all__ = [
    "save", "save_buffer", "load", "load_buffer",
    "load_block", "load_block_buffer", "load_labels", "load_labels_buffer",
]

# gradients of gradients of ... deeper than this are refused (metatensor writes at most a few)
MAX_GRADIENT_DEPTH = 16
_FIRST_READ = 4096  # bytes read first from a values member, enough for any usual NPY header
# deflated members of one file may inflate to at most this many bytes in total (a zip bomb
# guard on top of deflate's 1032:1 limit per member); raise it to load larger compressed files
MAX_INFLATED_BYTES = 1 << 33


# == saving ==================================================================================

def save(file, data: Data, use_numpy: bool = False, compress: bool = False) -> None:
    """Save a TensorMap, TensorBlock or Labels to `file` (a path or a binary file object).

    `compress=True` deflates every member (smaller files that metatensor-core and any ZIP
    tool read, slower to write and read, never memory-mapped); the default stores them
    as metatensor-core does. `use_numpy` is accepted for metatensor compatibility.

    Like metatensor, a path not ending in `.mts` gets the extension added, with a warning.
    Writing to a path is atomic: the data goes to a temporary file in the same directory,
    which is flushed to disk and renamed over the target, so the target is always either
    the old file or the complete new one.
    """
    _check_data(data)
    if hasattr(file, "write"):
        _write_to(file.write, data, compress)
        return
    path = os.fspath(file)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not os.path.basename(path).endswith(".mts"):
        path += ".mts"
        warnings.warn(f"adding '.mts' extension, the file will be saved at '{path}'", stacklevel=2)
    _write_atomically(path, data, compress)


def save_buffer(data: Data, use_numpy: bool = False, compress: bool = False) -> bytes:
    """The bytes `save` would write for `data`."""
    _check_data(data)
    chunks = []
    _write_to(chunks.append, data, compress)
    return b"".join(chunks)


def _check_data(data) -> None:
    if not isinstance(data, (TensorMap, TensorBlock, Labels)):
        raise TypeError(f"`data` must be one of 'Labels', 'TensorBlock' or 'TensorMap', not {type(data)}")


def _write_to(write, data: Data, compress: bool = False) -> None:
    if isinstance(data, Labels):
        head, body = _labels_member(data)
        write(head)
        write(body)
        return
    writer = ZipWriter(write, compress)
    if isinstance(data, TensorMap):
        writer.add("keys.npy", *_labels_member(data.keys))
        for index, block in enumerate(data.blocks()):
            _add_block(writer, f"blocks/{index}/", block, with_properties=True)
        info = data.info()
        if info:
            text = json.dumps(info, ensure_ascii=False, indent=2, sort_keys=True)
            writer.add("info.json", text.encode("utf-8"))
    else:
        _add_block(writer, "", data, with_properties=True)
    writer.finish()


def _add_block(writer: ZipWriter, prefix: str, block: TensorBlock, with_properties: bool) -> None:
    writer.add(f"{prefix}values.npy", *_values_member(block.values, prefix))
    writer.add(f"{prefix}samples.npy", *_labels_member(block.samples))
    for index, component in enumerate(block.components):
        writer.add(f"{prefix}components/{index}.npy", *_labels_member(component))
    if with_properties:
        writer.add(f"{prefix}properties.npy", *_labels_member(block.properties))
    for parameter in sorted(block.gradients_list()):
        if parameter in ("", ".", "..") or any(c in parameter for c in "/\\\x00"):
            raise FormatError(
                f"{prefix}gradients/: the gradient name {parameter!r} cannot be a member name "
                "(empty, '.', '..', or containing '/', '\\' or NUL)"
            )
        _add_block(writer, f"{prefix}gradients/{parameter}/", block.gradient(parameter), with_properties=False)


def _bytes_of(array: np.ndarray) -> memoryview:
    return memoryview(array.reshape(-1).view(np.uint8))


def _labels_member(labels: Labels) -> tuple[bytes, memoryview]:
    array = labels.array
    if array.dtype != np.dtype("<i4") or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, dtype="<i4")
    head = _npy.header_bytes([(name, "<i4") for name in labels.names], (len(labels),))
    return head, _bytes_of(array)


def _values_member(values, prefix: str) -> tuple[bytes, memoryview]:
    array = np.ascontiguousarray(to_numpy(values))
    try:
        descr = _npy.value_descr(array.dtype)
    except _npy.NpyError as error:
        raise FormatError(f"{prefix}values.npy: {error}") from None
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return _npy.header_bytes(descr, array.shape), _bytes_of(array)


def _write_atomically(path: str, data: Data, compress: bool = False) -> None:
    if os.path.islink(path):
        path = os.path.realpath(path)  # replace the file the link points to, keep the link
    directory = os.path.dirname(os.path.abspath(path))
    mode = _new_file_mode(path)
    fd, temporary = atomic.temporary(path)  # and removes the debris of killed writers (mtdsl/atomic.py)
    try:
        with open(fd, "wb", buffering=1 << 16) as file:
            _write_to(file.write, data, compress)
            file.flush()
            if hasattr(os, "fchmod"):
                os.fchmod(file.fileno(), mode)
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _new_file_mode(path: str) -> int:
    """Keep an existing file's permissions, else what `open()` would give (0666 minus the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable too (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# == loading =================================================================================

def load(file, mmap: bool = False, verify: bool = True, use_numpy: bool = False) -> Data:
    """Load the TensorMap, TensorBlock or Labels saved in `file` (a path or a binary file object).

    With `mmap=True` (paths only) the values of every stored block and gradient are
    read-only numpy views of the file mapped in memory; deflated members are inflated into
    memory instead (they cannot be mapped). `verify=True` (the default) checks the CRC-32
    of every member, which reads the whole file once (at read bandwidth); with
    `mmap=True, verify=False` values are read from disk only when touched, and a damaged
    value byte goes unnoticed. Labels and info are always checked. `use_numpy` is accepted
    for metatensor compatibility: arrays are always numpy arrays.
    """
    del use_numpy
    if hasattr(file, "read"):
        if mmap:
            raise MtdslError("load(mmap=True) needs a path, not a file object")
        return load_buffer(file.read(), verify=verify)
    descriptor = os.open(os.fspath(file), os.O_RDONLY | getattr(os, "O_BINARY", 0))  # OSError if missing
    try:
        if mmap:
            size = os.fstat(descriptor).st_size
            if size == 0:
                raise FormatError("empty file: not an .mts file")
            mapped = _mmap.mmap(descriptor, 0, access=_mmap.ACCESS_READ)
            return _load(_BufferSource(mapped, copy=False), verify_values=verify)
        return _load(_FileSource(descriptor), verify_values=verify)
    finally:
        os.close(descriptor)


def load_buffer(buffer, verify: bool = True, use_numpy: bool = False) -> Data:
    """Load what `save_buffer` produced: bytes, bytearray, memoryview or a uint8 array."""
    del use_numpy
    return _load(_BufferSource(_as_bytes_view(buffer), copy=True), verify_values=verify)


def load_block(file, mmap: bool = False, verify: bool = True, use_numpy: bool = False) -> TensorBlock:
    """`load`, checking that the file holds a TensorBlock."""
    return load_as(load(file, mmap=mmap, verify=verify), TensorBlock, file)


def load_block_buffer(buffer, verify: bool = True, use_numpy: bool = False) -> TensorBlock:
    """`load_buffer`, checking that the buffer holds a TensorBlock."""
    return load_as(load_buffer(buffer, verify=verify), TensorBlock, None)


def load_labels(file) -> Labels:
    """`load`, checking that the file holds Labels."""
    return load_as(load(file), Labels, file)


def load_labels_buffer(buffer) -> Labels:
    """`load_buffer`, checking that the buffer holds Labels."""
    return load_as(load_buffer(buffer), Labels, None)


_LOADERS = {TensorMap: "load", TensorBlock: "load_block", Labels: "load_labels"}


def load_as(data, kind, file):
    """`data` if it is a `kind`, else a FormatError naming the loader that fits."""
    if not isinstance(data, kind):
        where = f" from '{os.fspath(file)}'" if isinstance(file, (str, os.PathLike)) else ""
        raise FormatError(
            f"unable to load a {kind.__name__}{where}: it holds a {type(data).__name__}, "
            f"use `{_LOADERS[type(data)]}` to load it"
        )
    return data


def _as_bytes_view(buffer) -> memoryview:
    if not isinstance(buffer, (bytes, bytearray, memoryview)):
        array = to_numpy(buffer)
        if array.dtype != np.uint8:
            raise TypeError(f"a buffer must hold bytes (uint8), not {array.dtype}")
        buffer = np.ascontiguousarray(array).reshape(-1)
    view = memoryview(buffer)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


class _BufferSource:
    """Members read from memory (bytes or a memory map); arrays copied or viewed."""

    def __init__(self, buffer, copy: bool):
        self._buffer = buffer
        self._view = memoryview(buffer)
        self.size = len(self._view)
        self.copy = copy

    def read(self, offset: int, length: int):
        if offset < 0 or offset + length > self.size:
            raise FormatError(f"read of {length} bytes at offset {offset} beyond the end of the data")
        return self._view[offset:offset + length]

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        array = np.frombuffer(self._buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
        return array.copy() if self.copy else array


class _FileSource:
    """Members read from an open file with positioned reads, straight into fresh arrays."""

    def __init__(self, descriptor: int):
        self._descriptor = descriptor
        self.size = os.fstat(descriptor).st_size
        self.copy = True

    def read(self, offset: int, length: int):
        buffer = bytearray(length)
        self._read_into(memoryview(buffer), offset)
        return buffer

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        array = np.empty(shape, dtype=dtype)
        if array.nbytes:
            self._read_into(memoryview(array.reshape(-1).view(np.uint8)), offset)
        return array

    def _read_into(self, target: memoryview, offset: int) -> None:
        if offset < 0 or offset + len(target) > self.size:
            raise FormatError(f"read of {len(target)} bytes at offset {offset} beyond the end of the file")
        done = 0
        while done < len(target):
            if hasattr(os, "preadv"):
                count = os.preadv(self._descriptor, [target[done:]], offset + done)
            else:  # pragma: no cover - Windows
                os.lseek(self._descriptor, offset + done, os.SEEK_SET)
                count = os.readv(self._descriptor, [target[done:]])
            if count <= 0:
                raise FormatError(f"the file ended while reading {len(target)} bytes at offset {offset}")
            done += count


def _load(source, verify_values: bool) -> Data:
    if source.size >= len(_npy.MAGIC) and bytes(source.read(0, len(_npy.MAGIC))) == _npy.MAGIC:
        return _read_labels_npy("<labels file>", source.read(0, source.size), None)
    members = read_directory(source)
    inflated = sum(member.size for member in members.values() if member.compressed)
    if inflated > MAX_INFLATED_BYTES:
        raise FormatError(
            f"the compressed members would inflate to {inflated} bytes, more than the {MAX_INFLATED_BYTES} "
            "allowed (mtdsl.io.mts.MAX_INFLATED_BYTES)"
        )
    reader = _Reader(source, members, verify_values)
    if "keys.npy" in members:
        result = reader.tensormap()
    elif "values.npy" in members:
        result = reader.block("", None, 0)
    else:
        raise FormatError("the archive holds neither 'keys.npy' (TensorMap) nor 'values.npy' (TensorBlock)")
    reader.check_all_used()
    return result


def _read_labels_npy(name: str, data, member: Member | None) -> Labels:
    """Labels from the bytes of a whole NPY member (or file)."""
    try:
        header = _npy.parse_header(data)
        if header.fortran_order:
            raise _npy.NpyError("labels cannot be stored in Fortran order")
        if len(header.shape) != 1:
            raise _npy.NpyError(f"labels must be a 1-D structured array, got shape {list(header.shape)}")
        names, dtype = _npy.labels_fields(header.descr)
    except _npy.NpyError as error:
        raise FormatError(f"member {name!r}: {error}") from None
    count = header.shape[0]
    expected = count * 4 * len(names)
    if len(data) - header.length != expected:
        raise FormatError(
            f"member {name!r}: header describes {count} entries of {len(names)} int32 ({expected} bytes) "
            f"but {len(data) - header.length} bytes of data follow"
        )
    if member is not None:
        check_crc(member, data)
    array = np.frombuffer(data, dtype=dtype, count=count * len(names), offset=header.length)
    array = array.astype(np.int32).reshape(count, len(names))
    try:
        return Labels(check_names(names), array)
    except MetadataError as error:
        raise FormatError(f"member {name!r}: {error}") from None


class _Reader:
    """Reads the members of one archive, checking each one and that every member is used."""

    def __init__(self, source, members: dict[str, Member], verify_values: bool):
        self._source = source
        self._members = members
        self._verify_values = verify_values
        self._used: set[str] = set()
        self._gradients = _gradient_index(members)

    def _take(self, name: str) -> Member:
        member = self._members.get(name)
        if member is None:
            raise FormatError(f"member {name!r} is missing")
        self._used.add(name)
        return member

    def check_all_used(self) -> None:
        unused = [name for name in self._members if name not in self._used]
        if unused:
            more = f" (and {len(unused) - 1} more)" if len(unused) > 1 else ""
            raise FormatError(f"member {unused[0]!r} is not part of the .mts layout{more}")

    def _inflated(self, member: Member) -> np.ndarray:
        """A deflated member's bytes, inflated into a fresh array and CRC-checked."""
        return inflate(member, self._source.read(member.data_offset, member.stored_size))

    def labels(self, name: str) -> Labels:
        member = self._take(name)
        if member.compressed:
            return _read_labels_npy(name, self._inflated(member), None)
        return _read_labels_npy(name, self._source.read(member.data_offset, member.size), member)

    def values(self, name: str) -> np.ndarray:
        member = self._take(name)
        if member.compressed:
            data = self._inflated(member)
            return self._values_from(name, member, _BufferSource(data, copy=False), 0, data, verified=True, own=True)
        head = self._source.read(member.data_offset, min(member.size, _FIRST_READ))
        return self._values_from(name, member, self._source, member.data_offset, head,
                                 verified=not self._verify_values, own=self._source.copy)

    def _values_from(self, name: str, member: Member, source, start: int, head, verified: bool, own: bool):
        """The values array of `member`, whose data starts at `start` in `source` with `head`
        its first bytes; `verified`: CRC already checked (or not wanted); `own`: the array
        may be modified in place."""
        try:
            header = _npy.parse_header(head)
        except _npy.NpyError as error:
            if member.size <= _FIRST_READ:
                raise FormatError(f"member {name!r}: {error}") from None
            head = source.read(start, min(member.size, _npy.MAX_HEADER_LENGTH + 12))
            try:
                header = _npy.parse_header(head)
            except _npy.NpyError as error:
                raise FormatError(f"member {name!r}: {error}") from None
        try:
            if header.fortran_order:
                raise _npy.NpyError("values in Fortran order are not supported")
            if not isinstance(header.descr, str):
                raise _npy.NpyError("values must be a plain (not structured) array")
            dtype = _npy.value_dtype(header.descr)
            if len(header.shape) < 2:
                raise _npy.NpyError(
                    f"values need at least 2 dimensions (samples and properties), got shape {list(header.shape)}"
                )
        except _npy.NpyError as error:
            raise FormatError(f"member {name!r}: {error}") from None
        count, bound = 1, dtype.itemsize
        for dimension in header.shape:
            count *= dimension
            bound *= max(dimension, 1)
        if bound >= 1 << 62:  # numpy refuses such shapes even when one dimension is 0
            raise FormatError(f"member {name!r}: shape {list(header.shape)} is too large")
        expected = count * dtype.itemsize
        if member.size - header.length != expected:
            raise FormatError(
                f"member {name!r}: header describes {dtype.name} values of shape {list(header.shape)} "
                f"({expected} bytes) but {member.size - header.length} bytes of data follow"
            )
        array = source.array(start + header.length, dtype, header.shape)
        if not verified:
            check_crc(member, head[:header.length], _bytes_of(array))
        if dtype.byteorder == ">" and own:
            array = array.byteswap().view(dtype.newbyteorder("="))
        return array

    def tensormap(self) -> TensorMap:
        keys = self.labels("keys.npy")
        blocks = [self.block(f"blocks/{index}/", None, 0) for index in range(len(keys))]
        try:
            tensor = TensorMap(keys, blocks)
        except MetadataError as error:
            raise FormatError(f"blocks do not form a TensorMap: {error}") from None
        if "info.json" in self._members:
            for key, value in self._info().items():
                tensor.set_info(key, value)
        return tensor

    def _info(self) -> dict[str, str]:
        member = self._take("info.json")
        if member.compressed:
            data = self._inflated(member).tobytes()
        else:
            data = bytes(self._source.read(member.data_offset, member.size))
            check_crc(member, data)
        try:
            info = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            raise FormatError(f"member 'info.json': not valid JSON ({error})") from None
        if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
            raise FormatError("member 'info.json': must be a JSON object whose values are strings")
        for text in (*info, *info.values()):
            # what metatensor-core refuses: NUL (C strings) and unpaired surrogates (not UTF-8)
            if "\x00" in text or not _encodes_to_utf8(text):
                raise FormatError(
                    f"member 'info.json': {text[:40]!r} holds a NUL character or an unpaired surrogate"
                )
        return info

    def block(self, prefix: str, properties: Labels | None, depth: int) -> TensorBlock:
        values = self.values(f"{prefix}values.npy")
        samples = self.labels(f"{prefix}samples.npy")
        components = [self.labels(f"{prefix}components/{i}.npy") for i in range(values.ndim - 2)]
        if properties is None:
            properties = self.labels(f"{prefix}properties.npy")
        try:
            block = TensorBlock(values, samples, components, properties)
        except (MetadataError, TypeError) as error:
            raise FormatError(f"member '{prefix}values.npy': {error}") from None
        parameters = sorted(self._gradients.get(prefix, ()))
        if parameters and depth >= MAX_GRADIENT_DEPTH:
            raise FormatError(f"member '{prefix}gradients/': gradients nested deeper than {MAX_GRADIENT_DEPTH} levels")
        for parameter in parameters:
            gradient_prefix = f"{prefix}gradients/{parameter}/"
            gradient = self.block(gradient_prefix, properties, depth + 1)
            try:
                block.add_gradient(parameter, gradient)
            except MetadataError as error:
                raise FormatError(f"gradient '{gradient_prefix}': {error}") from None
        return block


def _encodes_to_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _gradient_index(members) -> dict[str, set[str]]:
    """{prefix: gradient parameters} for every `<prefix>gradients/<parameter>/...` member name."""
    index: dict[str, set[str]] = {}
    for name in members:
        parts = name.split("/")
        for position, part in enumerate(parts[:-2]):
            if part == "gradients":
                prefix = "/".join(parts[:position]) + "/" if position else ""
                index.setdefault(prefix, set()).add(parts[position + 1])
    return index


# the data model's `save`/`load` conveniences (`TensorMap.save`, `Labels.load`, ...) call these
# (mtdsl/tensor/_metatensor_api.py: the data model does not import this module, which imports it)
_metatensor_api.register(save=save, save_buffer=save_buffer, load=load, load_as=load_as, load_buffer=load_buffer)
