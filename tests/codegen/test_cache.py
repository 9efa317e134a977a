"""The kernel cache: content keys, atomic entries, corrupted entries rebuilt, concurrent builders."""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
from pathlib import Path

import pytest

from mtdsl.codegen import cache

SOURCE = 'extern "C" long mt_answer(void) { return %d; }\n'


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def answer(library) -> int:
    function = library.mt_answer
    function.restype = ctypes.c_long
    return function()


def test_cache_dir_follows_the_environment(cache_dir, monkeypatch):
    assert cache.cache_dir() == cache_dir
    monkeypatch.delenv("MTDSL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert str(cache.cache_dir()) == "/somewhere/mtdsl"


def test_key_depends_on_source_and_flags():
    a = cache.cache_key(SOURCE % 1)
    assert a == cache.cache_key(SOURCE % 1)
    assert a != cache.cache_key(SOURCE % 2)
    assert a != cache.cache_key(SOURCE % 1, flags=cache.FLAGS + ("-DX",))


def test_build_then_hit(cache_dir):
    library, path, hit = cache.load(SOURCE % 41)
    assert not hit and answer(library) == 41
    assert path.parent == cache_dir
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert len(sidecar["sha256"]) == 64
    _, again, hit = cache.load(SOURCE % 41)
    assert hit and again == path
    # no temporary files are left behind
    assert sorted(p.suffix for p in cache_dir.iterdir()) == [".json", ".so"]


def test_truncated_entry_is_rebuilt(cache_dir):
    path, _ = cache.build(SOURCE % 42)  # built, not loaded: a loaded library must not be truncated in place
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    library, again, hit = cache.load(SOURCE % 42)
    assert not hit and again == path and answer(library) == 42
    assert path.read_bytes() != data[: len(data) // 2]


def test_missing_or_bad_sidecar_is_rebuilt(cache_dir):
    path, _ = cache.build(SOURCE % 43)
    sidecar = path.with_suffix(".json")
    sidecar.write_text("{not json")
    assert cache.build(SOURCE % 43)[1] is False
    sidecar.write_text(json.dumps({"sha256": "0" * 64}))  # hash mismatch
    assert cache.build(SOURCE % 43)[1] is False
    sidecar.unlink()
    assert cache.build(SOURCE % 43)[1] is False
    assert cache.build(SOURCE % 43)[1] is True


def test_library_that_fails_to_load_is_rebuilt(cache_dir):
    source = SOURCE % 44
    key = cache.cache_key(source)
    library, sidecar = cache.entry_paths(key)
    cache_dir.mkdir(parents=True)
    library.write_bytes(b"not an ELF file")
    # a sidecar that matches the garbage: only dlopen can tell
    sidecar.write_text(json.dumps({"sha256": cache._file_hash(library)}))
    loaded, path, hit = cache.load(source)
    assert not hit and answer(loaded) == 44


def test_compile_error_is_reported(cache_dir):
    with pytest.raises(cache.CompileError, match="C\\+\\+ compiler failed"):
        cache.load("this is not C++")
    assert not any(p.suffix == ".so" for p in cache_dir.iterdir())


def _build_in_child(directory, value, queue):
    os.environ["MTDSL_CACHE_DIR"] = directory
    library, _, _ = cache.load(SOURCE % value)
    queue.put(answer(library))


def test_concurrent_processes_build_the_same_entry(cache_dir):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_build_in_child, args=(str(cache_dir), 45, queue)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [queue.get(timeout=5) for _ in processes] == [45, 45, 45]
    assert all(p.exitcode == 0 for p in processes)
    assert sorted(p.suffix for p in cache_dir.iterdir()) == [".json", ".so"]


def test_cache_hit_skips_rendering(cache_dir, monkeypatch):
    from mtdsl.codegen import cpp
    from mtdsl.runtime.native.compiled import compile_module

    from . import modules

    module = modules.spherical_expansion(n_radial=2, max_angular=1, cutoff=3.0)
    first = compile_module(module)
    assert not first.cache_hit

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr(cpp, "render_module", no_rendering)
    second = compile_module(module)
    assert second.cache_hit and second.source == first.source
    # a truncated rendering is rendered again (and the library still comes from the cache)
    monkeypatch.undo()
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(cache_dir))
    for path in cache_dir.glob("*.render.json"):
        path.write_bytes(path.read_bytes()[:10])
    third = compile_module(module)
    assert third.cache_hit and third.source == first.source
    # another dtype is another rendering
    assert compile_module(module, dtype="float32").source != first.source


def test_renderer_version_covers_every_codegen_source():
    """A cached rendering is keyed by every source of the code generator: a module added or split
    off later (fuse.py, products.py) must invalidate renderings as the renderers do."""
    here = Path(cache.__file__).parent
    named = {path.name for path in cache.codegen_files()}
    assert {path.name for path in here.glob("*.py")} <= named
    assert {path.name for path in (here / "schedule").glob("*.py")} <= named  # the shared middle
    assert {"fuse.py", "derived.py", "module.cpp.j2", "kernel.cpp.j2"} <= named
    # the derivative passes run while rendering: a change to them invalidates renderings too
    assert {"terms.py", "products.py", "autodiff.py", "roles.py", "derivative_nodes.py", "walk.py"} <= {
        path.name for path in cache.passes_files()}
