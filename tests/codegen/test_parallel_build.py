"""A marked module compiled as several translation units in parallel (`codegen/cache.py`)."""

from __future__ import annotations

import ctypes

import pytest

from mtdsl.codegen import cache

PRELUDE = "#include <cmath>\nstatic inline long mt_twice(long x) { return 2 * x; }\n"
KERNEL = 'extern "C" long mt_k%d(void) { return mt_twice(%d) + (long) std::sqrt(16.0); }\n'


def marked(count: int) -> str:
    return PRELUDE + "".join(cache.KERNEL_MARKER + KERNEL % (k, k) for k in range(count))


def call(library, name: str) -> int:
    function = getattr(library, name)
    function.restype = ctypes.c_long
    return function()


def test_units_hold_the_prelude_and_every_kernel_once():
    source = marked(5)
    units = cache.translation_units(source, 2)
    assert len(units) == 2 and all(unit.startswith(PRELUDE) for unit in units)
    kernels = sorted(piece for unit in units for piece in unit.split(cache.KERNEL_MARKER)[1:])
    assert kernels == sorted(KERNEL % (k, k) for k in range(5))
    assert cache.translation_units(source, 1) == [source]
    assert cache.translation_units(PRELUDE + KERNEL % (0, 0), 4) == [PRELUDE + KERNEL % (0, 0)]  # unmarked


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_a_library_from_parallel_units_runs_every_kernel(tmp_path, monkeypatch, jobs):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    library, path, hit = cache.load(marked(4), jobs=jobs)
    assert not hit and [call(library, f"mt_k{k}") for k in range(4)] == [2 * k + 4 for k in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{path.stem}.json", f"{path.stem}.so"]  # no debris


def test_a_kernel_that_needs_another_units_code_falls_back_to_one_unit(tmp_path, monkeypatch):
    # a helper defined after a marker is visible only in its own unit: the split fails, the whole compiles
    source = (PRELUDE + cache.KERNEL_MARKER + "static long mt_helper(void) { return 40; }\n" + KERNEL % (0, 0)
              + cache.KERNEL_MARKER + 'extern "C" long mt_k1(void) { return mt_helper() + 2; }\n')
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    library, _, _ = cache.load(source, jobs=2)
    assert call(library, "mt_k0") == 4 and call(library, "mt_k1") == 42


def test_broken_code_still_reports_the_compiler_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path))
    with pytest.raises(cache.CompileError, match="not_declared"):
        cache.build(marked(2) + cache.KERNEL_MARKER + 'extern "C" long mt_bad(void) { return not_declared; }\n',
                    jobs=2)


def test_compile_jobs_follow_the_environment(monkeypatch):
    monkeypatch.setenv("MTDSL_COMPILE_JOBS", "3")
    assert cache.compile_jobs() == 3
    monkeypatch.setenv("MTDSL_COMPILE_JOBS", "0")
    assert cache.compile_jobs() == 1
    monkeypatch.setenv("MTDSL_COMPILE_JOBS", "two")
    with pytest.raises(cache.CompileError, match="MTDSL_COMPILE_JOBS"):
        cache.compile_jobs()
    monkeypatch.delenv("MTDSL_COMPILE_JOBS")
    assert cache.compile_jobs() >= 1


def test_compile_jobs_are_the_idle_cpus(monkeypatch):
    monkeypatch.delenv("MTDSL_COMPILE_JOBS", raising=False)
    monkeypatch.setattr(cache.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(cache.os, "getloadavg", lambda: (0.2, 0.0, 0.0))
    assert cache.compile_jobs() == 4
    monkeypatch.setattr(cache.os, "getloadavg", lambda: (2.4, 0.0, 0.0))
    assert cache.compile_jobs() == 2
    monkeypatch.setattr(cache.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert cache.compile_jobs() == 1
