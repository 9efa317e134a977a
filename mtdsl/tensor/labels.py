"""`Labels`: named integer metadata, the axes of every block and the keys of a TensorMap.

A `Labels` is a list of names (valid, unique ASCII identifiers) and an int32 array
of shape `[n_entries, n_names]` whose rows are unique. It mirrors metatensor-core's
`Labels`: entries are looked up in O(1) through a hash table built on first use,
and the set operations (`union`, `intersection`, `difference`) run vectorized over
rows encoded as single integers.
"""

from __future__ import annotations

import keyword
import re
from typing import Iterator, Sequence

import numpy as np

from ..errors import MetadataError
from ._array import convert, is_torch, to_numpy
from ._display import labels_table
from ._metatensor_api import Serializable

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_INT32_MIN, _INT32_MAX = np.iinfo(np.int32).min, np.iinfo(np.int32).max


class LabelsTypeError(MetadataError, TypeError):
    """Label values or names of the wrong type (a TypeError, as metatensor raises)."""


def check_names(names) -> tuple[str, ...]:
    """Validate label names: ASCII identifiers, unique. Returns them as a tuple.

    `""` alone means no names (as in metatensor: `Labels("", np.empty((0, 0)))`)."""
    if isinstance(names, str):
        names = (names,) if names else ()
    elif not hasattr(names, "__iter__"):
        raise LabelsTypeError(f"Labels names must be strings, got {type(names)} instead")
    names = tuple(names)
    for name in names:
        if not isinstance(name, str):
            raise LabelsTypeError(f"Labels names must be strings, got {type(name)} instead")
        if not _IDENTIFIER.match(name) or keyword.iskeyword(name):
            raise MetadataError(
                f"invalid parameter: {name!r} is not a valid label name (names must be ASCII identifiers)"
            )
    seen = set()
    for name in names:
        if name in seen:
            raise MetadataError(f"label name {name!r} appears twice in {list(names)}")
        seen.add(name)
    return names


def _as_int32(names: tuple[str, ...], values):
    """Check shape and range of label values; returns (original-kind array, numpy int32 view)."""
    torch_values = is_torch(values)
    array = to_numpy(values) if torch_values else np.asarray(values)
    if array.size == 0 and (array.ndim < 1 or array.shape[0] == 0):
        # no entries: any dtype will do (metatensor accepts `np.empty((0, n))`, a float array)
        array = np.zeros((0, len(names)), dtype=np.int32)
    elif array.size == 0:
        array = array.reshape(array.shape[0], len(names))
    if array.ndim != 2 or array.shape[1] != len(names):
        raise MetadataError(
            f"label values must have shape [n_entries, {len(names)}] for names {list(names)}, "
            f"got {list(array.shape)}"
        )
    if array.dtype != np.int32:
        if array.dtype.kind not in "iub":
            raise LabelsTypeError(f"Labels values must be convertible to integers, got {array.dtype}")
        if array.size and array.dtype.itemsize >= 4:
            low, high = array.min(axis=0), array.max(axis=0)
            for column, name in enumerate(names):
                if low[column] < _INT32_MIN or high[column] > _INT32_MAX:
                    bad = low[column] if low[column] < _INT32_MIN else high[column]
                    raise MetadataError(
                        f"label value {int(bad)} in column {name!r} does not fit in int32"
                    )
        array = array.astype(np.int32)
    if torch_values:
        import torch

        original = values if values.dtype == torch.int32 else torch.from_numpy(array)
        if original.device != values.device:
            original = original.to(values.device)
        return original, np.ascontiguousarray(array)
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        # read-only, as metatensor's: writing to the values would break the lookup tables
        array = array.view()
        array.flags.writeable = False
    return array, array


def _column_ranges(arrays) -> tuple[np.ndarray, np.ndarray]:
    """Per-column minimum and span (max - min + 1) over several non-empty int32 arrays, as int64."""
    n_columns = arrays[0].shape[1]
    low = np.empty(n_columns, dtype=np.int64)
    high = np.empty(n_columns, dtype=np.int64)
    for column in range(n_columns):  # column by column: much faster than min(axis=0) on narrow rows
        low[column] = min(int(a[:, column].min()) for a in arrays)
        high[column] = max(int(a[:, column].max()) for a in arrays)
    return low, high - low + 1


def _fits_int64(spans: np.ndarray) -> bool:
    return float(np.sum(np.log2(spans.astype(np.float64)))) < 62


def _encode(array: np.ndarray, low: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Mixed-radix int64 key of each row (values must lie in [low, low + spans)); keys sort like rows."""
    keys = array[:, 0].astype(np.int64)
    keys -= low[0]
    for column in range(1, array.shape[1]):
        keys *= spans[column]
        keys += array[:, column]
        keys -= low[column]
    return keys


def row_keys(*arrays: np.ndarray) -> list[np.ndarray]:
    """Encode the rows of several int32 arrays with the same columns as comparable 1-D keys.

    Rows are equal exactly when their keys are equal, and keys sort like the rows
    (lexicographically). Keys are int64 (mixed radix over the joint value range of each
    column) when that fits, else fixed-size byte strings.
    """
    n_columns = arrays[0].shape[1]
    if n_columns == 0:
        return [np.zeros(len(a), dtype=np.int64) for a in arrays]
    if n_columns == 1:
        return [a[:, 0].astype(np.int64) for a in arrays]
    nonempty = [a for a in arrays if len(a)]
    if not nonempty:
        return [np.zeros(0, dtype=np.int64) for _ in arrays]
    low, spans = _column_ranges(nonempty)
    if _fits_int64(spans):
        return [_encode(a, low, spans) for a in arrays]
    # big-endian bytes of the offset values sort like the rows themselves
    return [
        np.ascontiguousarray((a.astype(np.int64) - low).astype(">u8")).view(f"V{8 * n_columns}").ravel()
        for a in arrays
    ]


def _has_duplicates(keys: np.ndarray) -> bool:
    if len(keys) < 2:
        return False
    if keys.dtype == np.int64 and bool(np.all(keys[1:] > keys[:-1])):
        return False  # already sorted (the usual case): no need to sort
    ordered = np.sort(keys)
    return bool(np.any(ordered[1:] == ordered[:-1]))


class _SortedIndex:
    """The rows of a Labels as sorted int64 keys, for vectorized lookups (built once, on demand)."""

    __slots__ = ("low", "spans", "order", "keys", "unique", "_dense")

    def __init__(self, array: np.ndarray, unique: bool):
        self.low, self.spans = _column_ranges([array])
        self.unique = unique
        self._dense = None
        keys = _encode(array, self.low, self.spans)
        if bool(np.all(keys[1:] > keys[:-1])):
            self.order = np.arange(len(keys), dtype=np.int64)
            self.keys = keys
        else:
            # stable: with repeated rows (a view), the first occurrence is found
            self.order = np.argsort(keys, kind=None if unique else "stable")
            self.keys = keys[self.order]

    def dense_table(self) -> np.ndarray | None:
        """Position of each key in the whole box of key values (-1 for absent rows), when that box
        is small (at most 64 entries per row, or 65,536): built once, on demand."""
        if self._dense is None:
            size = float(np.prod(self.spans.astype(np.float64)))
            if size > min(64 * len(self.keys) + 65536, 1 << 24):
                self._dense = False
            else:
                table = np.full(int(size), -1, dtype=np.int64)
                table[self.keys[::-1]] = self.order[::-1]  # repeated rows: the first occurrence wins
                self._dense = table
        return self._dense if self._dense is not False else None

    def contains_box(self, other: "_SortedIndex") -> bool:
        """True when every row `other` indexes lies within this index's value ranges."""
        return bool(np.all(other.low >= self.low) and np.all(other.low + other.spans <= self.low + self.spans))

    def lookup(self, rows: np.ndarray, order: np.ndarray | None = None, all_inside: bool = False,
               unique_rows: bool = False) -> np.ndarray:
        """Position of each row of `rows` in the indexed labels, or -1.

        `order`, when given, sorts `rows` lexicographically: the search then runs over sorted
        keys, several times faster (cache friendly) than over random ones. `unique_rows` says
        that `rows` has no repeated row.
        """
        keys = _encode(rows, self.low, self.spans)  # garbage (never matched) for rows outside the ranges
        inside = None
        if not all_inside:
            inside = np.ones(len(rows), dtype=bool)
            for column in range(rows.shape[1]):
                values = rows[:, column]
                inside &= values >= self.low[column]
                inside &= values < self.low[column] + self.spans[column]
            if inside.all():
                inside = None
        if order is None and len(keys) > 4096:
            table = self.dense_table()
            if table is not None:  # a direct table: no sort of the queried keys
                if inside is None:
                    return table[keys]
                return np.where(inside, table[np.where(inside, keys, 0)], -1)
            order = np.argsort(keys)
        if order is None:
            return self._search(keys, inside, merge=False)
        return self.lookup_sorted(keys[order], order, inside[order] if inside is not None else None, unique_rows)

    def lookup_sorted(self, keys: np.ndarray, order: np.ndarray, inside: np.ndarray | None = None,
                      unique_rows: bool = False) -> np.ndarray:
        """lookup() of the rows whose keys (in this index's encoding) are `keys`, sorted by `order`."""
        positions = self._search(keys, inside, merge=unique_rows and self.unique)
        result = np.empty_like(positions)
        result[order] = positions
        return result

    def _search(self, keys: np.ndarray, inside: np.ndarray | None, merge: bool) -> np.ndarray:
        if merge:
            return self._merge(keys, inside)
        where = np.searchsorted(self.keys, keys)
        np.minimum(where, len(self.keys) - 1, out=where)
        found = self.keys[where] == keys
        if inside is not None:
            found &= inside
        return np.where(found, self.order[where], -1)

    def _merge(self, keys: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
        """lookup() for sorted, unique keys: a stable sort of two sorted runs is a linear merge."""
        candidates = np.flatnonzero(inside) if inside is not None else None
        both = np.concatenate((self.keys, keys if candidates is None else keys[candidates]))
        merged = np.argsort(both, kind="stable")
        ordered = both[merged]
        # each key appears at most once per side, ours first: equal neighbours are (ours, theirs) pairs
        same = np.flatnonzero(ordered[1:] == ordered[:-1])
        hits = merged[same + 1] - len(self.keys)
        if candidates is not None:
            hits = candidates[hits]
        positions = np.full(len(keys), -1, dtype=np.int64)
        positions[hits] = self.order[merged[same]]
        return positions


def _first_duplicate(values: np.ndarray) -> tuple:
    seen = set()
    for row in map(tuple, values.tolist()):
        if row in seen:
            return row
        seen.add(row)
    return ()


class LabelsEntry:
    """One row of a `Labels`: `entry["name"]`, `entry[0]`, `entry.names`, `entry.values`."""

    __slots__ = ("names", "values")

    def __init__(self, names: tuple[str, ...], values):
        self.names = list(names)
        self.values = values

    def __getitem__(self, item):
        if isinstance(item, str):
            try:
                item = self.names.index(item)
            except ValueError:
                raise KeyError(f"no label named {item!r} in {self.names}") from None
        elif not isinstance(item, (int, np.integer)):
            raise TypeError(f"can only index LabelsEntry with str or int, got {type(item)}")
        return int(self.values[item])

    def __len__(self):
        return len(self.names)

    def __iter__(self):
        return iter(int(v) for v in self.values)

    def __eq__(self, other):
        if isinstance(other, LabelsEntry):
            return self.names == other.names and tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self):
        return hash((tuple(self.names), tuple(self)))

    def __repr__(self):
        inner = ", ".join(f"{n}={int(v)}" for n, v in zip(self.names, self.values))
        return f"LabelsEntry({inner})"

    def print(self) -> str:
        return repr(self)


class Labels(Serializable):
    """Named int32 metadata with unique rows.

    >>> keys = Labels(["o3_lambda"], np.array([[0], [1]], dtype=np.int32))
    >>> keys.position([1])
    1
    """

    __slots__ = ("_names", "_values", "_array", "_positions", "_index", "_is_view")

    def __init__(self, names: str | Sequence[str], values, assume_unique: bool = False):
        self._names = check_names(names)
        self._values, self._array = _as_int32(self._names, values)
        self._positions = None
        self._index = None
        self._is_view = False
        if not assume_unique and _has_duplicates(row_keys(self._array)[0]):
            raise MetadataError(
                "invalid parameter: can not have the same label entry multiple times: "
                f"{list(_first_duplicate(self._array))} is already present (labels {list(self._names)})"
            )

    @classmethod
    def _trusted(cls, names: tuple[str, ...], array: np.ndarray, like=None) -> "Labels":
        """Build from already-validated names and a unique int32 array (internal fast path)."""
        labels = cls.__new__(cls)
        labels._names = names
        labels._array = np.ascontiguousarray(array, dtype=np.int32)
        if like is not None and is_torch(like):
            import torch

            shared = labels._array if labels._array.flags.writeable else labels._array.copy()
            labels._values = torch.from_numpy(shared).to(like.device)
        else:
            labels._values = labels._array
        labels._positions = None
        labels._index = None
        labels._is_view = False
        return labels

    # -- constructors -------------------------------------------------------------
    @classmethod
    def single(cls) -> "Labels":
        """The labels of a block without keys: one entry `_ = 0`."""
        return cls._trusted(("_",), np.zeros((1, 1), dtype=np.int32))

    @classmethod
    def range(cls, name: str, end: int) -> "Labels":
        """`name` taking the values `0 .. end - 1`."""
        return cls._trusted(check_names(name), np.arange(end, dtype=np.int32).reshape(-1, 1))

    @classmethod
    def empty(cls, names: str | Sequence[str]) -> "Labels":
        names = check_names(names)
        return cls._trusted(names, np.zeros((0, len(names)), dtype=np.int32))

    # -- basic properties -----------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def values(self):
        """The int32 array, numpy or torch as given."""
        return self._values

    @property
    def array(self) -> np.ndarray:
        """The values as a numpy int32 array (a view; do not modify)."""
        return self._array

    @property
    def device(self) -> str:
        return str(self._values.device) if is_torch(self._values) else "cpu"

    @property
    def is_view(self) -> bool:
        return self._is_view

    def __len__(self) -> int:
        return self._array.shape[0]

    def __iter__(self) -> Iterator[LabelsEntry]:
        for i in range(len(self)):
            yield LabelsEntry(self._names, self._values[i])

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.column(item)
        if isinstance(item, (int, np.integer)):
            if not -len(self) <= item < len(self):
                raise IndexError(f"index {item} is out of bounds for axis 0 with size {len(self)}")
            return LabelsEntry(self._names, self._values[item])
        raise TypeError(f"Labels can only be indexed by a single string or integer, got {type(item)}")

    def entry(self, index: int) -> LabelsEntry:
        return self[index]

    def column(self, name: str):
        """The values of one dimension, as a 1-D array."""
        return self._values[:, self._column_index(name)]

    def _column_index(self, name: str) -> int:
        try:
            return self._names.index(name)
        except ValueError:
            raise MetadataError(
                f"{name!r} not found in the dimensions of these Labels ({list(self._names)})"
            ) from None

    def view(self, names: str | Sequence[str]) -> "Labels":
        """The given columns (rows may repeat: the result is a view, without position())."""
        names = check_names(names)
        columns = [self._column_index(n) for n in names]
        labels = Labels._trusted(names, self._array[:, columns], like=self._values)
        labels._is_view = True
        return labels

    # -- lookup ---------------------------------------------------------------------
    def _position_table(self) -> dict:
        if self._positions is None:
            if self._is_view:
                raise MetadataError("position() is not available on a labels view with repeated rows")
            self._positions = dict(zip(map(tuple, self._array.tolist()), range(len(self))))
        return self._positions

    def position(self, entry) -> int | None:
        """Index of `entry` (a sequence of ints or a LabelsEntry), or None if absent."""
        if isinstance(entry, LabelsEntry):
            if entry.names != list(self._names):
                return None
            entry = entry.values
        if isinstance(entry, (tuple, list)):
            row = tuple(entry)
        else:
            row = to_numpy(entry).reshape(-1).tolist()
        if len(row) != len(self._names):
            raise MetadataError(
                f"entry has {len(row)} values but labels have {len(self._names)} names {list(self._names)}"
            )
        try:
            return self._position_table().get(tuple(row))
        except TypeError:  # unhashable values cannot be entries
            return None

    def __contains__(self, entry) -> bool:
        return self.position(entry) is not None

    def _sorted_index(self) -> _SortedIndex | None:
        """Sorted int64 keys of the rows, cached; None when the rows do not fit in 62 bits."""
        if self._index is None and len(self) and self._names:
            _, spans = _column_ranges([self._array])
            self._index = _SortedIndex(self._array, unique=not self._is_view) if _fits_int64(spans) else False
        return self._index or None

    def _lookup(self, rows: np.ndarray) -> np.ndarray:
        """Position in `self` of each row of `rows` (an int32 array), or -1."""
        if len(rows) == 0 or len(self) == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        index = self._sorted_index()
        if index is not None:
            return index.lookup(rows)
        mine, theirs = row_keys(self._array, rows)
        order = np.argsort(mine, kind="stable")
        ordered = mine[order]
        where = np.minimum(np.searchsorted(ordered, theirs), len(ordered) - 1)
        return np.where(ordered[where] == theirs, order[where], -1)

    def _lookup_labels(self, other: "Labels") -> np.ndarray:
        """Position in `self` of each entry of `other` (same names), or -1."""
        index = self._sorted_index() if len(other) and len(self) else None
        theirs = other._sorted_index() if index is not None and len(other) > 4096 else None
        if theirs is None:
            return self._lookup(other._array)
        unique = not other._is_view
        if np.array_equal(theirs.low, index.low) and np.array_equal(theirs.spans, index.spans):
            # the same encoding: their sorted keys are ready to search
            return index.lookup_sorted(theirs.keys, theirs.order, unique_rows=unique)
        # other's rows in its sorted (lexicographic) order stay sorted in self's encoding
        return index.lookup(other._array, order=theirs.order, all_inside=index.contains_box(theirs),
                            unique_rows=unique)

    def positions(self, rows: np.ndarray) -> np.ndarray:
        """Vectorized position(): index of each row of `rows` ([n, n_names]) or -1."""
        rows = np.ascontiguousarray(rows, dtype=np.int32).reshape(-1, len(self._names))
        return self._lookup(rows)

    def select(self, selection) -> np.ndarray:
        """Indices of the entries matching `selection` (Labels or LabelsEntry) on its names.

        Like metatensor-core: in the selection's order when it names every dimension
        in order, in this labels' order otherwise.
        """
        if isinstance(selection, LabelsEntry):
            selection = Labels(selection.names, to_numpy(selection.values).reshape(1, -1))
        if not isinstance(selection, Labels):
            raise TypeError(f"select() takes Labels or LabelsEntry, not {type(selection).__name__}")
        if not selection._names:
            return np.arange(len(self), dtype=np.int64)  # a selection on no dimensions matches everything
        if selection._names == self._names:
            found = self.positions(selection._array)
            return found[found >= 0].astype(np.int64)
        for name in selection._names:
            if name not in self._names:
                raise MetadataError(
                    f"invalid parameter: {name!r} in selection is not part of these Labels ({list(self._names)})"
                )
        columns = [self._column_index(n) for n in selection._names]
        mine, theirs = row_keys(self._array[:, columns], selection._array)
        return np.nonzero(np.isin(mine, theirs))[0].astype(np.int64)

    # -- set operations ---------------------------------------------------------------
    def _check_same_names(self, other: "Labels", operation: str):
        if not isinstance(other, Labels):
            raise TypeError(f"{operation} takes Labels, not {type(other).__name__}")
        if self._names != other._names:
            raise MetadataError(
                f"cannot take the {operation} of labels with different names: "
                f"{list(self._names)} and {list(other._names)}"
            )

    def union_and_mapping(self, other: "Labels") -> tuple["Labels", np.ndarray, np.ndarray]:
        """Entries of `self` then the new entries of `other`, with each input's positions in it."""
        self._check_same_names(other, "union")
        second = self._lookup_labels(other)
        new = second < 0
        second[new] = len(self) + np.arange(int(new.sum()))
        values = np.concatenate([self._array, other._array[new]])
        union = Labels._trusted(self._names, values, like=self._values)
        return union, np.arange(len(self), dtype=np.int64), second

    def union(self, other: "Labels") -> "Labels":
        return self.union_and_mapping(other)[0]

    def intersection_and_mapping(self, other: "Labels") -> tuple["Labels", np.ndarray, np.ndarray]:
        """Common entries; mappings give positions in it, or -1.

        Like metatensor-core, the entries follow the order of the smaller input
        (of `self` when both have the same size).
        """
        self._check_same_names(other, "intersection")
        if len(self) > len(other):
            result, second, first = other.intersection_and_mapping(self)
            return result, first, second
        in_other = other._lookup_labels(self)
        common = np.flatnonzero(in_other >= 0)
        first = np.full(len(self), -1, dtype=np.int64)
        first[common] = np.arange(len(common))
        second = np.full(len(other), -1, dtype=np.int64)
        second[in_other[common]] = first[common]
        values = np.take(self._array, common, axis=0)
        return Labels._trusted(self._names, values, like=self._values), first, second

    def intersection(self, other: "Labels") -> "Labels":
        return self.intersection_and_mapping(other)[0]

    def difference_and_mapping(self, other: "Labels") -> tuple["Labels", np.ndarray]:
        """Entries of `self` absent from `other`; the mapping gives positions in it, or -1."""
        self._check_same_names(other, "difference")
        kept = other._lookup_labels(self) < 0
        mapping = np.full(len(self), -1, dtype=np.int64)
        mapping[kept] = np.arange(int(kept.sum()))
        return Labels._trusted(self._names, self._array[kept], like=self._values), mapping

    def difference(self, other: "Labels") -> "Labels":
        return self.difference_and_mapping(other)[0]

    # -- new labels with changed dimensions ----------------------------------------------
    def insert(self, index: int, name: str, values) -> "Labels":
        """A new dimension `name` at column `index`."""
        names = list(self._names)
        names.insert(index, name)
        column = np.asarray(to_numpy(values)).reshape(-1, 1)
        if column.shape[0] != len(self):
            raise MetadataError(
                f"the new `values` contains {column.shape[0]} entries, but the Labels contains {len(self)} "
                f"(new dimension {name!r})"
            )
        array = np.insert(self._array, [index], column.astype(np.int64), axis=1)
        return self._rebuilt(names, array)

    def append(self, name: str, values) -> "Labels":
        return self.insert(len(self._names), name, values)

    def permute(self, dimensions_indexes: Sequence[int]) -> "Labels":
        order = [int(i) + len(self._names) if int(i) < 0 else int(i) for i in dimensions_indexes]  # -1: last
        if sorted(order) != list(range(len(self._names))):
            if len(order) != len(self._names):
                raise MetadataError(
                    f"the length of `dimensions_indexes` ({len(order)}) does not match the number of "
                    f"dimensions in the Labels ({len(self._names)})"
                )
            raise MetadataError(f"permute() needs a permutation of 0..{len(self._names) - 1}, got {order}")
        return self._rebuilt([self._names[i] for i in order], self._array[:, order], unique=True)

    def remove(self, name: str) -> "Labels":
        """Without the dimension `name`; an error if the remaining rows are not unique."""
        column = self._column_index(name)
        keep = [i for i in range(len(self._names)) if i != column]
        return self._rebuilt([self._names[i] for i in keep], self._array[:, keep])

    def rename(self, old: str, new: str) -> "Labels":
        column = self._column_index(old)
        names = list(self._names)
        names[column] = new
        return self._rebuilt(names, self._array, unique=True)

    def _rebuilt(self, names, array, unique=False) -> "Labels":
        if is_torch(self._values):
            import torch

            array = torch.from_numpy(np.array(array, dtype=np.int32)).to(self._values.device)
        return Labels(names, array, assume_unique=unique)

    def to(self, device=None, arrays: str | None = None) -> "Labels":
        """The same labels on another device / array library ("numpy" or "torch")."""
        return Labels._from_values(self._names, convert(self._values, device=device, arrays=arrays), self._array)

    @classmethod
    def _from_values(cls, names, values, array) -> "Labels":
        labels = cls.__new__(cls)
        labels._names, labels._values, labels._array = names, values, array
        labels._positions, labels._index, labels._is_view = None, None, False
        return labels

    # -- comparison and display --------------------------------------------------------------
    def __eq__(self, other) -> bool:
        if not isinstance(other, Labels):
            return NotImplemented
        return self._names == other._names and np.array_equal(self._array, other._array)

    def __ne__(self, other) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def print(self, max_entries: int = 6, indent: int = 0) -> str:
        """The entries as a table (metatensor's layout); at most `max_entries` (-1: all)."""
        rows = self._array if max_entries < 0 or len(self) <= max_entries else np.concatenate(
            [self._array[:max(max_entries, 2)], self._array[len(self) - max(max_entries, 2):]])
        return labels_table(self._names, rows.tolist(), len(self), max_entries, indent)

    def __repr__(self) -> str:
        return "Labels\n   " + self.print(-1, 3)

    def __str__(self) -> str:
        return "Labels\n   " + self.print(4, 3)


def describe_key(keys: Labels, index: int) -> str:
    """`(center_type=8, o3_lambda=1)`: the key of block `index`, for error messages."""
    values = keys.array[index]
    return "(" + ", ".join(f"{n}={int(v)}" for n, v in zip(keys.names, values)) + ")"
