"""Trained parameters as files: `model.save_parameters(path)`, `mtdsl.compile(..., parameters=path)`.

The file is a numpy `.npz` archive (no pickle): one array per `param` of the program, under
`param/NAME`, and `__mtdsl__`, a JSON record (UTF-8 bytes as a uint8 array) of what the
parameters belong to:

    {"format": "mtdsl-parameters", "version": 1, "model": "soap_energy",
     "program_sha256": "...", "hypers": {...}, "species": [1, 8] | null,
     "dtype": "float64", "shapes": {"w": [2, 2, 2, 5, 6, 6], ...}, "mtdsl": "0.1.0"}

Loading refuses a file made for another program (its sha256 differs) or for other hypers or
species, with an error that names what differs: the parameters of another model have no meaning
here even when their shapes agree. Files are written atomically (a temporary file renamed).
"""

from __future__ import annotations

import hashlib
import io
import json
import os

import numpy as np

from mtdsl import atomic
from mtdsl._version import __version__
from mtdsl.errors import MtdslError

FORMAT = "mtdsl-parameters"
VERSION = 1
_META = "__mtdsl__"
_PREFIX = "param/"


class ParametersError(MtdslError):
    """A parameter file that cannot be loaded into this model (another program, other hypers...)."""


def identity(model) -> dict:
    """What a parameter file of `model` records about the model (and loading checks)."""
    provenance = getattr(model, "provenance", {}) or {}
    sha = provenance.get("program_sha256") or hashlib.sha256(str(model.module).encode()).hexdigest()
    return {
        "model": model.module.name,
        "program_sha256": sha,
        "hypers": provenance.get("hypers", {}),
        "species": provenance.get("species"),
    }


def save_parameters(model, path, parameters: dict | None = None) -> None:
    """Write `parameters` (default `model.parameters`) of `model` to `path` (`.npz`), atomically."""
    parameters = model.parameters if parameters is None else parameters
    arrays = {_PREFIX + name: np.asarray(value) for name, value in parameters.items()}
    meta = dict(identity(model), format=FORMAT, version=VERSION, dtype=str(np.dtype(model.dtype)),
                shapes={name: list(np.shape(value)) for name, value in parameters.items()},
                mtdsl=__version__)
    arrays[_META] = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic.write_bytes(os.fspath(path), buffer.getvalue())  # no debris when killed (mtdsl.atomic)


def read_parameters(path) -> tuple[dict, dict]:
    """`(metadata, {name: array})` of a parameter file, or a ParametersError saying what is wrong."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ParametersError(f"{path}: no such parameter file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if _META not in archive.files:
                raise ParametersError(f"{path}: not an mtdsl parameter file (no {_META} record)")
            meta = json.loads(bytes(archive[_META]).decode())
            arrays = {name[len(_PREFIX):]: archive[name] for name in archive.files if name.startswith(_PREFIX)}
    except ParametersError:
        raise
    except Exception as error:  # a zip that is not one, a truncated file, bad JSON
        raise ParametersError(f"{path}: not a readable mtdsl parameter file ({error})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ParametersError(f"{path}: format {meta.get('format')!r} version {meta.get('version')!r}, "
                              f"expected {FORMAT!r} version {VERSION}")
    return meta, arrays


def check_identity(meta: dict, model, path) -> None:
    """Refuse a file whose program, hypers or species are not `model`'s, naming the difference."""
    mine = identity(model)
    where = os.fspath(path)
    if meta.get("program_sha256") != mine["program_sha256"]:
        raise ParametersError(
            f"{where} holds parameters of another program: model {meta.get('model')!r} with sha256 "
            f"{str(meta.get('program_sha256'))[:12]}..., this is {mine['model']!r} with sha256 "
            f"{mine['program_sha256'][:12]}...")
    theirs, ours = meta.get("hypers") or {}, mine["hypers"] or {}
    differ = sorted(name for name in set(theirs) | set(ours) if theirs.get(name) != ours.get(name))
    if differ:
        detail = ", ".join(f"{name} = {theirs.get(name)!r} in the file, {ours.get(name)!r} here" for name in differ)
        raise ParametersError(f"{where} was saved with other hypers: {detail}")
    if meta.get("species") != mine["species"]:
        raise ParametersError(f"{where} was saved for species {meta.get('species')}, "
                              f"the model is compiled for {mine['species']}")


def load_parameters(model, path) -> dict[str, np.ndarray]:
    """The parameters of the file at `path`, checked against `model` (program, hypers, species,
    names and shapes), as arrays of the model's dtype."""
    meta, arrays = read_parameters(path)
    check_identity(meta, model, path)
    expected = {name: np.shape(value) for name, value in model.parameters.items()}
    if set(arrays) != set(expected):
        raise ParametersError(f"{os.fspath(path)}: params {sorted(arrays)}, the model has {sorted(expected)}")
    for name, array in arrays.items():
        if array.shape != expected[name]:
            raise ParametersError(f"{os.fspath(path)}: param {name} has shape {array.shape}, "
                                  f"the model's is {expected[name]}")
    return {name: np.asarray(arrays[name], dtype=model.dtype) for name in expected}


def file_species(path):
    """The species a parameter file was saved for (None when it records none)."""
    meta, _ = read_parameters(path)
    return meta.get("species")
