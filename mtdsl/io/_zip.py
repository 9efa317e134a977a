"""The ZIP container of `.mts` files: a writer that reproduces metatensor-core's bytes and a strict reader.

metatensor-core (through the Rust `zip` crate 0.6) writes every member STORED, dated
2000-01-01 00:00, with a ZIP64 extra field in the local header holding the real
sizes (the 32-bit size fields say 0xFFFFFFFF), no data descriptor, Unix permissions
0644, "version made by" 4.6/Unix. The central directory carries ZIP64 extras only for
values above 4 GiB, and a ZIP64 end record is added past 65535 members or 4 GiB.

The reader trusts nothing: it refuses encrypted members, compression methods other
than stored (0) and deflate (8) (the two metatensor-core reads), members outside the
file or overlapping each other, duplicated names, names that are absolute or contain
`..`, `\\` or NUL, multi-disk archives, and local headers that disagree with the
central directory. Deflated members are inflated by `inflate`, which never produces
more than the size the directory declares, refuses declared sizes beyond deflate's
physical expansion limit (no zip bombs), and checks the CRC-32.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import FormatError

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64 = b"PK\x06\x06"
_LOCATOR64 = b"PK\x06\x07"

_U32_MAX = 0xFFFFFFFF
_U16_MAX = 0xFFFF
_DOS_DATE_2000 = ((2000 - 1980) << 9) | (1 << 5) | 1  # 2000-01-01
_DOS_TIME_0 = 0
_VERSION_MADE_BY = (3 << 8) | 46  # Unix, 4.6: what the zip crate writes
_EXTERNAL_ATTRIBUTES = 0o100644 << 16

STORED = 0
DEFLATED = 8
# deflate cannot expand data by more than 1032:1 (258-byte matches coded in 2 bits); a
# member that claims more is lying about its size, and is refused before any allocation
MAX_DEFLATE_RATIO = 1032
_INFLATE_CHUNK = 1 << 24


_LOCAL_FORMAT = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
_CENTRAL_FORMAT = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
_END_FORMAT = struct.Struct("<4sHHHHIIH")  # 22 bytes
_END64_FORMAT = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
_LOCATOR64_FORMAT = struct.Struct("<4sIQI")  # 20 bytes


# -- writing -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Written:
    name: bytes
    flags: int
    crc: int
    size: int
    offset: int
    method: int = 0
    stored_size: int = -1


class ZipWriter:
    """Streams members to `write` (a callable taking bytes-like) without ever seeking back."""

    def __init__(self, write, compress: bool = False):
        self._write = write
        self._compress = compress
        self._offset = 0
        self._entries: list[_Written] = []

    def _emit(self, data) -> None:
        self._write(data)
        self._offset += len(data) if not isinstance(data, memoryview) else data.nbytes

    def add(self, name: str, head: bytes, body: memoryview | None = None) -> None:
        """A member made of `head` followed by `body` (a byte memoryview, may be None)."""
        size = len(head) + (body.nbytes if body is not None else 0)
        crc = zlib.crc32(head)
        if body is not None and body.nbytes:
            crc = zlib.crc32(body, crc)
        encoded = name.encode("utf-8")
        flags = 0 if name.isascii() else 1 << 11
        offset = self._offset
        version = 45 if offset > _U32_MAX else 20
        method, stored = 0, size
        if self._compress:  # deflated in memory first: the local header needs the compressed size
            compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
            parts = [compressor.compress(head)]
            if body is not None and body.nbytes:
                parts.append(compressor.compress(body))
            parts.append(compressor.flush())
            head, body, method = b"".join(parts), None, DEFLATED
            stored = len(head)
        local = _LOCAL_FORMAT.pack(
            _LOCAL, version, flags, method, _DOS_TIME_0, _DOS_DATE_2000, crc, _U32_MAX, _U32_MAX, len(encoded), 20
        )
        self._emit(b"".join((local, encoded, struct.pack("<HHQQ", 1, 16, size, stored), head)))
        if body is not None and body.nbytes:
            self._emit(body)
        self._entries.append(_Written(encoded, flags, crc, size, offset, method, stored))

    def finish(self) -> None:
        """Write the central directory and the end records."""
        start = self._offset
        for entry in self._entries:
            extra = b""
            stored = entry.size if entry.stored_size < 0 else entry.stored_size
            if entry.size > _U32_MAX or stored > _U32_MAX:
                extra += struct.pack("<QQ", entry.size, stored)
            if entry.offset > _U32_MAX:
                extra += struct.pack("<Q", entry.offset)
            if extra:
                extra = struct.pack("<HH", 1, len(extra)) + extra
            version = 45 if max(entry.size, stored, entry.offset) > _U32_MAX else 20
            large = entry.size > _U32_MAX or stored > _U32_MAX  # both sizes go to the extra then
            header = _CENTRAL_FORMAT.pack(
                _CENTRAL, _VERSION_MADE_BY, version, entry.flags, entry.method, _DOS_TIME_0, _DOS_DATE_2000,
                entry.crc, _U32_MAX if large else stored, _U32_MAX if large else entry.size, len(entry.name),
                len(extra), 0, 0, 0,
                _EXTERNAL_ATTRIBUTES, min(entry.offset, _U32_MAX),
            )
            self._emit(header + entry.name + extra)
        size = self._offset - start
        count = len(self._entries)
        if count > _U16_MAX or max(size, start) > _U32_MAX:
            end64 = self._offset
            self._emit(_END64_FORMAT.pack(_END64, 44, 46, 46, 0, 0, count, count, size, start))
            self._emit(_LOCATOR64_FORMAT.pack(_LOCATOR64, 0, end64, 1))
        self._emit(_END_FORMAT.pack(
            _END, 0, 0, min(count, _U16_MAX), min(count, _U16_MAX), min(size, _U32_MAX), min(start, _U32_MAX), 0
        ))


# -- reading -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Member:
    """A member: its (possibly compressed) data is `stored_size` bytes at `data_offset` in the
    file, `size` bytes once inflated; `method` is STORED or DEFLATED."""

    name: str
    header_offset: int
    data_offset: int
    size: int
    crc: int
    method: int = STORED
    stored_size: int = -1

    @property
    def compressed(self) -> bool:
        return self.method != STORED

    @property
    def extent(self) -> int:
        """Bytes the member's data takes in the file."""
        return self.size if self.stored_size < 0 else self.stored_size


def _check_name(name: str) -> None:
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        raise FormatError(f"member {name!r}: invalid member name (absolute path, backslash or NUL)")
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise FormatError(f"member {name!r}: invalid member name (empty, '.' or '..' path component)")


def read_directory(source) -> dict[str, Member]:
    """The members of the ZIP archive in `source`, in central-directory order, all validated.

    `source` has a `size` attribute and a `read(offset, length)` method returning exactly
    `length` bytes (bounds are checked here before any read).
    """
    file_size = source.size
    if file_size < _END_FORMAT.size:
        raise FormatError(f"file of {file_size} bytes is too short to be a ZIP archive")
    tail_length = min(file_size, _END_FORMAT.size + _U16_MAX)
    tail = bytes(source.read(file_size - tail_length, tail_length))
    # the end record is the last signature whose comment reaches exactly the end of the file
    position = tail.rfind(_END, 0, len(tail) - _END_FORMAT.size + 4)
    while position >= 0 and position + _END_FORMAT.size + struct.unpack_from("<H", tail, position + 20)[0] != len(tail):
        position = tail.rfind(_END, 0, position + 3)
    if position < 0:
        raise FormatError("not a ZIP archive: end of central directory record not found")
    end_offset = file_size - tail_length + position
    _, disk, cd_disk, disk_entries, entries, cd_size, cd_offset, _ = _END_FORMAT.unpack_from(tail, position)
    if disk != 0 or cd_disk != 0 or disk_entries != entries:
        raise FormatError("multi-disk ZIP archives are not supported")
    directory_end = end_offset

    locator_offset = end_offset - _LOCATOR64_FORMAT.size
    if locator_offset >= 0 and bytes(source.read(locator_offset, 4)) == _LOCATOR64:
        _, locator_disk, end64_offset, disks = _LOCATOR64_FORMAT.unpack(
            bytes(source.read(locator_offset, _LOCATOR64_FORMAT.size))
        )
        if locator_disk != 0 or disks != 1:
            raise FormatError("multi-disk ZIP archives are not supported")
        if end64_offset + _END64_FORMAT.size > locator_offset:
            raise FormatError("ZIP64 end of central directory record lies outside the file")
        record = bytes(source.read(end64_offset, _END64_FORMAT.size))
        signature, _, _, _, disk, cd_disk, disk_entries, entries64, cd_size64, cd_offset64 = _END64_FORMAT.unpack(record)
        if signature != _END64:
            raise FormatError("bad ZIP64 end of central directory record")
        if disk != 0 or cd_disk != 0 or disk_entries != entries64:
            raise FormatError("multi-disk ZIP archives are not supported")
        entries, cd_size, cd_offset = entries64, cd_size64, cd_offset64
        directory_end = end64_offset

    if cd_offset + cd_size > directory_end:
        raise FormatError(
            f"central directory ({cd_size} bytes at offset {cd_offset}) extends beyond its end records"
        )
    if entries * _CENTRAL_FORMAT.size > cd_size:
        raise FormatError(f"central directory of {cd_size} bytes cannot hold {entries} members")
    directory = memoryview(bytes(source.read(cd_offset, cd_size)))

    members: dict[str, Member] = {}
    cursor = 0
    for _ in range(entries):
        if cursor + _CENTRAL_FORMAT.size > cd_size:
            raise FormatError("central directory is truncated")
        (signature, _, _, flags, method, _, _, crc, compressed, size, name_length, extra_length,
         comment_length, disk, _, _, header_offset) = _CENTRAL_FORMAT.unpack_from(directory, cursor)
        if signature != _CENTRAL:
            raise FormatError(f"bad central directory entry at offset {cd_offset + cursor}")
        cursor += _CENTRAL_FORMAT.size
        if cursor + name_length + extra_length + comment_length > cd_size:
            raise FormatError("central directory is truncated")
        raw_name = bytes(directory[cursor:cursor + name_length])
        try:
            name = raw_name.decode("utf-8") if flags & (1 << 11) else raw_name.decode("cp437")
        except UnicodeDecodeError:
            raise FormatError(f"member {raw_name!r}: name is not valid UTF-8") from None
        extra = directory[cursor + name_length:cursor + name_length + extra_length]
        cursor += name_length + extra_length + comment_length

        _check_name(name)
        if name in members:
            raise FormatError(f"member {name!r}: appears twice in the archive")
        if flags & 0x41:
            raise FormatError(f"member {name!r}: encrypted members are not supported")
        if method not in (STORED, DEFLATED):
            raise FormatError(
                f"member {name!r}: compressed with method {method}; .mts members must be stored (0) "
                "or deflated (8)"
            )
        if disk != 0:
            raise FormatError(f"member {name!r}: multi-disk ZIP archives are not supported")
        size, compressed, header_offset = _zip64_fields(name, extra, size, compressed, header_offset)
        if method == STORED and compressed != size:
            raise FormatError(
                f"member {name!r}: stored member with different sizes ({compressed} compressed, {size} not)"
            )
        if method == DEFLATED and size > MAX_DEFLATE_RATIO * compressed + 64:
            raise FormatError(
                f"member {name!r}: claims {size} bytes inflated from {compressed} compressed bytes, more than "
                f"deflate's {MAX_DEFLATE_RATIO}:1 limit (a zip bomb or a corrupted directory)"
            )
        if header_offset + _LOCAL_FORMAT.size > cd_offset:
            raise FormatError(f"member {name!r}: local header lies outside the file data")
        local = bytes(source.read(header_offset, _LOCAL_FORMAT.size))
        (signature, _, _, _, _, _, _, _, _, local_name_length, local_extra_length) = _LOCAL_FORMAT.unpack(local)
        if signature != _LOCAL:
            raise FormatError(f"member {name!r}: bad local header signature at offset {header_offset}")
        data_offset = header_offset + _LOCAL_FORMAT.size + local_name_length + local_extra_length
        if data_offset + compressed > cd_offset:
            raise FormatError(
                f"member {name!r}: claims {compressed} bytes at offset {data_offset}, beyond the end of the file data"
            )
        if bytes(source.read(header_offset + _LOCAL_FORMAT.size, local_name_length)) != raw_name:
            raise FormatError(f"member {name!r}: local header names a different member")
        members[name] = Member(name, header_offset, data_offset, size, crc, method, compressed)

    if cursor != cd_size:
        raise FormatError(f"central directory has {cd_size - cursor} bytes after its {entries} members")
    ordered = sorted(members.values(), key=lambda m: m.header_offset)
    for first, second in zip(ordered, ordered[1:]):
        if first.data_offset + first.extent > second.header_offset:
            raise FormatError(f"members {first.name!r} and {second.name!r} overlap")
    return members


def _zip64_fields(name: str, extra, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF fields by their ZIP64 extra values, in the standard's order."""
    needed = [size == _U32_MAX, compressed == _U32_MAX, offset == _U32_MAX]
    if not any(needed):
        return size, compressed, offset
    cursor = 0
    while cursor + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, cursor)
        body = extra[cursor + 4:cursor + 4 + length]
        if len(body) != length:
            raise FormatError(f"member {name!r}: truncated extra field")
        if tag == 1:
            values = [size, compressed, offset]
            position = 0
            for index in range(3):
                if needed[index] and position + 8 <= length:
                    (values[index],) = struct.unpack_from("<Q", body, position)
                    position += 8
            return values[0], values[1], values[2]
        cursor += 4 + length
    # no ZIP64 field: the zip crate writes exactly 0xFFFFFFFF this way, take it literally
    return size, compressed, offset


def check_crc(member: Member, *parts) -> None:
    """Raise FormatError unless the CRC-32 of the concatenated `parts` is the member's."""
    crc = 0
    for part in parts:
        crc = zlib.crc32(part, crc)
    if crc != member.crc:
        raise FormatError(f"member {member.name!r}: CRC-32 mismatch, the data is corrupted")


def inflate(member: Member, data, into=None):
    """The `member.size` bytes inflated from its deflate stream `data`, CRC-checked.

    Never produces more than the declared size (the output buffer is that size, and the
    stream must end exactly there), so a lying header cannot make it allocate more. The
    result is a fresh writable uint8 numpy array (or `into`, a writable buffer of the size).
    """
    import numpy as np

    output = np.empty(member.size, dtype=np.uint8) if into is None else into
    target = memoryview(output).cast("B") if not isinstance(output, np.ndarray) else memoryview(output)
    decompressor = zlib.decompressobj(-15)
    done = 0
    crc = 0
    pending = memoryview(data)
    try:
        while True:
            chunk = decompressor.decompress(pending, min(_INFLATE_CHUNK, member.size - done + 1))
            if done + len(chunk) > member.size:
                raise FormatError(f"member {member.name!r}: inflates to more than the {member.size} bytes declared")
            target[done:done + len(chunk)] = chunk
            crc = zlib.crc32(chunk, crc)
            done += len(chunk)
            pending = decompressor.unconsumed_tail
            if decompressor.eof or (not chunk and not pending):
                break
    except zlib.error as error:
        raise FormatError(f"member {member.name!r}: corrupted deflate data ({error})") from None
    if not decompressor.eof:
        raise FormatError(f"member {member.name!r}: the deflate stream is truncated")
    if done != member.size:
        raise FormatError(f"member {member.name!r}: inflates to {done} bytes, the directory declares {member.size}")
    if crc != member.crc:
        raise FormatError(f"member {member.name!r}: CRC-32 mismatch, the data is corrupted")
    return output
