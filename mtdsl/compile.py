"""`mtdsl.compile()`: a `.mt` file to a callable `Model`.

parse + resolve (hypers overridden) -> check dimensions and equivariance ->
E206 for species-indexed params without species -> lower to the loop IR ->
a backend. Every error is a `CompileError` carrying the diagnostics.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from .errors import CompileError
from .ir.differentiable import gradient_diagnostics
from .ir.lower import LoweringError, lower
from .lang import program as P
from .lang.check import analyse
from .lang.check_dims import params_needing_species
from .lang.diagnostics import Diagnostic
from .runtime.model import Model


def check_and_lower(path, *, species=None, **hypers):
    """The checked program and its IR module, or a CompileError."""
    program, diagnostics, sources = analyse(os.fspath(path), hypers or None)
    errors = [d for d in diagnostics if d.is_error]
    if program is None or errors:
        raise CompileError(errors or diagnostics, sources)
    if species is None:
        missing = params_needing_species(program)
        if missing:
            raise CompileError([
                Diagnostic.at(param.span, "E206",
                              f"param `{param.name}` is indexed by `{index.name}`, a species dimension, "
                              "but no species were given",
                              hint="compile with species=[...] (`--species 1,6,8` on the command line)")
                for param, index in missing
            ], sources)
    try:
        module = lower(program, tuple(int(s) for s in species) if species is not None else None)
    except LoweringError as error:
        raise CompileError([Diagnostic("E900", program.path, 1, 1, str(error))]) from None
    undifferentiable = gradient_diagnostics(program, module)
    if undifferentiable:
        raise CompileError(undifferentiable, sources)
    return program, module, sources


def default_backend() -> str:
    """"cpp" when a C++ compiler is found (`CXX`, else g++), else "llvm" with a warning."""
    import shutil
    import warnings

    if shutil.which(os.environ.get("CXX", "g++")):
        return "cpp"
    warnings.warn("no C++ compiler found (set CXX or install g++): using the llvm backend", stacklevel=3)
    return "llvm"


def compile(path, *, backend: str | None = None, species=None, dtype=np.float64, seed: int = 0,
            threads: int | None = None, parameters=None, dense: bool = False, **hypers):
    """Compile the `.mt` file at `path` into a `Model`.

    :param backend: "cpp" (default when a C++ compiler is found), "llvm" (the default otherwise,
        with a warning) or "interpreter" (the reference)
    :param threads: threads of the native kernels (default: `OMP_NUM_THREADS`, else every core)
    :param species: atomic numbers fixing every `species(S)` dimension (needed by
        species-indexed params, error E206 otherwise)
    :param dtype: float64 or float32
    :param dense: a block for every key tuple and sample of the domains, zeros included,
        instead of only the structurally present ones (docs/language.md, "Sparsity")
    :param parameters: a file of `model.save_parameters` to load (refused when made for another
        program, other hypers or species)
    :param hypers: overrides of the program's hypers (E103 for unknown names or wrong types)
    """
    program, module, sources = check_and_lower(path, species=species, **hypers)
    text = "".join(sources.get(f, "") for f in program.files) if sources else ""
    provenance = {
        "program": os.fspath(path),
        "program_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "hypers": {name: _jsonable(h.value) for name, h in program.hypers.items()},
    }
    if species is not None:
        provenance["species"] = [int(s) for s in species]
    model = Model(module, backend=backend or default_backend(), dtype=dtype, provenance=provenance, seed=seed)
    model.threads = threads
    model.dense = bool(dense)
    if parameters is not None:
        model.load_parameters(parameters)
    return model


def _jsonable(value):
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value if isinstance(value, (bool, int, float, str)) else str(value)


__all__ = ["CompileError", "check_and_lower", "compile", "P"]
