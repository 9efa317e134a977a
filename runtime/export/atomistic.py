"""`model.export(path, extensions_directory=DIR)`: a compiled energy model as a metatomic
`AtomisticModel` (docs/simulation.md, "Export to metatomic engines").

The file is TorchScript (`AtomisticModel.save`). Its module asks the engine for full neighbour
lists at the program's cutoffs and calls one operator per system, whose autograd gives forces
and virials:

- the model's C++ operator (`runtime/export/cpp.py`; `DIR/mtdsl_<sha>.so`, built against the
  installed libtorch from the cpp backend's module source): no Python of mtdsl runs in the
  engine, so engines without Python load it;
- for the programs it refuses (`runtime/export/tape.py: TapeError`, naming the kernel and
  access), the Python-hosted `mtdsl_export::energy` (`runtime/export/ops.py`;
  `DIR/mtdsl_export.so` registers it by importing mtdsl in the engine's Python), the module
  holding the pickled model (program IR, hypers, trained parameters; no native code).

`ModelCapabilities`: the compiled species, the program's `interaction_range`, length and energy
units (Angstrom and eV by default), the model's dtype, `supported_devices=["cpu"]`.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np

from mtdsl import atomic
from mtdsl._coexist import import_module_with_metatensor_torch, torch_index_select_restored
from mtdsl._version import __version__
from mtdsl.errors import MtdslError
from mtdsl.ir import nodes as ir

from ..bridges.calculator import CalculatorError, _is_scalar_per, check_energy_output
from .tape import TapeError

EXTENSION = "mtdsl_export"


class ExportError(MtdslError):
    """A model that cannot be exported (says why)."""


class ExportWarning(UserWarning):
    """The model was exported with the Python-hosted operator (says why the C++ one could not be)."""


def export(model, path, *, extensions_directory="extensions", output: str = "energy", per_atom: str | None = None,
           length_unit: str = "angstrom", energy_unit: str = "eV", name: str | None = None,
           description: str = "", authors=(), runtime: str = "auto"):
    """Write `model` as a metatomic AtomisticModel to `path`; its extension into `extensions_directory`.

    :param output: the per-system energy output (gradients(positions) declared)
    :param per_atom: the per-atom energy output (default `{output}_per_atom` when the program has
        it): needed for per-atom energies and for `selected_atoms` (domain decomposition)
    """
    import torch

    # through _coexist: with torch_geometric imported first, a plain import fails (docs/interop.md)
    metatomic = import_module_with_metatensor_torch("metatomic.torch")
    AtomisticModel, ModelCapabilities = metatomic.AtomisticModel, metatomic.ModelCapabilities
    ModelMetadata, ModelOutput = metatomic.ModelMetadata, metatomic.ModelOutput

    if runtime not in ("auto", "cpp", "python"):
        raise ExportError(f"cannot export: unknown runtime {runtime!r} (auto, cpp or python)")

    try:
        check_energy_output(model.module, output)
    except CalculatorError as error:
        raise ExportError(f"cannot export: {error}") from None
    outputs = {o.name: o for o in model.module.outputs}
    per_atom_name = per_atom or f"{output}_per_atom"
    if per_atom_name not in outputs or not _is_scalar_per(model.module.kernel(per_atom_name), ir.AtomsDomain):
        if per_atom is not None:
            raise ExportError(f"cannot export: {per_atom!r} is not a per-atom scalar output of the model")
        per_atom_name = None
    if len(model.module.systems) != 1 or model.module.tensormaps:
        raise ExportError("cannot export: the program must take one systems input and no tensormap inputs")
    species = (model.provenance or {}).get("species")
    if not species:
        raise ExportError("cannot export: compile with species=[...] (--species): the exported model "
                          "declares the atomic types it supports")
    dtype = "float64" if np.dtype(model.dtype) == np.float64 else "float32"
    directory = os.fspath(extensions_directory)
    native = None
    if runtime != "python":
        from .cpp import native_module  # imports torch

        try:
            native = native_module(model, output, per_atom_name, directory)
        except TapeError as error:
            if runtime == "cpp":
                raise ExportError(f"cannot export with the C++ operator: {error}") from None
            import warnings

            warnings.warn(f"exported with the Python-hosted operator (engines must host Python and mtdsl): "
                          f"{error}", ExportWarning, stacklevel=3)
    if native is not None:
        module, extension = native
    else:
        from . import ops  # noqa: F401  (registers the operator the module scripts against)
        from .module import ExportedEnergy

        spec = {"model": model, "output": output, "per_atom": per_atom_name, "mtdsl": __version__}
        blob = pickle.dumps(spec)
        key = hashlib.sha256(blob).hexdigest()
        module = ExportedEnergy(torch.frombuffer(bytearray(blob), dtype=torch.uint8).clone(), key, output,
                                [float(p.cutoff) for p in model.module.pairs], per_atom_name is not None)
        _extension(directory)  # not loaded here: the operator is registered by importing ops
        extension = EXTENSION
    interaction_range = model.interaction_range
    capabilities = ModelCapabilities(
        # "atom": per-atom energies available (engines may then ask per system or per atom)
        outputs={output: ModelOutput(unit=energy_unit, sample_kind="atom" if per_atom_name else "system",
                                     explicit_gradients=[])},
        atomic_types=[int(z) for z in species],
        interaction_range=float(interaction_range) if math.isfinite(interaction_range) else float("inf"),
        length_unit=length_unit,
        supported_devices=["cpu"],
        dtype=dtype,
    )
    metadata = ModelMetadata(name=name or model.module.name, description=description or
                             f"{model.module.name}.mt compiled by mtdsl", authors=list(authors))
    with torch_index_select_restored():
        atomistic = AtomisticModel(module.eval(), metadata, capabilities)
    path = os.fspath(path)
    handle, temporary = atomic.temporary(path)
    os.close(handle)
    try:
        # only our extension is collected: a fresh directory with it alone
        with torch_index_select_restored():  # saving scripts the module, metatensor's functions included
            atomistic.save(temporary, collect_extensions=None)
        _record_extension(temporary, directory, extension)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def _record_extension(path: str, directory: str, extension: str = EXTENSION) -> None:
    """Name our extension in the saved model's `extensions` record (what metatomic loads from
    `extensions_directory`), as `AtomisticModel.save(collect_extensions=)` would, without
    copying every other loaded extension."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info.filename)) for info in archive.infolist()]
    handle, rewritten = atomic.temporary(path, ".ext")
    os.close(handle)
    with zipfile.ZipFile(rewritten, "w") as archive:
        for info, data in entries:
            if info.filename.endswith("/extra/extensions"):
                library = os.path.join(directory, f"{extension}.so")
                with open(library, "rb") as file:
                    sha256 = hashlib.sha256(file.read()).hexdigest()
                # the path is relative to the extensions_directory the engine is given
                data = json.dumps([{"name": extension, "sha256": sha256, "path": f"{extension}.so"}]).encode()
            archive.writestr(info, data)
    os.replace(rewritten, path)


_SHIM = r"""
// mtdsl_export: loaded by metatomic from extensions_directory with an exported model. It
// registers the mtdsl_export::energy operator by importing mtdsl in the engine's Python
// (runtime/export/ops.py); in an engine without Python it says so on stderr.
#include <Python.h>
#include <cstdio>

namespace {
struct Register {
    Register() {
        if (!Py_IsInitialized()) {
            std::fprintf(stderr, "mtdsl_export: this engine does not host Python; exported mtdsl models "
                                 "need it (docs/simulation.md)\n");
            return;
        }
        PyGILState_STATE state = PyGILState_Ensure();
        PyObject* module = PyImport_ImportModule("mtdsl.runtime.export.atomistic.ops");
        if (module == nullptr) {
            PyErr_Print();
        }
        Py_XDECREF(module);
        PyGILState_Release(state);
    }
} registered;
}
"""


def _extension(directory: str) -> str:
    """`DIR/mtdsl_export.so`, compiled (once per source) with the cpp backend's compiler."""
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, f"{EXTENSION}.so")
    digest = hashlib.sha256((_SHIM + sys.version).encode()).hexdigest()[:16]
    stamp = target + ".sha"
    if os.path.exists(target) and os.path.exists(stamp) and open(stamp).read() == digest:
        return target
    compiler = os.environ.get("CXX", "g++")
    if not shutil.which(compiler):
        raise ExportError(f"cannot build the export extension: no C++ compiler ({compiler}; set CXX)")
    with tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "shim.cpp")
        with open(source, "w") as file:
            file.write(_SHIM)
        built = os.path.join(work, f"{EXTENSION}.so")
        command = [compiler, "-O2", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}", source, "-o", built]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ExportError(f"cannot build the export extension: {done.stderr.strip()[:2000]}")
        with open(built, "rb") as file:
            atomic.write_bytes(target, file.read())
    atomic.write_bytes(stamp, digest.encode())
    return target
