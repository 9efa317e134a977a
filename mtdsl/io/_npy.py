"""NPY headers: written exactly as metatensor-core writes them, read without `eval` or pickle.

metatensor-core formats the header dictionary as
`{ 'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, ) }` (labels use a
structured descr `[('system', '<i4'), ('atom', '<i4'), ]`), pads it with spaces
so that the whole header is a multiple of 64 bytes (adding a full 64 when it
already is one) and ends it with a newline; version 1.0 when the length fits in
16 bits, 2.0 otherwise. The reader also accepts numpy's own spelling
(`{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }`) and versions
1.0, 2.0 and 3.0, through a small literal parser that knows strings, integers,
booleans, tuples and lists, and nothing else.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"\x93NUMPY"
_DIVISOR = 64
# larger headers are refused: a real one is a few hundred bytes (numpy's own limit is 10000)
MAX_HEADER_LENGTH = 1 << 20
MAX_DIMENSIONS = 64

# the canonical spellings of metatensor-core and numpy, parsed by one regular expression; any
# other header goes through the general parser. Single spaces only: no ambiguous repetition.
_NAME = r"'[^'\\\n]*'"
_FAST_HEADER = re.compile(
    r"\{ ?'descr': (?P<descr>" + _NAME + r"|\[(?:\(" + _NAME + ", " + _NAME + r"\), )*(?:\(" + _NAME + ", " + _NAME
    + r"\))?\]), 'fortran_order': (?P<fortran>True|False), 'shape': \((?P<shape>(?:[0-9]{1,20}, )*(?:[0-9]{1,20},?)?)\),? ?\} *"
)
_FIELD = re.compile(r"\('([^']*)', '([^']*)'\)")

# dtypes that .mts values may have (the ones metatensor-core can write)
VALUE_DTYPES = {
    "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
    "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64,
    "f2": np.float16, "f4": np.float32, "f8": np.float64,
    "c8": np.complex64, "c16": np.complex128, "b1": np.bool_,
}


class NpyError(ValueError):
    """A malformed NPY header; the caller adds which member it was."""


@dataclass(frozen=True)
class NpyHeader:
    descr: str | tuple[tuple[str, str], ...]
    fortran_order: bool
    shape: tuple[int, ...]
    length: int  # bytes taken by magic, version, length field, dictionary and padding


# -- writing -------------------------------------------------------------------------------

def _descr_literal(descr) -> str:
    if isinstance(descr, str):
        return f"'{descr}'"
    return "[" + "".join(f"('{name}', '{kind}'), " for name, kind in descr) + "]"


def header_bytes(descr, shape) -> bytes:
    """The NPY header metatensor-core writes for `descr` (a string or (name, type) pairs) and `shape`."""
    literal = (
        "{ 'descr': " + _descr_literal(descr) + ", 'fortran_order': False, 'shape': ("
        + "".join(f"{int(s)}, " for s in shape) + ") }"
    ).encode("ascii")
    for version, length_format in ((1, "<H"), (2, "<I")):
        prefix = len(MAGIC) + 2 + struct.calcsize(length_format)
        unpadded = prefix + len(literal) + 1
        total = unpadded + _DIVISOR - unpadded % _DIVISOR
        if total - prefix < 1 << (8 * struct.calcsize(length_format)):
            return b"".join((
                MAGIC, bytes((version, 0)), struct.pack(length_format, total - prefix),
                literal, b" " * (total - 1 - prefix - len(literal)), b"\n",
            ))
    raise NpyError("header too long")  # pragma: no cover - needs a 4 GiB header


def value_descr(dtype: np.dtype) -> str:
    """'<f8' for float64 values: little-endian type string, as metatensor-core writes it."""
    code = f"{dtype.kind}{dtype.itemsize}"
    if code not in VALUE_DTYPES:
        raise NpyError(
            f"values of dtype {dtype} cannot be stored in .mts "
            f"(supported: {', '.join(np.dtype(t).name for t in VALUE_DTYPES.values())})"
        )
    return "<" + code


# -- reading -------------------------------------------------------------------------------

def parse_header(data) -> NpyHeader:
    """Parse the NPY header at the start of `data` (bytes-like). Raises NpyError."""
    data = memoryview(data)
    if len(data) < 10 or bytes(data[:6]) != MAGIC:
        raise NpyError("not an NPY array (bad magic string)")
    major, minor = data[6], data[7]
    if (major, minor) == (1, 0):
        (length,) = struct.unpack_from("<H", data, 8)
        start = 10
    elif (major, minor) in ((2, 0), (3, 0)):
        if len(data) < 12:
            raise NpyError("truncated NPY header")
        (length,) = struct.unpack_from("<I", data, 8)
        start = 12
    else:
        raise NpyError(f"unknown NPY version {major}.{minor}")
    if length > MAX_HEADER_LENGTH:
        raise NpyError(f"NPY header of {length} bytes is larger than the {MAX_HEADER_LENGTH} allowed")
    if start + length > len(data):
        raise NpyError(f"NPY header claims {length} bytes, only {len(data) - start} are present")
    raw = bytes(data[start:start + length])
    if not raw.endswith(b"\n"):
        raise NpyError("NPY header does not end with a newline")
    try:
        text = raw[:-1].decode("utf-8" if major == 3 else "ascii")
    except UnicodeDecodeError:
        raise NpyError("NPY header is not ASCII text") from None
    fast = _FAST_HEADER.fullmatch(text)
    if fast is not None:
        descr = fast["descr"]
        descr = descr[1:-1] if descr.startswith("'") else tuple(_FIELD.findall(descr))
        shape = tuple(int(s) for s in re.findall(r"[0-9]+", fast["shape"]))
        if len(shape) > MAX_DIMENSIONS:
            raise NpyError(f"NPY header 'shape' has {len(shape)} dimensions, at most {MAX_DIMENSIONS} are allowed")
        return NpyHeader(descr, fast["fortran"] == "True", shape, start + length)
    dictionary = _Parser(text).document()
    if not isinstance(dictionary, dict) or set(dictionary) != {"descr", "fortran_order", "shape"}:
        raise NpyError("NPY header must be a dictionary with exactly 'descr', 'fortran_order' and 'shape'")
    fortran_order = dictionary["fortran_order"]
    if not isinstance(fortran_order, bool):
        raise NpyError("NPY header 'fortran_order' must be True or False")
    shape = dictionary["shape"]
    if not isinstance(shape, tuple) or not all(type(s) is int for s in shape):
        raise NpyError("NPY header 'shape' must be a tuple of integers")
    if len(shape) > MAX_DIMENSIONS:
        raise NpyError(f"NPY header 'shape' has {len(shape)} dimensions, at most {MAX_DIMENSIONS} are allowed")
    descr = dictionary["descr"]
    if isinstance(descr, list):
        fields = []
        for field in descr:
            if not (isinstance(field, tuple) and len(field) == 2 and all(isinstance(f, str) for f in field)):
                raise NpyError("NPY header 'descr' fields must be (name, type) pairs of strings")
            fields.append(field)
        descr = tuple(fields)
    elif not isinstance(descr, str):
        raise NpyError("NPY header 'descr' must be a string or a list of fields")
    return NpyHeader(descr, fortran_order, shape, start + length)


def value_dtype(descr) -> np.dtype:
    """The numpy dtype of a values array from its descr; only the VALUE_DTYPES, never objects."""
    # metatensor-core wants '<', '>' or '=' even for one-byte types (it refuses numpy's '|u1')
    if isinstance(descr, str) and descr[:1] in ("<", ">", "=") and descr[1:] in VALUE_DTYPES:
        dtype = np.dtype(VALUE_DTYPES[descr[1:]])
        if descr[0] == ">" and dtype.itemsize > 1:
            dtype = dtype.newbyteorder(">")
        return dtype
    if isinstance(descr, str) and descr[:1] == "|" and descr[1:] in VALUE_DTYPES:
        raise NpyError(f"dtype {descr!r}: metatensor-core needs an explicit byte order ('<', '>' or '=')")
    raise NpyError(
        f"unsupported dtype {descr!r} for values (expected one of "
        f"{', '.join('<' + code for code in VALUE_DTYPES)})"
    )


def labels_fields(descr) -> tuple[tuple[str, ...], np.dtype]:
    """Names and (native or big-endian) int32 dtype of a labels array; all fields '<i4' or all '>i4'."""
    if isinstance(descr, str):
        raise NpyError(f"labels must be a structured array of int32 fields, got dtype {descr!r}")
    kinds = {kind for _, kind in descr}
    if kinds - {"<i4", ">i4"} or len(kinds) > 1:
        raise NpyError(
            f"labels fields must all be '<i4' (or all '>i4'), got {sorted(kinds)}"
        )
    dtype = np.dtype(">i4") if kinds == {">i4"} else np.dtype("<i4")
    return tuple(name for name, _ in descr), dtype


_ASCII_DIGITS = frozenset("0123456789")


class _Parser:
    """Recursive descent over the Python-literal subset used by NPY headers."""

    _MAX_DEPTH = 4  # dict > list > tuple > string is the deepest a header needs

    def __init__(self, text: str):
        self.text = text
        self.position = 0

    def document(self):
        value = self._value(0)
        self._skip()
        if self.position != len(self.text):
            raise NpyError(f"unexpected text after the NPY header dictionary at offset {self.position}")
        return value

    def _skip(self):
        # metatensor-core skips these three only: a newline inside the header is refused
        while self.position < len(self.text) and self.text[self.position] in " \t\x0c":
            self.position += 1

    def _peek(self) -> str:
        self._skip()
        if self.position >= len(self.text):
            raise NpyError("NPY header ends unexpectedly")
        return self.text[self.position]

    def _value(self, depth: int):
        if depth > self._MAX_DEPTH:
            raise NpyError("NPY header is nested too deeply")
        char = self._peek()
        if char in "'\"":
            return self._string()
        if char in "([{":
            return self._sequence(char, depth)
        if char in _ASCII_DIGITS:  # not str.isdigit(): that takes '٣' and other Unicode digits
            start = self.position
            while self.position < len(self.text) and self.text[self.position] in _ASCII_DIGITS:
                self.position += 1
            digits = self.text[start:self.position]
            if len(digits) > 20:
                raise NpyError("NPY header has an absurdly large integer")
            return int(digits)
        for word, value in (("True", True), ("False", False)):
            if self.text.startswith(word, self.position):
                self.position += len(word)
                return value
        raise NpyError(f"unexpected {char!r} in NPY header at offset {self.position}")

    def _string(self) -> str:
        quote = self.text[self.position]
        end = self.text.find(quote, self.position + 1)
        if end < 0:
            raise NpyError("unterminated string in NPY header")
        value = self.text[self.position + 1:end]
        if "\\" in value or "\n" in value:
            raise NpyError("escape sequences are not allowed in NPY header strings")
        self.position = end + 1
        return value

    def _sequence(self, opening: str, depth: int):
        closing = {"(": ")", "[": "]", "{": "}"}[opening]
        self.position += 1
        items = []
        while True:
            if self._peek() == closing:
                self.position += 1
                break
            if opening == "{":
                key = self._value(depth + 1)
                if not isinstance(key, str):
                    raise NpyError("NPY header dictionary keys must be strings")
                if self._peek() != ":":
                    raise NpyError(f"expected ':' in NPY header at offset {self.position}")
                self.position += 1
                items.append((key, self._value(depth + 1)))
            else:
                items.append(self._value(depth + 1))
            char = self._peek()
            if char == ",":
                self.position += 1
            elif char != closing:
                raise NpyError(f"expected ',' or {closing!r} in NPY header at offset {self.position}")
        if opening == "(":
            return tuple(items)  # `(3)` reads as a 1-tuple, as metatensor-core reads it
        if opening == "[":
            return items
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            raise NpyError("NPY header dictionary repeats a key")
        return dict(items)
