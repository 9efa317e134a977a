"""`mtdsl cache info|clear|verify` (mtdsl/cli/cache.py)."""

from __future__ import annotations

import numpy as np

from mtdsl.cli import main
from mtdsl.codegen import cache


def _fill(directory):
    library, _ = cache.build('extern "C" long mt_cli(void) { return 3; }\n')
    cache.cached_arrays("table", (1, 2.5), lambda: {"x": np.arange(5.0)})
    cache.store_rendering("f" * 64, ("text", {"a": (1, 2.0)}))
    return library


def test_info_verify_clear(tmp_path, monkeypatch, capsys):
    directory = tmp_path / "cache"
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(directory))
    library = _fill(directory)
    (directory / "notes.txt").write_text("not ours")
    (directory / ".x.so.host-1.abcdefgh.tmp").write_bytes(b"debris")

    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert str(directory) in out and "libraries:" in out and "debris: 1 file(s)" in out
    assert [line.split(":")[1].split()[0] for line in out.splitlines()[1:5]] == ["1", "1", "1", "0"]

    assert main(["cache", "verify"]) == 0
    assert "3 entries checked, 0 damaged" in capsys.readouterr().out

    rendering = directory / f"{'f' * 64}.render.json"
    rendering.write_bytes(rendering.read_bytes().replace(b"2.0", b"3.0"))  # one changed digit
    assert main(["cache", "verify"]) == 1
    out = capsys.readouterr().out
    assert f"{rendering}: damaged (hash mismatch), removed" in out and not rendering.exists()
    assert cache.load_rendering("f" * 64) is None
    assert main(["cache", "verify"]) == 0

    assert main(["cache", "clear"]) == 0
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]
    assert not library.exists()


def test_info_of_a_missing_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(tmp_path / "none"))
    assert main(["cache", "info"]) == 0
    assert "(absent)" in capsys.readouterr().out
