"""A C++ engine without Python (`metatomic_engine.cpp`), compiled once through the kernel cache,
for the export tests (tests/runtime/test_export.py, test_export_cpp.py)."""

import pathlib
import subprocess

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


ENGINE_SOURCE = HERE / "metatomic_engine.cpp"


def engine_program() -> pathlib.Path:
    """tests/runtime/engine/metatomic_engine.cpp, compiled against libtorch and metatomic-torch's
    and metatensor-torch's C++ libraries (as LAMMPS links them), through the kernel cache."""
    import metatensor
    import metatensor.torch
    import metatomic.torch
    import torch
    from torch.utils import cpp_extension

    from mtdsl.codegen import cache

    prefixes = [pathlib.Path(metatomic.torch.utils.cmake_prefix_path).parent.parent,
                pathlib.Path(metatensor.torch.utils.cmake_prefix_path).parent.parent,
                pathlib.Path(metatensor.utils.cmake_prefix_path).parent.parent]
    libraries = [str(p / "lib") for p in prefixes] + cpp_extension.library_paths()
    flags = ("-O0", "-std=c++20", "-w", f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}",
             *[f"-I{p}" for p in cpp_extension.include_paths()], *[f"-I{p / 'include'}" for p in prefixes],
             "-Wl,--no-as-needed", *[f"-L{p}" for p in libraries], f"-Wl,-rpath,{':'.join(libraries)}",
             "-lmetatomic_torch", "-lmetatensor_torch", "-lmetatensor", "-ltorch", "-ltorch_cpu", "-lc10")
    program, _ = cache.build(ENGINE_SOURCE.read_text(), flags)
    return program


def run_engine(model: pathlib.Path, extensions: pathlib.Path, atoms) -> tuple:
    """`(energy, forces)` of the C++ engine on `atoms` (a molecule: no periodic images)."""
    lines = [str(len(atoms))] + [f"{z} " + " ".join(repr(float(v)) for v in r)
                                 for z, r in zip(atoms.numbers, atoms.positions)]
    done = subprocess.run([str(engine_program()), str(model), str(extensions)], input="\n".join(lines) + "\n",
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    found = done.stdout.strip().splitlines()
    return float(found[0]), np.array([[float(v) for v in line.split()] for line in found[1:]])
