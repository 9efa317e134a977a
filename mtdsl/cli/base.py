"""What every subcommand of the `mtdsl` command line shares: exit statuses, the error to report
as one line, the `Command` record, and the argument helpers.

Below both `mtdsl.cli.app` (the front end's commands and `main`) and `mtdsl.cli.commands` (the
model commands), and below each feature's command (`mtdsl.cli.cache`), so that none imports
another for them.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Callable, Optional

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


class CommandError(Exception):
    """A failure to report as one line (exit status 1, or ``status``)."""

    def __init__(self, message: str, status: int = EXIT_ERROR):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _parse_set(values: Optional[list[str]]) -> dict:
    overrides = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CommandError(f"--set expects NAME=VALUE, got {item!r}", EXIT_USAGE)
        overrides[name.strip()] = value.strip()
    return overrides


def _require_file(path: str) -> None:
    if not os.path.exists(path):
        raise CommandError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CommandError(f"{path}: is a directory")


def _read_text(path: str) -> str:
    _require_file(path)
    if not os.path.isfile(path):  # a device or a pipe: read forever
        raise CommandError(f"{path}: not a regular file")
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from error
