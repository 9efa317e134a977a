"""Diagnostics: the errors and warnings of the front end, and their rendering.

A :class:`Diagnostic` carries an error code (LANGUAGE.md §4), the position of
the offending span, a message, and optionally a hint.  :func:`render` prints it
as::

    model.mt:12:5: error[E201]: index `n1` of dimension `range(8)` bound to a slot of `radial`
       12 |     rho{o3_lambda = l}[i, m, n1]
          |                              ^^
      hint: expected an index of `radial`, found one of `range(8)`

Colour (ANSI) is used only when asked, which the CLI does on a terminal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

from ..suggest import closest, did_you_mean  # noqa: F401 - importable from here as before
from .ast import Span

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding.  ``line``/``col`` are 1-based; ``end_line``/``end_col`` mark
    the end of the span (``end_col`` exclusive)."""

    code: str
    file: str
    line: int
    col: int
    message: str
    severity: str = ERROR
    hint: Optional[str] = None
    end_line: int = 0
    end_col: int = 0

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    @classmethod
    def at(cls, span: Span, code: str, message: str, *, hint: Optional[str] = None,
           severity: str = ERROR) -> "Diagnostic":
        return cls(code, span.file, span.line, span.col, message, severity, hint,
                   span.end_line, span.end_col)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity}[{self.code}]: {self.message}"

    def render(self, *, sources: Optional[dict[str, str]] = None, color: bool = False) -> str:
        """`render(self, ...)`: lets `mtdsl.errors.CompileError` render without importing this module."""
        return render(self, sources=sources, color=color)


class Reporter:
    """Collects diagnostics; the checkers append to one shared reporter."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple] = set()
        self.muted = 0

    def error(self, code: str, span: Span, message: str, hint: Optional[str] = None) -> None:
        self.add(Diagnostic.at(span, code, message, hint=hint))

    def warning(self, code: str, span: Span, message: str, hint: Optional[str] = None) -> None:
        self.add(Diagnostic.at(span, code, message, hint=hint, severity=WARNING))

    def add(self, diagnostic: Diagnostic) -> None:
        if self.muted:
            return
        key = (diagnostic.code, diagnostic.file, diagnostic.line, diagnostic.col, diagnostic.message)
        if key not in self._seen:
            self._seen.add(key)
            self.diagnostics.append(diagnostic)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def sorted(self) -> list[Diagnostic]:
        return sort_diagnostics(self.diagnostics)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=lambda d: (d.file, d.line, d.col, d.code))


# ---- rendering -----------------------------------------------------------------------

_RED = "\033[1;31m"
_YELLOW = "\033[1;33m"
_BLUE = "\033[1;34m"
_BOLD = "\033[1m"
_RESET = "\033[0m"


def _read_lines(file: str, sources: Optional[dict[str, str]]) -> Optional[list[str]]:
    if sources is not None and file in sources:
        return sources[file].splitlines()
    try:
        with open(file, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        return None


def render(diagnostic: Diagnostic, *, sources: Optional[dict[str, str]] = None,
           color: bool = False) -> str:
    """The diagnostic as text: the header line, the source line with a caret
    under the span, and the hint.  ``sources`` maps file names to their text
    (files not in it are read from disk when they exist)."""

    def paint(text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if color else text

    style = _RED if diagnostic.is_error else _YELLOW
    header = (
        f"{paint(f'{diagnostic.file}:{diagnostic.line}:{diagnostic.col}:', _BOLD)} "
        f"{paint(f'{diagnostic.severity}[{diagnostic.code}]:', style)} {diagnostic.message}"
    )
    out = [header]
    lines = _read_lines(diagnostic.file, sources)
    if lines is not None and 1 <= diagnostic.line <= len(lines):
        text = lines[diagnostic.line - 1].replace("\t", " ")
        number = str(diagnostic.line)
        gutter = " " * len(number)
        start = max(diagnostic.col, 1)
        if diagnostic.end_line == diagnostic.line and diagnostic.end_col > start:
            width = diagnostic.end_col - start
        else:
            width = max(len(text) - start + 1, 1)
        width = max(1, min(width, max(len(text) - start + 1, 1)))
        out.append(f" {paint(number, _BLUE)} {paint('|', _BLUE)} {text}")
        out.append(f" {gutter} {paint('|', _BLUE)} {' ' * (start - 1)}{paint('^' * width, style)}")
    if diagnostic.hint:
        out.append(f"  {paint('hint:', _BOLD)} {diagnostic.hint}")
    return "\n".join(out)


def render_all(diagnostics: Sequence[Diagnostic], *, sources: Optional[dict[str, str]] = None,
               color: bool = False) -> str:
    return "\n".join(render(d, sources=sources, color=color) for d in diagnostics)


def use_color(stream) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):
        return False
