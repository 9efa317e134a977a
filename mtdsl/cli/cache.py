"""`mtdsl cache info|clear|verify`: the kernel cache for users (`mtdsl.codegen.cache`).

- `info`: the directory, its entries by kind with their sizes, and its debris;
- `clear`: remove every entry and every piece of debris (nothing else of the directory);
- `verify`: check every entry's hash (a library's against its sidecar; a rendering's
  header, hash and decoding), remove the damaged ones and the debris; exit status 1
  when some entry was damaged (they are rebuilt when next needed), 0 otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .. import atomic
from .base import EXIT_ERROR, EXIT_OK, Command
from ..codegen import cache


def add_cache(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("info", "clear", "verify"),
                        help="info: what the cache holds; clear: empty it; verify: check every entry, "
                             "remove the damaged ones")


def cmd_cache(args: argparse.Namespace) -> int:
    directory = cache.cache_dir()
    if args.action == "clear":
        removed = cache.clear(directory)
        print(f"{directory}: removed {removed} file(s)")
        return EXIT_OK
    entries = cache.entries(directory)
    debris = _debris(directory)
    if args.action == "info":
        print(f"kernel cache: {directory}" + ("" if directory.is_dir() else " (absent)"))
        kinds: dict = {}
        for path in entries:
            count, size = kinds.get(cache.entry_kind(path), (0, 0))
            kinds[cache.entry_kind(path)] = (count + 1, size + _size(path) + _size(path.with_suffix(".json"))
                                             * (path.suffix == ".so"))
        for kind, label in (("library", "libraries"), ("rendering", "renderings"), ("arrays", "arrays"),
                            ("llvm object", "llvm objects")):
            count, size = kinds.get(kind, (0, 0))
            print(f"  {label + ':':14} {count:6d}  {_human(size):>10}")
        total = sum(size for _, size in kinds.values())
        print(f"  {'total:':14} {len(entries):6d}  {_human(total):>10}")
        if debris:
            print(f"  debris: {len(debris)} file(s), {_human(sum(_size(p) for p in debris))} "
                  "(temporary files, old pickled renderings): `mtdsl cache verify` removes them")
        return EXIT_OK
    damaged = 0
    for path in entries:
        problem = cache.verify_entry(path)
        if problem is not None:
            damaged += 1
            print(f"{path}: damaged ({problem}), removed")
            for companion in (path, path.with_suffix(".json") if path.suffix == ".so" else None):
                if companion is not None:
                    companion.unlink(missing_ok=True)
    removed = sum(atomic.remove_quietly(path) for path in debris if _stale(path))
    print(f"{directory}: {len(entries)} entries checked, {damaged} damaged and removed"
          + (f", {removed} debris file(s) removed" if removed else ""))
    return EXIT_ERROR if damaged else EXIT_OK


def _debris(directory: Path) -> list[Path]:
    found = []
    for folder in (directory, directory / "llvm"):
        if folder.is_dir():
            found += [path for path in folder.iterdir() if cache.is_debris(path)]
    return sorted(found)


def _stale(path: Path) -> bool:
    """Debris that no running writer owns (a temporary file of a live process stays)."""
    name = path.name
    if name.startswith(".") and name.endswith(".tmp") or name.startswith("build-"):
        return atomic.is_stale(path)
    return True


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


COMMAND = Command("cache", "inspect, clear or verify the kernel cache", add_cache, cmd_cache)
