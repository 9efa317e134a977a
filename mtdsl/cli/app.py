"""The `mtdsl` command line.

Each subcommand is one function ``cmd_NAME(args) -> int`` plus one function
``add_NAME(subparsers)`` that declares its arguments; :data:`COMMANDS` is the
registration table, so adding `compile`, `run` or `inspect` is one entry.

Exit status: 0 success, 1 errors in the input (or a failed command), 2 usage
errors.  Errors are one clear line on stderr; a traceback is shown only with
``--debug``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from mtdsl import atomic
from mtdsl.errors import MtdslError

# the pieces every subcommand shares (mtdsl/cli/base.py)
from .base import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    CommandError,
    _parse_set,
    _read_text,
    _require_file,
)
from .commands import COMMANDS as MODEL_COMMANDS
from ..compile import CompileError, compile
from ..ir.differentiable import gradient_diagnostics
from ..lang.ast import deparse
from ..lang.check import analyse, recursion_room
from ..lang.diagnostics import render, use_color
from ..lang.parse import parse_module
from ..lang.resolve import parse_literal_text
from ..testing import EquivarianceError, assert_equivariant, random_inputs, random_systems

# ---- check ------------------------------------------------------------------------------------


def add_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="the .mt file(s) to check")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="override a hyper (repeatable)")
    parser.add_argument("--numeric", action="store_true",
                        help="also run the model on random systems, rotated and inverted, and verify that "
                             "every output transforms as its metadata says")
    parser.add_argument("--species", metavar="Z,Z,...", default="1,6,8",
                        help="atomic numbers of the random systems of --numeric (default 1,6,8)")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing when there is no error")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="diagnostics as text on stderr (default), or as a JSON list on stdout")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the diagnostics (default: on a terminal)")


def _color(args: argparse.Namespace, stream) -> bool:
    choice = getattr(args, "color", "auto")
    if choice == "always":
        return True
    if choice == "never":
        return False
    return use_color(stream)


def cmd_check(args: argparse.Namespace) -> int:
    overrides = _parse_set(args.set)
    collected: list = []
    status = EXIT_OK
    for file in args.files:
        try:
            status = max(status, _check_file(args, file, overrides, collected))
        except CommandError as error:
            if len(args.files) == 1:
                raise
            print(f"mtdsl check: error: {error}", file=sys.stderr)
            status = max(status, error.status)
    if args.format == "json":
        print(json.dumps(collected, indent=2))
    return status


_JSON_FIELDS = ("code", "severity", "file", "line", "col", "end_line", "end_col", "message", "hint")


def _check_file(args: argparse.Namespace, file: str, overrides: dict, collected: list) -> int:
    _require_file(file)
    program, diagnostics, sources = analyse(file, overrides)
    if program is not None and not any(d.is_error for d in diagnostics):
        diagnostics = diagnostics + gradient_diagnostics(program)  # E309, before anything runs
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if args.format == "json":
        collected.extend({name: getattr(d, name) for name in _JSON_FIELDS} for d in diagnostics)
    else:
        color = _color(args, sys.stderr)
        for diagnostic in diagnostics:
            print(render(diagnostic, sources=sources, color=color), file=sys.stderr)
    if errors:
        if args.format == "text":
            print(f"{file}: {errors} error(s), {warnings} warning(s)", file=sys.stderr)
        return EXIT_ERROR
    if args.numeric:
        status = _check_numeric(args, file, program)
        if status != EXIT_OK:
            return status
    if not args.quiet and args.format == "text":
        extra = f", {warnings} warning(s)" if warnings else ""
        outputs = ", ".join(program.outputs) if program is not None and program.outputs else "none"
        print(f"{file}: ok{extra} (outputs: {outputs})")
    return EXIT_OK


def _check_numeric(args: argparse.Namespace, file: str, program) -> int:
    """`check --numeric`: compile, run on random systems and on their rotated
    and inverted copies, and compare with the transformation the metadata declares."""
    try:
        species = [int(z) for z in args.species.split(",") if z.strip()]
    except ValueError:
        raise CommandError(f"--species expects atomic numbers separated by commas, got {args.species!r}",
                           EXIT_USAGE) from None
    import numpy as np

    hypers = {name: parse_literal_text(value) for name, value in _parse_set(args.set).items()}
    try:
        model = compile(file, species=species, **hypers)
    except CompileError as error:
        print(str(error), file=sys.stderr)
        return EXIT_ERROR
    try:
        systems = random_systems(species)
        # random parameters: a model with its initial zeros would be trivially invariant
        rng = np.random.default_rng(0)
        for name, values in model.parameters.items():
            model.parameters[name] = rng.normal(size=np.shape(values))
        assert_equivariant(model, systems, **random_inputs(model.module, systems))
    except EquivarianceError as error:
        print(f"{file}: numeric check failed: {error}", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(f"{file}: numeric check ok (rotations and inversion, species {species})")
    return EXIT_OK


# ---- fmt --------------------------------------------------------------------------------------------


def add_fmt(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="the .mt file(s) to format")
    parser.add_argument("--in-place", "-i", action="store_true", help="rewrite the file instead of printing")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file is not canonically formatted; change nothing")


def _atomic_write(path: str, text: str) -> None:
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    handle, temporary = atomic.temporary(path)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def cmd_fmt(args: argparse.Namespace) -> int:
    if len(args.files) > 1 and not (args.in_place or args.check):
        raise CommandError("several files: use --in-place or --check", EXIT_USAGE)
    status = EXIT_OK
    for file in args.files:
        status = max(status, _fmt_file(args, file))
    return status


def _fmt_file(args: argparse.Namespace, file: str) -> int:
    text = _read_text(file)
    with recursion_room():
        module, diagnostics = parse_module(text, file)
        formatted = deparse(module) if not diagnostics else ""
    if diagnostics:
        color = _color(args, sys.stderr)
        for diagnostic in diagnostics:
            print(render(diagnostic, sources={file: text}, color=color), file=sys.stderr)
        print(f"{file}: not formatted: {len(diagnostics)} syntax error(s)", file=sys.stderr)
        return EXIT_ERROR
    if args.check:
        if formatted != text:
            print(f"{file}: would be reformatted", file=sys.stderr)
            return EXIT_ERROR
        return EXIT_OK
    if args.in_place:
        if formatted != text:
            _atomic_write(file, formatted)
        return EXIT_OK
    sys.stdout.write(formatted)
    return EXIT_OK


# ---- the registration table and main ------------------------------------------------------------------

COMMANDS: list[Command] = [
    Command("check", "check a .mt file: syntax, dimensions, equivariance", add_check, cmd_check),
    Command("fmt", "print a .mt file in canonical form", add_fmt, cmd_fmt),
]


def register(command: Command) -> None:
    """Add a subcommand (used by other modules, e.g. `compile`, `run`, `inspect`)."""
    COMMANDS[:] = [c for c in COMMANDS if c.name != command.name] + [command]


def all_commands() -> list[Command]:
    """The front end's commands, then the model commands of :mod:`mtdsl.cli.commands`
    (`compile`, `run`, `inspect`)."""
    commands = list(COMMANDS)
    known = {command.name for command in commands}
    return commands + [command for command in MODEL_COMMANDS if command.name not in known]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # noqa: D401 - argparse API
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mtdsl", description="A language and compiler for equivariant atomistic ML "
                                               "on metatensor TensorMaps.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in all_commands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code) if isinstance(exit_.code, int) else EXIT_USAGE
    if not getattr(args, "_run", None):
        parser.print_usage(sys.stderr)
        print("mtdsl: error: a command is required", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args._run(args)
    except CommandError as error:
        print(f"mtdsl {args.command}: error: {error}", file=sys.stderr)
        return error.status
    except (MtdslError, OSError) as error:  # bad input: a file, a structure, a model run
        if args.debug:
            raise
        print(f"mtdsl {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("mtdsl: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - one line, unless --debug
        if args.debug:
            raise
        print(f"mtdsl {args.command}: internal error: {type(error).__name__}: {error} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR

