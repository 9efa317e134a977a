"""Reading atomic structures from files, through ASE, as ``System`` objects.

Supported and tested: extended XYZ, VASP POSCAR/CONTCAR, OUTCAR and
vasprun.xml, LAMMPS data files and LAMMPS text dumps. Any other format ASE
reads works too (``format=`` takes ASE's format names).

LAMMPS files do not name their elements, so ``type_map`` (LAMMPS type ->
element) is required for them, and ``atom_style`` for data files; a dump with
an ``element`` column needs no type map.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import MtdslError
from ..systems import MAX_ATOMIC_NUMBER, System

#: shorter names accepted for ``format``, mapped to ASE's format names
FORMAT_ALIASES = {
    "xyz": "extxyz",
    "poscar": "vasp",
    "contcar": "vasp",
    "outcar": "vasp-out",
    "vasprun": "vasp-xml",
    "lammps": "lammps-data",
    "lammps-dump": "lammps-dump-text",
}

_LAMMPS_DATA = "lammps-data"
_LAMMPS_DUMP = "lammps-dump-text"
_MAX_REASON = 200


class StructureError(MtdslError):
    """A structure file that cannot be read: the message is one line that
    names the file and the problem."""


def read_structures(path, format=None, index=":", *, dtype=np.float64, **options) -> list[System]:
    """Read the frames of a structure file as numpy ``System`` objects.

    :param path: the file
    :param format: an ASE format name or an alias of ``FORMAT_ALIASES``;
        guessed from the file name and contents when ``None``
    :param index: which frames: ``":"`` (all, the default), an integer, a slice
        or a string such as ``"-1"`` or ``"2:10:2"``, as in ``ase.io.read``
    :param dtype: float dtype of positions and cell
    :param options: for LAMMPS files, ``type_map`` (``{1: "O", 2: "H"}``, or a
        list of elements for types 1, 2, ...) and ``units`` (``"metal"`` by
        default); for LAMMPS data files, ``atom_style`` (``"atomic"``,
        ``"charge"``, ``"full"``...). Other options are passed to ``ase.io.read``.
    :return: one ``System`` per frame, each with ``source = "PATH:FRAME"``
    :raises StructureError: missing file, unknown format, unparseable
        content, unknown element, LAMMPS file without its type map
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise StructureError(f"{name}: no such file")
    if os.path.isdir(name):
        raise StructureError(f"{name}: is a directory, not a structure file")
    format = _resolve_format(name, format)
    selection = _parse_index(name, index)

    if format in (_LAMMPS_DATA, _LAMMPS_DUMP):
        frames = _read_lammps(name, format, selection, options)
    else:
        frames = _read_ase(name, format, selection, options)
    if not frames:
        raise StructureError(f"{name}: no structure found (format {format}, index {index!r})")

    systems = []
    for frame, atoms in frames:
        source = f"{name}:{frame}"
        _check_elements(source, atoms.numbers)
        try:
            systems.append(System.from_ase(atoms, dtype=dtype, source=source))
        except (TypeError, ValueError) as error:
            raise StructureError(f"{source}: {_one_line(error)}") from None
    return systems


# -- formats -------------------------------------------------------------------


def _resolve_format(path: str, format: str | None) -> str:
    from ase.io.formats import UnknownFileTypeError, filetype, ioformats

    if format is None:
        guessed = _guess_format(os.path.basename(path).lower())
        if guessed is not None:
            return guessed
        try:
            return filetype(path, guess=False)
        except (UnknownFileTypeError, OSError, ValueError):
            raise StructureError(
                f"{path}: cannot tell the file format from its name or contents; "
                "pass format=... (e.g. 'extxyz', 'vasp', 'lammps-data')"
            ) from None
    resolved = FORMAT_ALIASES.get(format.lower(), format)
    if resolved not in ioformats:
        raise StructureError(f"{path}: unknown format {format!r}")
    if not ioformats[resolved].can_read:
        raise StructureError(f"{path}: ASE cannot read the format {format!r}")
    return resolved


def _guess_format(name: str) -> str | None:
    if name.startswith(("poscar", "contcar")) or name.endswith((".poscar", ".vasp")):
        return "vasp"
    if "outcar" in name:
        return "vasp-out"
    if "vasprun" in name and name.endswith(".xml"):
        return "vasp-xml"
    if name.endswith((".xyz", ".extxyz")):
        return "extxyz"
    if name.endswith((".data", ".lmp", ".lammps-data")) or name.startswith("data."):
        return _LAMMPS_DATA
    if name.endswith((".dump", ".lammpstrj")) or ".dump." in name:
        return _LAMMPS_DUMP
    return None


# -- frame selection -------------------------------------------------------------


def _parse_index(path: str, index) -> int | slice:
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
        return int(index)
    if isinstance(index, slice):
        return index
    if isinstance(index, str):
        text = index.strip()
        if re.fullmatch(r"-?\d+", text):
            return int(text)
        parts = text.split(":")
        if 2 <= len(parts) <= 3 and all(re.fullmatch(r"-?\d*", p.strip()) for p in parts):
            return slice(*(int(p) if p.strip() else None for p in parts))
    raise StructureError(f"{path}: invalid frame index {index!r} (use e.g. 0, -1, ':', '2:10:2')")


def _forward(selection: int | slice) -> bool:
    """Whether the frame numbers of ``selection`` are known without counting
    the frames (no negative index, positive step)."""
    if isinstance(selection, int):
        return selection >= 0
    start, stop, step = selection.start, selection.stop, selection.step
    return (
        (start is None or start >= 0)
        and (stop is None or stop >= 0)
        and (step is None or step > 0)
    )


def _select(path: str, read, selection: int | slice, single: bool) -> list[tuple[int, object]]:
    """``(frame number, atoms)`` for the selected frames; ``read(index)`` wraps
    ``ase.io.read``; ``single`` for formats holding one frame."""
    if _forward(selection) and not single:
        if isinstance(selection, int):
            return [(selection, read(selection))]
        start = selection.start or 0
        step = selection.step or 1
        return [(start + n * step, atoms) for n, atoms in enumerate(read(selection))]
    frames = read(slice(None))
    numbers = range(len(frames))
    if isinstance(selection, int):
        try:
            number = numbers[selection]
        except IndexError:
            raise StructureError(
                f"{path}: no frame {selection}, the file has {len(frames)}"
            ) from None
        return [(number, frames[number])]
    return [(number, frames[number]) for number in numbers[selection]]


def _read_ase(path: str, format: str, selection, options) -> list:
    import ase.io

    def read(index):
        try:
            return ase.io.read(path, index=index, format=format, **options)
        except _MissingType:
            raise
        except StructureError:
            raise
        except Exception as error:  # ASE raises anything on malformed input
            raise _read_error(path, format, index, error) from None

    from ase.io.formats import ioformats

    return _select(path, read, selection, single=ioformats[format].single)


def _read_error(path: str, format: str, index, error: Exception) -> StructureError:
    from ase.data import atomic_numbers

    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], str):
        symbol = error.args[0]
        if re.fullmatch(r"[A-Za-z]{1,3}", symbol) and symbol not in atomic_numbers:
            return StructureError(f"{path}: unknown element {symbol!r}")
    if isinstance(error, (IndexError, StopIteration)) and isinstance(index, int):
        return StructureError(f"{path}: no frame {index} in this {format} file")
    reason = f"{type(error).__name__}: {_one_line(error)}" if str(error) else type(error).__name__
    return StructureError(f"{path}: cannot read as {format}: {reason}")


# -- LAMMPS ----------------------------------------------------------------------


class _MissingType(Exception):
    """Raised from inside ASE's LAMMPS reader for a type absent from the map."""


class _TypeMap(dict):
    def __missing__(self, key):
        raise _MissingType(key)


def _read_lammps(path: str, format: str, selection, options) -> list:
    options = dict(options)
    type_map = options.pop("type_map", None)
    if format == _LAMMPS_DATA:
        atom_style = options.pop("atom_style", None)
        if atom_style is None or type_map is None:
            missing = " and ".join(
                name
                for name, value in (("atom_style", atom_style), ("type_map", type_map))
                if value is None
            )
            raise StructureError(
                f"{path}: LAMMPS data files need {missing}, e.g. "
                "read_structures(path, atom_style='atomic', type_map={1: 'Si'})"
            )
        z_of_type = _TypeMap(_normalize_type_map(path, type_map))
        options.update(Z_of_type=z_of_type, atom_style=atom_style)
        try:
            return _read_ase(path, format, selection, options)
        except _MissingType as missing:
            raise StructureError(
                f"{path}: LAMMPS atom type {missing.args[0]} is not in type_map"
            ) from None

    columns = _dump_columns(path)
    if "element" in columns:
        return _read_ase(path, format, selection, options)
    if type_map is None:
        raise StructureError(
            f"{path}: LAMMPS dumps without an element column need type_map, "
            "e.g. read_structures(path, type_map={1: 'O', 2: 'H'})"
        )
    if "type" not in columns:
        raise StructureError(f"{path}: the LAMMPS dump has neither a type nor an element column")
    z_of_type = _normalize_type_map(path, type_map)
    frames = _read_ase(path, format, selection, options)
    for frame, atoms in frames:
        types = atoms.arrays["type"]
        unknown = sorted(set(types.tolist()) - set(z_of_type))
        if unknown:
            raise StructureError(
                f"{path}:{frame}: LAMMPS atom type {unknown[0]} is not in type_map"
            )
        atoms.numbers = np.array([z_of_type[t] for t in types.tolist()], dtype=int)
    return frames


def _dump_columns(path: str) -> list[str]:
    """The column names of the first ``ITEM: ATOMS`` line of a text dump."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("ITEM: ATOMS"):
                    return line.split()[2:]
    except OSError as error:
        raise StructureError(f"{path}: cannot read: {_one_line(error)}") from None
    raise StructureError(f"{path}: cannot read as LAMMPS dump: no 'ITEM: ATOMS' line")


def _normalize_type_map(path: str, type_map) -> dict[int, int]:
    """``{LAMMPS type: atomic number}`` from a mapping or a sequence (types 1, 2, ...)."""
    from ase.data import atomic_numbers

    if isinstance(type_map, Mapping):
        items = list(type_map.items())
    elif isinstance(type_map, Sequence) and not isinstance(type_map, str):
        items = list(enumerate(type_map, start=1))
    else:
        raise StructureError(
            f"{path}: type_map must map LAMMPS types to elements, e.g. {{1: 'O', 2: 'H'}}, "
            f"got {type(type_map).__name__}"
        )
    result = {}
    for lammps_type, element in items:
        if isinstance(lammps_type, bool) or not isinstance(lammps_type, (int, np.integer)):
            raise StructureError(f"{path}: type_map keys must be integer LAMMPS types, got {lammps_type!r}")
        if isinstance(element, str):
            if element not in atomic_numbers or atomic_numbers[element] == 0:
                raise StructureError(f"{path}: unknown element {element!r} in type_map")
            number = atomic_numbers[element]
        elif isinstance(element, (int, np.integer)) and not isinstance(element, bool):
            number = int(element)
            if not 1 <= number <= MAX_ATOMIC_NUMBER:
                raise StructureError(f"{path}: unknown element {number} in type_map")
        else:
            raise StructureError(f"{path}: type_map values must be elements, got {element!r}")
        result[int(lammps_type)] = number
    return result


# -- checks ----------------------------------------------------------------------


def _check_elements(source: str, numbers: np.ndarray):
    bad = (numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)
    if np.any(bad):
        atom = int(np.flatnonzero(bad)[0])
        raise StructureError(
            f"{source}: unknown element (atomic number {int(numbers[atom])}) for atom {atom}"
        )


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split())
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return text
