"""The kernel cache: shared libraries compiled from C++ source, renderings and
compile-time tables, each verified by a content hash whenever it is served.

Entries, in `$MTDSL_CACHE_DIR`, else `$XDG_CACHE_HOME/mtdsl`, else `~/.cache/mtdsl`
(docs/codegen.md, "The kernel cache"):

- `<key>.so` + `<key>.json`: a library and its sidecar recording its sha256;
  `key` is the sha256 of (source, compiler identity, flags);
- `<key>.render.json`: a rendering (`store_rendering`): one JSON header line
  with the key and the sha256 of the rest, then the rendering as data
  (`codegen/serialize.py`: a JSON line, then the raw bytes of its arrays; never
  pickle: a cache directory is not code that runs);
- `<name>-<digest>.npz`: compile-time arrays (`cached_arrays`), a plain npz
  loaded with `allow_pickle=False`, holding `__sha256__` over its arrays;
- `llvm/<key>.o`: LLVM machine code, the sha256 of the object then the object
  (`codegen/llvm/jit.py`).

An entry that is missing is built. One whose hash disagrees, that cannot be read
or decoded, or (a library) that fails to load, is removed with a `CacheWarning`
and rebuilt: never served, never fatal. Writes are atomic (`mtdsl/atomic.py`): a
temporary file renamed onto the entry when complete, removed when its writer
fails, and cleaned by the next write when its writer was killed; so concurrent
processes see no entry or a whole one. `mtdsl cache info|clear|verify` inspects,
empties or checks the directory (`entries`, `verify_entry`, `clear`).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import shutil
import subprocess
import warnings
from pathlib import Path

from mtdsl import atomic, builtins
from mtdsl.errors import NativeCompileError
from mtdsl.ir import roles

from . import serialize

# -fno-split-loops: -O3's loop splitting cost 0.1 s of the 1.6 s of g++ on the power spectrum with
# gradients and gave the same machine code speed and the same results bit for bit (issue #15, cold compile)
FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17", "-fno-math-errno", "-fno-split-loops")

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


class CacheWarning(UserWarning):
    """A damaged kernel-cache entry was removed and is rebuilt."""


def _atomic_write(path: Path, data: bytes) -> None:
    atomic.write_bytes(path, data)


def _discard(path: Path, reason: str, *others: Path) -> None:
    """Remove the damaged entry `path` (and its companions `others`), with a warning."""
    warnings.warn(f"kernel cache: {path} is damaged ({reason}); removed, rebuilding it", CacheWarning,
                  stacklevel=3)
    for damaged in (path, *others):
        atomic.remove_quietly(damaged)


#: the line `codegen/templates/module.cpp.j2` writes before each kernel: what precedes the first is
#: the prelude (static inline helpers, templates), each piece after one a kernel that needs only the
#: prelude, so a marked source may be compiled as several translation units in parallel
KERNEL_MARKER = "// mtdsl: kernel\n"


def compile_jobs() -> int:
    """How many g++ processes compile one library: `$MTDSL_COMPILE_JOBS`, else the CPUs this process
    may run on that are idle now (by the 1-minute load average; at least 1: one translation unit, as
    before). On a busy machine more units only add each unit's parse of the prelude: the processes
    share the CPU time the machine would give one."""
    value = os.environ.get("MTDSL_COMPILE_JOBS", "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            raise CompileError(f"MTDSL_COMPILE_JOBS must be a whole number, got {value!r}") from None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    try:
        idle = cpus - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        idle = cpus
    return max(1, min(cpus, round(idle)))


def translation_units(source: str, jobs: int) -> list[str]:
    """`source` as at most `jobs` translation units, each the prelude and a share of the kernels
    (balanced by length, longest first, kernels in source order within a unit); `[source]` when
    the source is not marked (`KERNEL_MARKER`) or one unit is asked for."""
    prelude, *kernels = source.split(KERNEL_MARKER)
    if jobs <= 1 or len(kernels) <= 1:
        return [source]
    groups: list[list[int]] = [[] for _ in range(min(jobs, len(kernels)))]
    sizes = [0] * len(groups)
    for index in sorted(range(len(kernels)), key=lambda k: -len(kernels[k])):
        smallest = sizes.index(min(sizes))
        groups[smallest].append(index)
        sizes[smallest] += len(kernels[index])
    return [prelude + "".join(KERNEL_MARKER + kernels[k] for k in sorted(group)) for group in groups]


def _compiler_error(result) -> CompileError:
    return CompileError(f"the C++ compiler failed on generated code:\n{result.stderr[-4000:]}")


def _compile_units(units: list[str], build: Path, library: Path, flags) -> bool:
    """Compile `units` into objects by concurrent g++ processes, then link them into `library`;
    False when any step fails (the caller compiles the source whole, for its error message)."""
    processes = []
    try:
        for index, unit in enumerate(units):
            path = build / f"unit{index}.cpp"
            path.write_text(unit)
            processes.append(subprocess.Popen([compiler(), *flags, "-c", str(path), "-o", str(path.with_suffix(".o"))],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        failed = [process.wait() != 0 for process in processes]
    finally:  # interrupted: no compiler left running on a removed build folder
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if any(failed):
        return False
    objects = [str(build / f"unit{index}.o") for index in range(len(units))]
    result = subprocess.run([compiler(), *flags, *objects, "-o", str(library)], capture_output=True, check=False)
    return result.returncode == 0


def compile_source(source: str, output: Path, flags=FLAGS, jobs: int = 1) -> None:
    """Compile `source` into the shared library `output` (atomically): with `jobs` > 1 and a marked
    source, as that many translation units compiled in parallel, then linked (`translation_units`)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    build = Path(atomic.temporary_directory(output.parent, "build-"))
    try:
        library = build / "module.so"
        units = translation_units(source, jobs)
        if len(units) > 1 and _compile_units(units, build, library, flags):
            os.replace(library, output)
            return
        source_path = build / "module.cpp"
        source_path.write_text(source)
        result = subprocess.run([compiler(), *flags, str(source_path), "-o", str(library)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise _compiler_error(result)
        os.replace(library, output)
    finally:
        shutil.rmtree(build, ignore_errors=True)


def entry_paths(key: str, directory: Path | None = None) -> tuple[Path, Path]:
    directory = cache_dir() if directory is None else directory
    return directory / f"{key}.so", directory / f"{key}.json"


SIDECAR_FIELDS = {"sha256", "key", "flags"}


def _library_problem(library: Path, sidecar: Path, flags=None) -> str | None:
    """Why the library entry is not to be served (None: it is whole). Every field of the
    sidecar is checked, so a damaged one is rewritten rather than kept beside a good library."""
    try:
        record = json.loads(sidecar.read_text())
        recorded = record["sha256"]
    except FileNotFoundError:
        return "no sidecar"
    except (OSError, ValueError, KeyError, TypeError):
        return "unreadable sidecar"
    if set(record) - SIDECAR_FIELDS:
        return "unexpected fields in the sidecar"
    if record.get("key", library.stem) != library.stem:
        return "the sidecar of another entry"
    if flags is not None and record.get("flags") != list(flags):
        return "the sidecar's flags differ"
    try:
        return None if _file_hash(library) == recorded else "hash mismatch"
    except OSError as error:
        return f"unreadable: {error.strerror}"


def build(source: str, flags=FLAGS, jobs: int = 1) -> tuple[Path, bool]:
    """The path of the library for `source`, compiling it unless a valid entry exists (in `jobs`
    parallel translation units when the source is marked: `compile_source`).

    Returns `(path, hit)`; `hit` says the entry came from the cache.
    """
    key = cache_key(source, flags)
    library, sidecar = entry_paths(key)
    if library.exists():
        problem = _library_problem(library, sidecar, flags)
        if problem is None:
            return library, True
        _discard(library, problem, sidecar)
    library.parent.mkdir(parents=True, exist_ok=True)
    atomic.clean_stale_in(library.parent)  # the debris of killed builds, whatever their key
    handle, temporary = atomic.temporary(library)
    os.close(handle)
    temporary = Path(temporary)
    try:
        compile_source(source, temporary, flags, jobs)
        digest = _file_hash(temporary)
        _atomic_write(sidecar, json.dumps({"sha256": digest, "key": key, "flags": list(flags)}).encode())
        os.replace(temporary, library)
    finally:
        atomic.remove_quietly(temporary)
    return library, False


def load(source: str, flags=FLAGS, jobs: int | None = None) -> tuple[ctypes.CDLL, Path, bool]:
    """Build (or find) and load the library of `source` (compiled by `jobs` g++ processes, by default
    `compile_jobs()`); a library that fails to load is rebuilt once."""
    jobs = compile_jobs() if jobs is None else jobs
    library, hit = build(source, flags, jobs)
    try:
        return ctypes.CDLL(str(library)), library, hit
    except OSError as error:
        _discard(library, f"fails to load: {error}", library.with_suffix(".json"))
        library, _ = build(source, flags, jobs)
        return ctypes.CDLL(str(library)), library, False


def cached_arrays(name: str, parameters: tuple, compute) -> dict:
    """Arrays computed at compile time (radial spline tables...), kept in the cache directory.

    `compute()` returns a dict of numpy arrays; the entry is keyed by `name` and the repr of
    `parameters`: a plain npz (loaded with `allow_pickle=False`) holding `__sha256__`, the hash
    of its arrays; a damaged entry is removed with a warning and recomputed.
    """
    digest = hashlib.sha256(repr((name, parameters)).encode()).hexdigest()
    path = cache_dir() / f"{name}-{digest[:32]}.npz"
    if path.exists():
        arrays, problem = _read_arrays(path)
        if problem is None:
            return arrays
        _discard(path, problem)
    arrays = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, _npz_bytes(arrays, path.name))
    except OSError:
        pass  # a read-only cache: compute every time
    return arrays


_ARRAYS_HASH = "__sha256__"


def _arrays_hash(arrays: dict, name: str) -> bytes:
    """The hash of an arrays entry: its file name (so that another entry's file is refused), then
    each array's name, dtype, shape and bytes."""
    import numpy as np

    digest = hashlib.sha256(name.encode() + b"\0")
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        for part in (key, array.dtype.str, repr(array.shape)):
            digest.update(part.encode())
            digest.update(b"\0")
        digest.update(array.tobytes())
    return digest.digest()


def _npz_bytes(arrays: dict, name: str) -> bytes:
    import io

    import numpy as np

    buffer = io.BytesIO()
    hashed = {key: np.asarray(value) for key, value in arrays.items()}
    np.savez(buffer, **hashed, **{_ARRAYS_HASH: np.frombuffer(_arrays_hash(hashed, name), dtype=np.uint8)})
    return buffer.getvalue()


def _read_arrays(path: Path) -> tuple[dict | None, str | None]:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except Exception as error:  # noqa: BLE001 - zipfile, zlib, numpy: any damage is a rebuild
        return None, f"unreadable: {type(error).__name__}"
    recorded = arrays.pop(_ARRAYS_HASH, None)
    if recorded is None or recorded.tobytes() != _arrays_hash(arrays, path.name):
        return None, "hash mismatch"
    return arrays, None


def codegen_files() -> list[Path]:
    """Every source of the code generator (each .py of codegen/ and its sub-packages such as
    `schedule/`, and its templates): a listed set went stale as modules were split or added
    (fuse.py, products.py were missing)."""
    here = Path(__file__).parent
    # os.walk, not Path.rglob: every process lists these on its first cache hit, and rglob (walking
    # the __pycache__ folders too) took 0.6 ms of it
    sources = []
    for directory, folders, names in os.walk(here):
        folders[:] = [folder for folder in folders if folder != "__pycache__"]
        sources += [Path(directory, name) for name in names if name.endswith(".py")]
    return sorted(sources) + sorted((here / "templates").glob("*"))


@functools.lru_cache(maxsize=1)
def codegen_version() -> str:
    """A hash of the renderer's own sources: a rendering cached by IR is valid only for the same renderer."""
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for path in codegen_files():
        digest.update(path.relative_to(here).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def passes_version() -> str:
    """A hash of the sources of the derivative passes, roles, derivative nodes and walkers of the IR
    (`mtdsl/ir/passes/`, `roles.py`, `derivative_nodes.py`, `walk.py`) and of the built-ins
    (`mtdsl/builtins/`): rendering runs them (the gradient terms as kernels, the built-ins'
    expansions), so a rendering cached by IR is valid only for the same passes too."""
    digest = hashlib.sha256()
    for path in passes_files():
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def passes_files() -> list[Path]:
    here = Path(roles.__file__).parent
    # the built-ins' derivatives and native expansions (mtdsl/builtins/) are part of what rendering runs
    registry = sorted(Path(builtins.__file__).parent.glob("*.py"))
    # the derivative nodes and the walkers over them decide what the passes give, as the passes do
    ir_files = [here / "roles.py", here / "derivative_nodes.py", here / "walk.py"]
    return sorted((here / "passes").glob("*.py")) + ir_files + registry


def rendering_key(backend: str, module_text: str, dtype: str) -> str:
    """Key of a rendered module by its IR (`repr`, every field), dtype, renderer and passes versions."""
    digest = hashlib.sha256()
    for part in (backend, dtype, codegen_version(), passes_version(), module_text):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


_ENTRY_FORMAT = "mtdsl-cache-entry"


def _entry_bytes(payload: bytes, key: str) -> bytes:
    header = {"format": _ENTRY_FORMAT, "version": 1, "key": key, "sha256": hashlib.sha256(payload).hexdigest()}
    return json.dumps(header, sort_keys=True).encode() + b"\n" + payload


def _entry_payload(data: bytes, key: str) -> tuple[memoryview | None, str | None]:
    """The payload of a verified entry stored under `key` (a view into `data`: copying the megabytes
    of a rendering cost a cache hit more than a millisecond), or why it is damaged."""
    end = data.find(b"\n")
    newline = end >= 0
    line, payload = (data[:end], memoryview(data)[end + 1:]) if newline else (data, memoryview(b""))
    try:
        header = json.loads(line)
        recorded = header["sha256"] if header.get("format") == _ENTRY_FORMAT else None
        stored_key = header["key"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None, "unreadable header"
    if stored_key != key:
        return None, "another entry's content"
    if not newline or recorded != hashlib.sha256(payload).hexdigest():
        return None, "hash mismatch"
    return payload, None


def rendering_path(key: str) -> Path:
    return cache_dir() / f"{key}.render.json"


def load_rendering(key: str):
    """A rendered module stored by `store_rendering`, or None: missing, or damaged (removed with
    a warning), the caller renders again."""
    path = rendering_path(key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        _discard(path, f"unreadable: {error.strerror}")
        return None
    payload, problem = _entry_payload(data, key)
    if problem is None:
        try:
            return serialize.decode(payload)
        except (serialize.DecodingError, UnicodeDecodeError) as error:
            problem = f"cannot decode: {error}"
    _discard(path, problem)
    return None


def store_rendering(key: str, rendered) -> None:
    """Store a rendering as data (`codegen/serialize.py`); one that holds something else than
    data is not stored (it is rendered again next time)."""
    try:
        payload = serialize.encode(rendered)
    except serialize.EncodingError as error:
        warnings.warn(f"kernel cache: this rendering is not stored ({error})", CacheWarning, stacklevel=2)
        return
    path = rendering_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, _entry_bytes(payload, key))


def object_bytes(data: bytes, key: str) -> bytes:
    """An llvm object entry: the sha256 of (key, object), then the object."""
    return hashlib.sha256(key.encode() + b"\0" + data).digest() + data


def object_payload(data: bytes, key: str) -> bytes | None:
    """The object of an llvm object entry stored under `key`; None when damaged."""
    if len(data) < 32 or hashlib.sha256(key.encode() + b"\0" + data[32:]).digest() != data[:32]:
        return None
    return data[32:]


# ---- the whole directory: `mtdsl cache info|clear|verify` ------------------------------------------

#: the kinds of entries, by how their file names end (llvm objects are under llvm/)
ENTRY_KINDS = {".so": "library", ".render.json": "rendering", ".npz": "arrays", ".o": "llvm object"}


def entry_kind(path: Path) -> str | None:
    """The kind of entry `path` is (None: a sidecar, a temporary file, anything else)."""
    if path.name.startswith((".", "build-")):
        return None
    for suffix, kind in ENTRY_KINDS.items():
        if path.name.endswith(suffix) and (kind != "llvm object" or path.parent.name == "llvm"):
            return kind
    return None


def entries(directory: Path | None = None) -> list[Path]:
    """Every entry of the cache directory (libraries, renderings, arrays, llvm objects), sorted."""
    directory = cache_dir() if directory is None else Path(directory)
    found = []
    for folder in (directory, directory / "llvm"):
        if folder.is_dir():
            found += [path for path in folder.iterdir() if path.is_file() and entry_kind(path)]
    return sorted(found)


def verify_entry(path: Path) -> str | None:
    """Why the entry `path` would not be served (None: it is whole)."""
    kind = entry_kind(path)
    if kind == "library":
        return _library_problem(path, path.with_suffix(".json"))
    if kind == "arrays":
        return _read_arrays(path)[1]
    try:
        data = path.read_bytes()
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if kind == "llvm object":
        return None if object_payload(data, path.stem) is not None else "hash mismatch"
    payload, problem = _entry_payload(data, path.name[: -len(".render.json")])
    if problem is None:
        try:
            serialize.decode(payload)
        except (serialize.DecodingError, UnicodeDecodeError) as error:
            problem = f"cannot decode: {error}"
    return problem


def is_debris(path: Path) -> bool:
    """Files of the cache directory that are no entry: temporary files and build folders,
    sidecars without their library, and the pickled renderings of earlier versions
    (never read: a cache directory is not code that runs)."""
    name = path.name
    if name.startswith(".") and name.endswith(".tmp") or name.startswith("build-"):
        return True
    if name.endswith(".render.pkl") or ".so.tmp" in name:
        return True
    sidecar = len(name) == 69 and name.endswith(".json") and all(c in "0123456789abcdef" for c in name[:64])
    return sidecar and not path.with_suffix(".so").exists()


def clear(directory: Path | None = None) -> int:
    """Remove every entry and every piece of debris (nothing else); how many files."""
    directory = cache_dir() if directory is None else Path(directory)
    removed = 0
    for folder in (directory, directory / "llvm"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if entry_kind(path) or is_debris(path) or path.suffix == ".json" and path.with_suffix(".so").exists():
                removed += atomic.remove_quietly(path)
    return removed
