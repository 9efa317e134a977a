"""No debris (issue 17): temporary files of atomic writes are removed when their writer fails,
and those of writers killed by SIGKILL are removed by the next write to the same target."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import mtdsl
from mtdsl import atomic
from mtdsl.tensor import Labels, TensorBlock, TensorMap


def _tensor(rows: int) -> TensorMap:
    block = TensorBlock(np.random.default_rng(0).normal(size=(rows, 8)),
                        Labels(["system"], np.arange(rows, dtype=np.int32).reshape(-1, 1)), [],
                        Labels(["n"], np.arange(8, dtype=np.int32).reshape(-1, 1)))
    return TensorMap(Labels(["k"], np.array([[0]], np.int32)), [block])


def _temporaries(directory, target: str) -> list:
    """The temporary files of `target` in `directory` (of any target when `target` is empty)."""
    prefix = f".{target}." if target else "."
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp"))


def _killed_while_writing(script: str, directory, target: str) -> None:
    """Run `script` in a child, SIGKILL it (and its children) once it has a temporary file for
    `target` in `directory`."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _temporaries(directory, target) and not list(directory.glob("build-*")):
            assert child.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def test_a_killed_save_leaves_nothing_after_the_next_save(tmp_path):
    target = tmp_path / "big.mts"
    mtdsl.save(target, _tensor(3))
    script = f"""
        import numpy as np, mtdsl
        from mtdsl.tensor import Labels, TensorBlock, TensorMap
        rows = 4_000_000
        block = TensorBlock(np.ones((rows, 8)), Labels(["system"], np.arange(rows, dtype=np.int32).reshape(-1, 1)),
                            [], Labels(["n"], np.arange(8, dtype=np.int32).reshape(-1, 1)))
        while True:
            mtdsl.save({str(target)!r}, TensorMap(Labels(["k"], np.array([[0]], np.int32)), [block]))
    """
    for _ in range(3):
        _killed_while_writing(script, tmp_path, "big.mts")
    assert _temporaries(tmp_path, "big.mts")  # the killed writers' debris
    assert len(mtdsl.load(target).block(0).values) in (3, 4_000_000)  # old or new, never broken
    mtdsl.save(target, _tensor(5))
    assert _temporaries(tmp_path, "big.mts") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.mts"]
    assert len(mtdsl.load(target).block(0).values) == 5


def test_a_failed_write_removes_its_temporary_file(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(TypeError):
        atomic.write_bytes(target, "not bytes")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_removes_its_temporary_file(tmp_path, monkeypatch):
    from mtdsl.io import mts

    def full_disk(write, data, *options):  # the disk fills up half way through
        write(b"PK" * 1000)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mts, "_write_to", full_disk)
    with pytest.raises(OSError, match="No space"):
        mtdsl.save(tmp_path / "y.mts", _tensor(2))
    assert list(tmp_path.iterdir()) == []


def test_live_writers_are_left_alone(tmp_path):
    target = tmp_path / "shared.bin"
    fd, mine = atomic.temporary(target)  # this process: a write in progress
    os.close(fd)
    other = tmp_path / f".shared.bin.otherhost-{os.getpid()}.abcdefgh.tmp"  # another host: not ours to judge
    other.write_bytes(b"x")
    atomic.write_bytes(target, b"data")
    assert os.path.exists(mine) and other.exists() and target.read_bytes() == b"data"
    old = time.time() - atomic.STALE_AFTER - 10
    os.utime(other, (old, old))
    atomic.write_bytes(target, b"data")
    assert not other.exists()  # older than a day: stale whoever wrote it


def test_a_killed_cache_build_leaves_nothing_after_the_next_build(tmp_path, monkeypatch):
    from mtdsl.codegen import cache

    directory = tmp_path / "cache"
    slow = tmp_path / "slow-cxx"
    slow.write_text('#!/bin/sh\n[ "$1" = --version ] && exit 0\nsleep 60\n')
    slow.chmod(0o755)
    source = 'extern "C" long mt_debris(void) { return 7; }\n'
    script = f"""
        import os
        os.environ["MTDSL_CACHE_DIR"] = {str(directory)!r}
        os.environ["CXX"] = {str(slow)!r}
        from mtdsl.codegen import cache
        cache.build({source!r})
    """
    directory.mkdir()
    key = None
    _killed_while_writing(script, directory, "")  # any temporary file or build folder
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(directory))
    assert [p for p in directory.iterdir() if p.name.startswith((".", "build-"))]  # the killed build's debris
    library, hit = cache.build(source)
    key = library.stem
    assert not hit and sorted(p.name for p in directory.iterdir()) == [f"{key}.json", f"{key}.so"]
