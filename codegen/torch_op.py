"""The C++ operator of an exported model: the cpp backend's generated module source (the same
text, so the two cannot drift) followed by a driver replaying the model's tapes
(`runtime/export/tape.py`) and a `TORCH_LIBRARY(mtdsl_<sha>, m)` registration, compiled with g++
against the installed libtorch (`torch.utils.cpp_extension`'s include and library paths, the
C++ ABI torch was built with) through the kernel cache (`codegen/cache.py`: same key, sidecar and
integrity rules; a damaged entry is never served).

The operator, `torch.ops.mtdsl_<sha>.energy(positions, cell, structure, constants, counts, which,
threads)`, runs tape `which` on one system: `structure` the arrays the exported module computes
from the system and its neighbour lists, `constants` the tape's parameters and tables, `counts`
`[n_atoms, n_systems, n_pairs...]`. It returns the output's values (one per system or atom) and
is differentiable with respect to `positions` and `cell` by the tape's VJP kernels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from . import cache, cpp

REAL = {"float64": "Double", "float32": "Float"}


def _c_string(text: str) -> str:
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def _ops(tape, ops, symbols: list) -> list:
    found = []
    for op in ops:
        if op[0] == "add":
            found.append({"kind": 1, "symbol": 0, "out": op[1], "n_outputs": 0, "arrays": [(1, op[2])],
                          "scalars": [], "parallel": False, "name": '"add"'})
        else:
            _, symbol, out, n_outputs, arrays, scalars, parallel, name = op
            found.append({"kind": 0, "symbol": symbols.index(tape.symbols[symbol]), "out": out, "n_outputs": n_outputs, "arrays": arrays,
                          "scalars": scalars, "parallel": parallel, "name": _c_string(name)})
    return found


FILLS = {"zeros": 0, "iota": 1, "dims": 2, "terms": 3, "periodic": 4}


def _terms(terms) -> list:
    """A sum of products `coefficient * count dims...`, flat: n, then (coefficient, n dims, dims...)."""
    flat = [len(terms)]
    for coefficient, dims in terms:
        flat += [int(coefficient), len(dims), *[int(d) for d in dims]]
    return flat


def _fill(fill) -> tuple:
    """`(kind, values)` of an int64 buffer's fill (runtime/export/tape.py: `_Recorder.buffer`)."""
    if not fill:
        return FILLS["zeros"], []
    if fill[0] == "iota":
        return FILLS["iota"], []
    if fill[0] == "dims":
        return FILLS["dims"], [int(d) for d in fill[1]]
    if fill[0] == "terms":  # element k: the k-th sum
        return FILLS["terms"], [value for terms in fill[1] for value in _terms(terms)]
    if fill[0] == "periodic":  # element k: (k mod dim) times the sum
        return FILLS["periodic"], [int(fill[1]), *_terms(fill[2])]
    raise ValueError(f"unknown buffer fill {fill[0]!r}")


def render(module_source: str, tapes: list, dtype: str) -> tuple[str, str]:
    """`(namespace, source)` of the operator library of `tapes` (all recorded against the compiled
    module whose source is `module_source`)."""
    symbols = list(dict.fromkeys(s for tape in tapes for s in tape.symbols))
    views = []
    for tape in tapes:
        views.append({
            "buffers": [(list(dims) or [1], dtype_ == "int64", *_fill(fill)) for dims, dtype_, fill in tape.buffers],
            "forward": _ops(tape, tape.forward, symbols), "backward": _ops(tape, tape.backward, symbols),
            "result": tape.result, "cotangent": tape.cotangent, "positions_bar": tape.positions_bar,
            "cell_bar": tape.cell_bar})
    driver = cpp.templates().get_template("torch_op.cpp.j2").render(symbols=symbols, tapes=views, real=REAL[dtype],
                                                                namespace="NAMESPACE")
    digest = hashlib.sha256((module_source + driver).encode()).hexdigest()[:16]
    namespace = f"mtdsl_{digest}"
    return namespace, module_source + "\n" + driver.replace("TORCH_LIBRARY(NAMESPACE", f"TORCH_LIBRARY({namespace}")


def flags() -> tuple:
    """The compiler flags of a library built against the installed libtorch."""
    import torch
    from torch.utils import cpp_extension

    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    include = [f"-I{path}" for path in cpp_extension.include_paths()]
    libraries = cpp_extension.library_paths()
    link = [f"-L{path}" for path in libraries] + [f"-Wl,-rpath,{path}" for path in libraries]
    base = [f for f in cache.FLAGS if f != "-std=c++17"]
    return (*base, "-std=c++20", f"-D_GLIBCXX_USE_CXX11_ABI={abi}", "-w", *include, "-Wl,--no-as-needed", *link,
            "-ltorch", "-ltorch_cpu", "-lc10")


def build(source: str) -> Path:
    """The library of `source` from the kernel cache (compiled on a miss)."""
    library, _ = cache.build(source, flags())
    return library
