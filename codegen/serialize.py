"""A data-only encoding of renderings for the kernel cache: JSON, never pickle.

A cache directory must not be code that runs when read. `encode` turns a value
built of the renderer's dataclasses (IR nodes, plans, rendered kernels, gradient
terms), tuples, lists, dicts, sets, numbers, strings (names with a role of `mtdsl/ir/roles.py` as
their class and fields) and numpy arrays into JSON
text (one line) followed by a newline and the raw bytes of its arrays and of its long
strings (the JSON says where each lies); `decode` rebuilds it, constructing only dataclasses of `ALLOWED_MODULES`
(by setting their fields, without calling any of their code) and numpy arrays of
plain dtypes. Anything else is refused with `EncodingError` (encode: the value is
then not cached) or `DecodingError` (decode: the entry is treated as damaged).

Objects referenced twice are written once (`{"$r": n}` refers back), so shared
sub-trees stay shared and the text stays small. Long strings (the C++ source, the loop nests of
`--emit nest`: most of a rendering) are raw UTF-8 in the binary section: parsing them as JSON
strings, every newline and quote an escape, cost a cache hit about a millisecond.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import math
import re

import numpy as np

from mtdsl.ir.roles import ROLES, RoleName

#: the modules whose dataclasses a cache entry may hold
ALLOWED_MODULES = (
    "mtdsl.ir.nodes",
    "mtdsl.codegen.schedule.plan",
    "mtdsl.codegen.rendered",
    "mtdsl.codegen.schedule.abi",  # the kernel arguments of a RenderedKernel
    "mtdsl.ir.passes.terms",  # ScatterTerm
    "mtdsl.codegen.schedule.fuse",
    "mtdsl.codegen.llvm",
    "mtdsl.codegen.cpp",
)


#: strings at least this long are stored as raw UTF-8 in the binary section (`{"$u": [offset, size]}`)
LONG_STRING = 256

_NEWLINE = re.compile(b"\n")

#: what JSON gives that decodes to itself: the decoder keeps these without a call (a cache hit
#: decodes thousands of fields, most of them names and numbers)
_PLAIN = frozenset({str, int, float, bool, type(None)})


class EncodingError(TypeError):
    """A value the cache cannot store as data."""


class DecodingError(ValueError):
    """Text that is not a valid encoding (a damaged or foreign entry)."""


def encode(value) -> bytes:
    """The JSON text of `value` (one line), then a newline and the bytes of its arrays."""
    encoder = _Encoder()
    text = json.dumps(encoder.encode(value), separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n" + b"".join(encoder.blobs)


def decode(data: bytes):
    # a view, never a copy: the binary section is megabytes (copying it twice cost a cache hit ~2.5 ms)
    view = memoryview(data).cast("B")
    newline = _NEWLINE.search(view)
    if newline is None:
        raise DecodingError("no binary section")
    try:
        tree = json.loads(str(view[:newline.start()], "utf-8"))
    except (ValueError, RecursionError) as error:
        raise DecodingError(f"not JSON: {error}") from None
    try:
        return _Decoder(view[newline.end():]).decode(tree)
    except DecodingError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RecursionError) as error:
        raise DecodingError(f"{type(error).__name__}: {error}") from None


def _class_name(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


class _Encoder:
    def __init__(self):
        self.seen: dict[int, int] = {}
        self.alive: list = []  # keeps the objects of `seen` alive, so their ids stay theirs
        self.blobs: list[bytes] = []  # the bytes of the arrays, in order
        self.size = 0

    def encode(self, value):
        if isinstance(value, RoleName):  # a name with a role (mtdsl/ir/roles.py): its class and fields
            return {"$role": type(value).__name__, "v": [self.encode(v) for v in value.fields]}
        if isinstance(value, str) and len(value) >= LONG_STRING:
            return self._text(value)
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, enum.Enum):
            return {"$e": _class_name(type(value)), "v": self.encode(value.value)}
        if isinstance(value, int) and type(value) is int:
            return value
        if isinstance(value, float) and type(value) is float:
            return value if math.isfinite(value) else {"$f": repr(value)}
        if isinstance(value, np.ndarray):
            return self._array(value)
        if isinstance(value, np.generic):
            return {"$n": self._array(np.asarray(value))}
        if isinstance(value, np.dtype):
            return {"$dt": self._dtype(value)}
        if isinstance(value, complex):
            return {"$cx": [self.encode(value.real), self.encode(value.imag)]}
        if isinstance(value, list):
            return [self.encode(v) for v in value]
        if type(value) is tuple:
            return {"$t": [self.encode(v) for v in value]}
        if isinstance(value, dict) and type(value) is dict:
            return {"$m": [[self.encode(k), self.encode(v)] for k, v in value.items()]}
        if isinstance(value, (set, frozenset)) and type(value) in (set, frozenset):
            tag = "$fs" if isinstance(value, frozenset) else "$s"
            return {tag: [self.encode(v) for v in value]}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._dataclass(value)
        raise EncodingError(f"cannot store a {type(value).__module__}.{type(value).__qualname__} in the cache")

    def _dataclass(self, value):
        cls = type(value)
        if cls.__module__ not in ALLOWED_MODULES:
            raise EncodingError(f"cannot store a {_class_name(cls)} in the cache")
        if id(value) in self.seen:
            return {"$r": self.seen[id(value)]}
        number = len(self.alive)
        self.seen[id(value)] = number
        self.alive.append(value)
        fields = {f.name: self.encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"$c": _class_name(cls), "id": number, "f": fields}

    def _text(self, value: str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: JSON writes it as an escape
            return value
        self.blobs.append(data)
        self.size += len(data)
        return {"$u": [self.size - len(data), len(data)]}

    def _array(self, array: np.ndarray):
        if array.dtype.hasobject or array.dtype.fields is not None:
            raise EncodingError(f"cannot store an array of dtype {array.dtype} in the cache")
        data = np.ascontiguousarray(array).tobytes()
        self.blobs.append(data)
        self.size += len(data)
        return {"$a": self._dtype(array.dtype), "s": list(array.shape), "o": self.size - len(data)}

    @staticmethod
    def _dtype(dtype: np.dtype) -> str:
        if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biufcUSMm":
            raise EncodingError(f"cannot store the dtype {dtype} in the cache")
        return dtype.str


class _Decoder:
    def __init__(self, blob: memoryview):
        self.objects: dict[int, object] = {}
        self.blob = blob
        self.classes: dict[str, tuple] = {}  # name -> (class, field names, their set)

    def decode(self, tree):
        if tree is None or isinstance(tree, (bool, str, int, float)):
            return tree
        if isinstance(tree, list):
            return [v if type(v) in _PLAIN else self.decode(v) for v in tree]
        if not isinstance(tree, dict) or len(tree) == 0:
            raise DecodingError(f"unexpected {type(tree).__name__}")
        if "$t" in tree:
            return tuple([v if type(v) in _PLAIN else self.decode(v) for v in tree["$t"]])
        if "$m" in tree:
            return {self._hashable(self.decode(k)): self.decode(v) for k, v in tree["$m"]}
        if "$r" in tree:
            return self.objects[tree["$r"]]
        if "$c" in tree:
            return self._dataclass(tree)
        if "$u" in tree:
            return self._text(tree["$u"])
        if "$a" in tree:
            return self._array(tree)
        if "$n" in tree:
            return self._array(tree["$n"])[()]
        if "$f" in tree:
            value = float(tree["$f"])
            if math.isfinite(value):
                raise DecodingError("a finite float written as a special value")
            return value
        if "$fs" in tree:
            return frozenset(self._hashable(self.decode(v)) for v in tree["$fs"])
        if "$s" in tree:
            return {self._hashable(self.decode(v)) for v in tree["$s"]}
        if "$dt" in tree:
            return _dtype(tree["$dt"])
        if "$cx" in tree:
            real, imag = (self.decode(v) for v in tree["$cx"])
            return complex(real, imag)
        if "$role" in tree:
            cls = ROLES.get(tree["$role"]) if isinstance(tree["$role"], str) else None
            fields = tree.get("v")
            if cls is None or not isinstance(fields, list) or not all(
                    isinstance(v, (str, int)) and not isinstance(v, bool) for v in fields):
                raise DecodingError(f"a bad role {tree['$role']!r}")
            try:
                return cls(*fields)
            except TypeError as error:
                raise DecodingError(str(error)) from None
        if "$e" in tree:
            cls = _allowed_class(tree["$e"])
            if not issubclass(cls, enum.Enum):
                raise DecodingError(f"{tree['$e']} is not an enum")
            return cls(self.decode(tree["v"]))
        raise DecodingError(f"unknown tag {sorted(tree)[0]!r}")

    @staticmethod
    def _hashable(value):
        try:
            hash(value)
        except TypeError:
            raise DecodingError("an unhashable dict key or set item") from None
        return value

    def _dataclass(self, tree):
        name = tree["$c"]
        known = self.classes.get(name) if isinstance(name, str) else None
        if known is None:
            cls = _allowed_class(name)
            if not dataclasses.is_dataclass(cls):
                raise DecodingError(f"{name} is not a dataclass")
            names = tuple(f.name for f in dataclasses.fields(cls))
            known = self.classes[name] = (cls, names, frozenset(names))
        cls, names, expected = known
        number = tree["id"]
        if not isinstance(number, int) or number in self.objects:
            raise DecodingError("a bad object number")
        fields = tree["f"]
        if not isinstance(fields, dict) or len(fields) != len(names) or not expected.issuperset(fields):
            raise DecodingError(f"{name}: fields {sorted(fields)} are not {sorted(names)}")
        value = object.__new__(cls)  # no __init__, no __post_init__: the fields as stored
        self.objects[number] = value
        for name in names:
            field = fields[name]
            object.__setattr__(value, name, field if type(field) in _PLAIN else self.decode(field))
        return value

    def _text(self, where):
        start, size = where
        if not (type(start) is int and type(size) is int and 0 <= start and 0 <= size
                and start + size <= len(self.blob)):
            raise DecodingError("a string beyond the binary section")
        return str(self.blob[start:start + size], "utf-8")

    def _array(self, tree):
        dtype = _dtype(tree["$a"])
        shape = tuple(int(n) for n in tree["s"])
        if any(n < 0 for n in shape):
            raise DecodingError("a negative array dimension")
        start = tree["o"]
        size = math.prod(shape) * dtype.itemsize
        if not isinstance(start, int) or start < 0 or start + size > len(self.blob):
            raise DecodingError("an array beyond the binary section")
        return np.frombuffer(self.blob[start:start + size], dtype=dtype).reshape(shape).copy()


def _dtype(text) -> np.dtype:
    if not isinstance(text, str) or len(text) > 16:
        raise DecodingError("a bad dtype")
    try:
        dtype = np.dtype(text)
    except TypeError:
        raise DecodingError(f"a bad dtype {text!r}") from None
    if dtype.hasobject or dtype.fields is not None:
        raise DecodingError(f"the dtype {text!r} is not plain data")
    return dtype


def _allowed_class(name):
    if not isinstance(name, str) or ":" not in name:
        raise DecodingError(f"a bad class name {name!r}")
    module_name, qualname = name.split(":", 1)
    if module_name not in ALLOWED_MODULES:
        raise DecodingError(f"{name} is not a class a cache entry may hold")
    value = importlib.import_module(module_name)
    for part in qualname.split("."):
        if part.startswith("_") and part.startswith("__"):
            raise DecodingError(f"a bad class name {name!r}")
        value = getattr(value, part, None)
    if not isinstance(value, type) or value.__module__ != module_name:
        raise DecodingError(f"{name} is not a class of {module_name}")
    return value
