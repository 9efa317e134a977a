"""Atomic writes that leave no debris.

A writer writes a temporary file next to its target and renames it onto the
target when complete, so a reader sees the old file or the new one, never half
of one. The temporary file is named `.<target name>.<host>-<pid>.<random>.tmp`:

- a writer that fails (an exception, Ctrl-C) removes it;
- a writer killed outright (SIGKILL, a node lost) cannot, so every write first
  removes the stale temporary files of the same target: those of a process of
  this host that no longer runs, and any older than `STALE_AFTER` seconds (other
  hosts of a shared file system, recycled process ids, older name formats).

Used by `.mts` saves (`mtdsl.io.mts`), the kernel cache (`mtdsl.codegen.cache`)
and `mtdsl fmt -i`; a shard writer should use it too.
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
        if name.startswith(prefix) and _stale(os.path.join(parent, name), name[len(prefix):]):
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
            if _stale(path, name[len(prefix):]) and remove_quietly(path):
                removed += 1
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


def _stale(path: str, rest: str) -> bool:
    """Whether the temporary `path` (`rest`: its name after the target's, e.g.
    `host-1234.abcd.tmp`) belongs to no running writer."""
    try:
        age = time.time() - os.lstat(path).st_mtime
    except OSError:
        return False
    if age > STALE_AFTER:
        return True
    match = re.match(r"([A-Za-z0-9]+)-(\d+)\.", rest)
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
