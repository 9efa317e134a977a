"""The exported model's C++ operator (docs/simulation.md, "The C++ operator"): the tapes of the
energy output (and of the per-atom output, for `selected_atoms`) recorded by
`runtime/export/tape.py`, compiled with the cpp backend's module source into a libtorch
extension (`codegen/torch_op.py`) copied into the extensions directory as `mtdsl_<sha>.so`, and
the TorchScript module that calls it (`runtime/export/native_module.py`, its namespace filled in).
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

import torch

from mtdsl import atomic
from mtdsl.codegen import torch_op
from mtdsl.codegen.schedule import abi

from ..native.compiled import default_threads
from .tape import STRUCTURE_FIELDS, record

KINDS = (abi.SystemsField, abi.PairsField)  # the operator's structure kinds, in its numbering


def native_module(model, output: str, per_atom: str | None, directory: str):
    """`(module, extension name)`: the TorchScript-ready module over the operator library, which is
    built (or taken from the kernel cache), copied into `directory` and loaded here."""
    outputs = [output] + ([per_atom] if per_atom else [])
    tapes, module_source = record(model, outputs)
    structure_order, constants = _union(tapes), _constants(tapes)
    for tape in tapes:
        _renumber(tape, structure_order, list(constants))
    dtype = "float64" if str(model.dtype) == "float64" else "float32"
    namespace, source = torch_op.render(module_source, tapes, dtype)
    library = torch_op.build(source)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, f"{namespace}.so")
    atomic.write_bytes(target, library.read_bytes())
    if not _registered(namespace):  # a namespace is registered once per process (same source, same library)
        torch.ops.load_library(target)
    pairs = [p.name for p in model.module.pairs]
    structure = []
    for argument in structure_order:
        kind = type(argument)
        structure.append([KINDS.index(kind), pairs.index(argument.pairs) if kind is abi.PairsField else 0,
                          STRUCTURE_FIELDS[kind].index(argument.field)])
    module_class = _scripted_class(namespace)
    threads = int(model.threads or default_threads())
    module = module_class(output, [float(p.cutoff) for p in model.module.pairs], [bool(p.full) for p in model.module.pairs],
                          structure, [torch.from_numpy(value.copy()) for value in constants.values()], 0,
                          1 if per_atom else -1, threads)
    return module, namespace


def _registered(namespace: str) -> bool:
    try:
        getattr(getattr(torch.ops, namespace), "energy")
    except (AttributeError, RuntimeError):
        return False
    return True


def _union(tapes) -> list:
    """The structure inputs of every tape: the operator takes one list for all its tapes."""
    found = []
    for tape in tapes:
        found += [d for d in tape.structure if d not in found]
    return found


def _constants(tapes) -> dict:
    found = {}
    for tape in tapes:
        for key, value in tape.constants:
            found.setdefault(key, value)
    return found


def _renumber(tape, structure: list, constants: list) -> None:
    """The tape's input references in the operator's order: every tape's structure, then every
    tape's constants."""
    own = tape.structure + [d for d, _ in tape.constants]
    order = structure + constants
    for ops in (tape.forward, tape.backward):
        for position, op in enumerate(ops):
            if op[0] == "call":
                arrays = [(0, order.index(own[index])) if kind == 0 else (kind, index) for kind, index in op[4]]
                ops[position] = op[:4] + (arrays,) + op[5:]


def _scripted_class(namespace: str):
    """`ExportedNative` with its operator's namespace, from a file (TorchScript reads the source)."""
    template = os.path.join(os.path.dirname(__file__), "native_module.py")
    with open(template) as file:
        text = file.read().replace("torch.ops.NAMESPACE.", f"torch.ops.{namespace}.")
    directory = tempfile.mkdtemp(prefix="mtdsl-export-")  # kept until exit: scripting reads it
    atexit.register(shutil.rmtree, directory, True)
    path = os.path.join(directory, f"{namespace}_module.py")
    with open(path, "w") as file:
        file.write(text)
    spec = importlib.util.spec_from_file_location(f"{namespace}_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ExportedNative
