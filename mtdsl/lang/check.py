"""The front end's entry points: check a `.mt` file, or get its checked program.

``check(path)`` parses the file and everything it uses, resolves names, and
runs the dimension and equivariance checks; it returns every diagnostic,
sorted by position.  It never raises on bad input: a failure inside the
checker itself is reported as an internal error diagnostic (code E000) rather
than a traceback.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import contextmanager
from typing import Optional

from . import program as P
from .ast import Span
from .check_dims import check_dims
from .diagnostics import Diagnostic, Reporter
from .equivariance import check_equivariance
from .resolve import resolve_full

#: the passes recurse once per nesting level of an expression; the parser caps
#: nesting (parse.MAX_DEPTH), and this limit leaves room for that
_RECURSION_LIMIT = 20_000


@contextmanager
def recursion_room():
    """Room for the recursive passes, and no cyclic garbage collection while
    they build many small objects (the checker makes no reference cycles that
    outlive it; collection resumes afterwards)."""
    previous = sys.getrecursionlimit()
    if previous < _RECURSION_LIMIT:
        sys.setrecursionlimit(_RECURSION_LIMIT)
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)
        if collecting:
            gc.enable()


def analyse(path_or_source, overrides: Optional[dict] = None, *, file: Optional[str] = None
            ) -> tuple[Optional[P.Program], list[Diagnostic], dict]:
    """Resolve and check a file (``path_or_source`` is its path), or source
    text when ``file`` (its name in diagnostics) is given.  Returns (program or
    None, sorted diagnostics, {file: source text}).  The program is returned even when there are errors
    (for tools); callers that lower it must first check there are none."""
    reporter = Reporter()
    sources: dict = {}
    program = None
    main = file or (os.fspath(path_or_source) if isinstance(path_or_source, os.PathLike) else str(path_or_source))
    with recursion_room():
        try:
            resolution, reporter = resolve_full(path_or_source, overrides, file=file, reporter=reporter,
                                                is_path=file is None)
            if resolution is not None:
                program = resolution.program
                sources = resolution.sources
                check_dims(program, reporter)
                check_equivariance(program, reporter)
        except RecursionError:
            reporter.error("E001", Span(main if "\n" not in main else "<string>", 1, 1, 1, 2),
                           "program nested too deeply to check", hint="split expressions with `let`")
        except Exception as error:  # noqa: BLE001 - never a traceback for the user
            reporter.error("E000", Span(main if "\n" not in main else "<string>", 1, 1, 1, 2),
                           f"internal error of the checker: {type(error).__name__}: {error}",
                           hint="please report this with the program that caused it")
    return program, reporter.sorted(), sources


def check(path, overrides: Optional[dict] = None) -> list[Diagnostic]:
    """Every diagnostic of the `.mt` file at ``path`` (errors and warnings), sorted."""
    _, diagnostics, _ = analyse(os.fspath(path) if isinstance(path, os.PathLike) else path, overrides)
    return diagnostics


def check_source(text: str, file: str = "<string>", overrides: Optional[dict] = None) -> list[Diagnostic]:
    """Like :func:`check`, for source text (`use` paths are relative to ``file``)."""
    _, diagnostics, _ = analyse(text, overrides, file=file)
    return diagnostics


def load(path, overrides: Optional[dict] = None) -> P.Program:
    """The checked program of ``path``; raises :class:`CheckError` when there is an error."""
    program, diagnostics, _ = analyse(os.fspath(path) if isinstance(path, os.PathLike) else path, overrides)
    errors = [d for d in diagnostics if d.is_error]
    if errors or program is None:
        raise CheckError(errors or diagnostics)
    return program


class CheckError(Exception):
    """A program has errors; ``diagnostics`` holds all of them."""

    def __init__(self, diagnostics: list[Diagnostic]):
        first = diagnostics[0] if diagnostics else None
        more = f" (and {len(diagnostics) - 1} more)" if len(diagnostics) > 1 else ""
        super().__init__(f"{first}{more}" if first else "the program has errors")
        self.diagnostics = diagnostics
