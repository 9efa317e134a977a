"""Damaged kernel-cache entries: every kind, truncated, bit-flipped or replaced, must be
removed and rebuilt, never served and never fatal, and the model's results stay
bit-identical to those of an undamaged cache.

Kinds: the C++ library (`.so`), its sidecar (`.json`), the renderings of both backends
(`.render.json`), the radial-spline arrays (`.npz`) and the LLVM object (`llvm/*.o`).
"""

from __future__ import annotations

import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np

from .common import Tally, main

PROGRAM = Path(__file__).resolve().parents[1] / "examples" / "spherical_expansion.mt"
BACKENDS = ("cpp", "llvm")
DAMAGES = ("truncate", "flip", "replace", "garbage")
KINDS = ("library", "sidecar", "rendering", "arrays", "llvm object")


def frames():
    from mtdsl.testing import random_systems

    return random_systems((1, 6, 8), n_systems=3, seed=5)


def run_model(backend: str, n_radial: int = 2) -> dict:
    """Every value and gradient array of the model's outputs (a fresh compile: the cache is read)."""
    import mtdsl

    model = mtdsl.compile(PROGRAM, backend=backend, species=[1, 6, 8], n_radial=n_radial, max_angular=1, cutoff=3.0)
    arrays = {}
    for name, tensor in model(frames(), gradients=["positions"]).items():
        for index, block in enumerate(tensor.blocks()):
            arrays[(name, index)] = np.array(block.values)
            for parameter, gradient in block.gradients():
                arrays[(name, index, parameter)] = np.array(gradient.values)
    return arrays


def kind_of(path: Path) -> str | None:
    from mtdsl.codegen import cache

    if path.suffix == ".json" and not path.name.endswith(".render.json") and path.with_suffix(".so").exists():
        return "sidecar"
    return cache.entry_kind(path)


def listing(directory: Path) -> dict:
    """{kind: [paths]} of the cache's entries and sidecars."""
    found: dict = {}
    for folder in (directory, directory / "llvm"):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                kind = kind_of(path)
                if kind:
                    found.setdefault(kind, []).append(path)
    return found


def damage(path: Path, how: str, rng: random.Random, others: list) -> None:
    """Damage the entry at `path` by writing a new file over it (never in place: this process may
    have the library mapped)."""
    data = path.read_bytes()
    if how == "truncate":
        damaged = data[: rng.randrange(len(data))]
    elif how == "flip":
        position = rng.randrange(len(data))
        damaged = data[:position] + bytes([data[position] ^ (1 << rng.randrange(8))]) + data[position + 1:]
    elif how == "replace" and others:
        damaged = rng.choice(others).read_bytes()
    else:
        damaged = bytes(rng.randrange(256) for _ in range(min(len(data), 4096)))
    temporary = path.with_name(path.name + ".damaged")
    temporary.write_bytes(damaged)
    os.replace(temporary, path)


class Setup:
    """A cache directory holding the entries of the model (n_radial=2) and of a variant
    (n_radial=3, whose entries serve to replace the model's), with the reference results."""

    def __init__(self, directory: Path):
        os.environ["MTDSL_CACHE_DIR"] = str(directory)
        self.directory = directory
        self.reference = {backend: run_model(backend) for backend in BACKENDS}
        mine = {kind: list(paths) for kind, paths in listing(directory).items()}
        for backend in BACKENDS:
            run_model(backend, n_radial=3)
        every = listing(directory)
        self.targets = {kind: mine.get(kind, []) for kind in KINDS}
        self.others = {kind: [p for p in every.get(kind, []) if p not in mine.get(kind, [])] for kind in KINDS}
        missing = [kind for kind in KINDS if not self.targets[kind]]
        if missing:
            raise RuntimeError(f"the model made no cache entry of kind {missing}")

    def trial(self, kind: str, how: str, rng: random.Random, tally: Tally) -> None:
        from mtdsl.codegen import cache

        path = rng.choice(self.targets[kind])
        damage(path, how, rng, self.others[kind])
        if kind == "arrays":  # the arrays are read when rendering: drop the renderings that hold them
            for rendering in self.targets["rendering"]:
                rendering.unlink(missing_ok=True)
        tally.tried += 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", cache.CacheWarning)
                results = {backend: run_model(backend) for backend in BACKENDS}
            self.warnings = [str(w.message) for w in caught if issubclass(w.category, cache.CacheWarning)]
        except Exception as error:  # noqa: BLE001 - a damaged entry must never be fatal
            tally.note("escapes", f"{kind} {how}: {type(error).__name__}: {error}")
            return
        for backend in BACKENDS:
            reference = self.reference[backend]
            same = results[backend].keys() == reference.keys() and all(
                np.array_equal(results[backend][k], reference[k]) for k in reference)
            if not same:
                tally.note("silent", f"{kind} {how}: {backend} results differ")
                return
        damaged = [str(p) for p in cache.entries(self.directory) if cache.verify_entry(p) is not None]
        if damaged:
            tally.note("silent", f"{kind} {how}: damaged entries left in place: {damaged}")


def campaign(n: int, seed: int) -> Tally:
    tally = Tally()
    rng = random.Random(seed)
    previous = os.environ.get("MTDSL_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="mtdsl-fuzz-cache-") as directory:
        try:
            setup = Setup(Path(directory))
            for k in range(n):
                kind = KINDS[k % len(KINDS)]
                how = DAMAGES[(k // len(KINDS)) % len(DAMAGES)] if k < len(KINDS) * len(DAMAGES) else rng.choice(DAMAGES)
                setup.trial(kind, how, rng, tally)
        finally:
            if previous is None:
                os.environ.pop("MTDSL_CACHE_DIR", None)
            else:
                os.environ["MTDSL_CACHE_DIR"] = previous
    return tally


if __name__ == "__main__":
    main(campaign)
