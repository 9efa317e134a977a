"""Every kind of kernel-cache entry, damaged, is removed with a warning and rebuilt, never
served and never fatal, and the results stay bit-identical (issue 17; fuzz/cache.py)."""

from __future__ import annotations

import json
import random
import zlib
import pytest

from fuzz import cache as campaign
from fuzz.common import Tally
from mtdsl.codegen import cache


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    monkeypatch = pytest.MonkeyPatch()
    # one translation unit, whatever the load: how many g++ processes share a library's kernels
    # (codegen/cache.py: compile_jobs) changes its bytes, and a rebuild must give the same ones
    monkeypatch.setenv("MTDSL_COMPILE_JOBS", "1")
    directory = tmp_path_factory.mktemp("cache")
    try:
        yield campaign.Setup(directory)
    finally:
        monkeypatch.undo()


@pytest.fixture(autouse=True)
def _this_cache(setup, monkeypatch):
    monkeypatch.setenv("MTDSL_CACHE_DIR", str(setup.directory))


@pytest.mark.parametrize("how", ["truncate", "flip", "replace"])
@pytest.mark.parametrize("kind", campaign.KINDS)
def test_damaged_entry_is_rebuilt_with_identical_results(setup, kind, how):
    tally = Tally()
    # a seed of its own per case, the same in every process (hash() of a str is salted per process)
    rng = random.Random(zlib.crc32(f"{kind}/{how}".encode()))
    path = rng.choice(setup.targets[kind])
    before = path.read_bytes()
    setup.trial(kind, how, rng, tally)
    assert tally.tried == 1 and tally.clean, tally.examples
    assert path.read_bytes() == before  # rebuilt whole, the same bytes
    assert cache.verify_entry(path if kind != "sidecar" else path.with_suffix(".so")) is None
    assert setup.warnings and "damaged" in setup.warnings[0]


def test_entries_are_data_not_pickles(setup):
    kinds = {cache.entry_kind(path) for path in cache.entries(setup.directory)}
    assert kinds == {"library", "rendering", "arrays", "llvm object"}
    assert not list(setup.directory.rglob("*.pkl"))
    for path in setup.directory.glob("*.render.json"):
        header, payload = path.read_bytes().split(b"\n", 1)
        assert json.loads(header)["format"] == "mtdsl-cache-entry"
        json.loads(payload.split(b"\n", 1)[0])  # the rendering is JSON, then its arrays' raw bytes


def test_decoder_builds_only_allowed_classes():
    from mtdsl.codegen import serialize

    for text in ('{"$c": "os:system", "id": 0, "f": {}}', '{"$c": "subprocess:Popen", "id": 0, "f": {}}',
                 '{"$c": "mtdsl.ir.nodes:__class__", "id": 0, "f": {}}', '{"$a": "O", "s": [1], "o": 0}',
                 '{"$a": "<f8", "s": [4], "o": 0}', '{"$r": 3}', "[" * 100_000):
        with pytest.raises(serialize.DecodingError):
            serialize.decode(text.encode() + b"\n" + bytes(8))
    with pytest.raises(serialize.EncodingError):
        serialize.encode(object())
