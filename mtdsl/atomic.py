"""Atomic writes that leave no debris.

A writer writes a temporary file next to its target and renames it onto the
target when complete, so a reader sees the old file or the new one, never half
of one. The temporary file is named `.<target name>.<host>-<pid>.<random>.tmp`:

- a writer that fails (an exception, Ctrl-C) removes it;
- a writer killed outright (SIGKILL, a node lost) cannot, so every write first
  removes the stale temporary files of the same target: those of a process of
  this host that no longer runs, and any older than `STALE_AFTER` seconds (other
  hosts of a shared file system, recycled process ids, older name formats).

Used by `.mts` saves (`mtdsl.io.mts`), the kernel cache (`mtdsl.codegen.cache`,
which also cleans its whole directory before each build: its keys change with the
source) and `mtdsl fmt -i`; a shard writer should use it too.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time

#: a temporary file this old is stale whoever wrote it (seconds)
STALE_AFTER = 24 * 3600
#: temporary files of the formats before this module (`mkstemp`'s random part only) are
#: stale after this long (seconds): their writer cannot be told
STALE_UNKNOWN_AFTER = 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def _tag() -> str:
    return f"{_host()}-{os.getpid()}"


def temporary(target, suffix: str = ".tmp") -> tuple[int, str]:
    """`(fd, path)` of a new temporary file for `target` in its directory, after
    removing the stale ones of earlier writers (`clean_stale`)."""
    target = os.fspath(target)
    directory = os.path.dirname(os.path.abspath(target))
    clean_stale(target, suffix)
    return tempfile.mkstemp(prefix=f".{os.path.basename(target)}.{_tag()}.", suffix=suffix, dir=directory)


def temporary_directory(parent, prefix: str) -> str:
    """A new directory `<prefix><host>-<pid>.<random>` in `parent` (for a build that
    writes several files), after removing the stale ones of the same prefix."""
    parent = os.fspath(parent)
    for name in _listdir(parent):
        if name.startswith(prefix) and is_stale(os.path.join(parent, name)):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{_tag()}.", dir=parent)


def write_bytes(target, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `target` atomically (permissions `mode`, else the umask's)."""
    fd, path = temporary(target)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            if mode is not None:
                os.fchmod(stream.fileno(), mode)
        os.replace(path, target)
    except BaseException:
        remove_quietly(path)
        raise


def clean_stale(target, suffix: str = ".tmp") -> int:
    """Remove the stale temporary files of `target`; how many were removed."""
    target = os.fspath(target)
    directory = os.path.dirname(os.path.abspath(target))
    prefix = f".{os.path.basename(target)}."
    removed = 0
    for name in _listdir(directory):
        if name.startswith(prefix) and name.endswith(suffix):
            path = os.path.join(directory, name)
            if is_stale(path) and remove_quietly(path):
                removed += 1
    return removed


def clean_stale_in(directory, build_prefix: str = "build-") -> int:
    """Remove the stale temporary files (of any target) and build folders of `directory`,
    for a directory that only this package writes (the kernel cache, whose keys change)."""
    directory = os.fspath(directory)
    removed = 0
    for name in _listdir(directory):
        temporary = name.startswith(".") and name.endswith(".tmp") or name.startswith(build_prefix)
        if temporary and is_stale(os.path.join(directory, name)):
            removed += remove_quietly(os.path.join(directory, name))
    return removed


def remove_quietly(path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)
        return True
    except OSError:
        return False


def _listdir(directory: str) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


#: the owner part of a temporary name: `<host>-<pid>.<random>`, then `.tmp` for a file
_OWNER = re.compile(r"([A-Za-z0-9]+)-(\d+)\.[A-Za-z0-9_]+(?:\.tmp)?$")


def is_stale(path) -> bool:
    """Whether the temporary file or build folder `path` belongs to no running writer: its
    process (named in its name) is gone from this host, or it is older than `STALE_AFTER`
    (`STALE_UNKNOWN_AFTER` when its name does not say its writer)."""
    path = os.fspath(path)
    try:
        age = time.time() - os.lstat(path).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER:
        return True
    match = _OWNER.search(os.path.basename(path))
    if match is None:
        return age > STALE_UNKNOWN_AFTER
    host, pid = match.group(1), int(match.group(2))
    if host != _host():
        return False
    if pid == os.getpid():
        return False  # this process's own writes are in progress or cleaned by their writer
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except OSError:
        return True
    return True
