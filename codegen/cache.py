"""Compiling C++ source to a shared library, cached by content.

An entry is `<key>.so` plus a sidecar `<key>.json` recording the sha256 of the
library; `key` is the sha256 of (source, compiler identity, flags). The
directory is `$MTDSL_CACHE_DIR`, else `$XDG_CACHE_HOME/mtdsl`, else
`~/.cache/mtdsl`.

Writes are atomic: the compiler writes a temporary file in the cache directory,
which is `os.replace`d onto the final name only when complete (the sidecar
first is written the same way, then the library), so a concurrent process sees
either no entry or a whole one and never loads a half-written library. An entry
whose library is missing, whose hash differs from its sidecar (truncated or
overwritten), or that fails to load, is rebuilt.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mtdsl.errors import NativeCompileError

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno")

# the name this module has always raised and tests catch; defined in mtdsl.errors
CompileError = NativeCompileError


def cache_dir() -> Path:
    if os.environ.get("MTDSL_CACHE_DIR"):
        return Path(os.environ["MTDSL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mtdsl"


def compiler() -> str:
    found = shutil.which(os.environ.get("CXX", "g++"))
    if found is None:
        raise CompileError("no C++ compiler found (set CXX or install g++)")
    return found


@functools.lru_cache(maxsize=8)
def _compiler_version(path: str) -> str:
    result = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    return result.stdout.strip()


def cache_key(source: str, flags=FLAGS) -> str:
    path = compiler()
    digest = hashlib.sha256()
    for part in (source, path, _compiler_version(path), " ".join(flags)):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def compile_source(source: str, output: Path, flags=FLAGS) -> None:
    """Compile `source` into the shared library `output` (atomically)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix="build-") as build:
        source_path = Path(build) / "module.cpp"
        source_path.write_text(source)
        library = Path(build) / "module.so"
        result = subprocess.run([compiler(), *flags, str(source_path), "-o", str(library)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise CompileError(f"the C++ compiler failed on generated code:\n{result.stderr[-4000:]}")
        os.replace(library, output)


def entry_paths(key: str, directory: Path | None = None) -> tuple[Path, Path]:
    directory = cache_dir() if directory is None else directory
    return directory / f"{key}.so", directory / f"{key}.json"


def _valid(library: Path, sidecar: Path) -> bool:
    try:
        recorded = json.loads(sidecar.read_text())["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    try:
        return _file_hash(library) == recorded
    except OSError:
        return False


def build(source: str, flags=FLAGS) -> tuple[Path, bool]:
    """The path of the library for `source`, compiling it unless a valid entry exists.

    Returns `(path, hit)`; `hit` says the entry came from the cache.
    """
    key = cache_key(source, flags)
    library, sidecar = entry_paths(key)
    if library.exists() and _valid(library, sidecar):
        return library, True
    library.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=library.parent, prefix=key + ".", suffix=".so.tmp")
    os.close(handle)
    temporary = Path(temporary)
    try:
        compile_source(source, temporary, flags)
        digest = _file_hash(temporary)
        _atomic_write(sidecar, json.dumps({"sha256": digest, "flags": list(flags)}).encode())
        os.replace(temporary, library)
    finally:
        if temporary.exists():
            temporary.unlink()
    return library, False


def load(source: str, flags=FLAGS) -> tuple[ctypes.CDLL, Path, bool]:
    """Build (or find) and load the library of `source`; a library that fails to load is rebuilt once."""
    library, hit = build(source, flags)
    try:
        return ctypes.CDLL(str(library)), library, hit
    except OSError:
        library.unlink(missing_ok=True)
        library, _ = build(source, flags)
        return ctypes.CDLL(str(library)), library, False


def cached_arrays(name: str, parameters: tuple, compute) -> dict:
    """Arrays computed at compile time (radial spline tables...), kept in the cache directory.

    `compute()` returns a dict of numpy arrays; the entry is keyed by `name` and
    the repr of `parameters`, written atomically; an unreadable entry is recomputed.
    """
    import io

    import numpy as np

    digest = hashlib.sha256(repr((name, parameters)).encode()).hexdigest()
    path = cache_dir() / f"{name}-{digest[:32]}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError, KeyError, EOFError):
        pass
    arrays = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    _atomic_write(path, buffer.getvalue())
    return arrays


CODEGEN_FILES = ("cpp.py", "plan.py", "terms.py", "rendered.py", "cache.py", "templates/module.cpp.j2", "templates/kernel.cpp.j2")


@functools.lru_cache(maxsize=1)
def codegen_version() -> str:
    """A hash of the renderer's own sources: a rendering cached by IR is valid only for the same renderer."""
    digest = hashlib.sha256()
    for name in CODEGEN_FILES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def rendering_key(backend: str, module_text: str, dtype: str) -> str:
    """Key of a rendered module by its IR (`repr`, every field), dtype and renderer version."""
    digest = hashlib.sha256()
    for part in (backend, dtype, codegen_version(), module_text):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def load_rendering(key: str):
    """A rendered module stored by `store_rendering`, or None (missing or unreadable: render again)."""
    import pickle

    path = cache_dir() / f"{key}.render.pkl"
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception:  # a truncated or stale entry is rebuilt
        return None


def store_rendering(key: str, rendered) -> None:
    import pickle

    path = cache_dir() / f"{key}.render.pkl"
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, pickle.dumps(rendered, protocol=pickle.HIGHEST_PROTOCOL))
