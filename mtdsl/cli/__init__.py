"""The `mtdsl` command line (`mtdsl --help`): `main` is the console script, `mtdsl.cli:main`.

`base` < `cache` (and `mtdsl/distributed/command.py`) < `commands` < `app`: what every
subcommand shares (exit statuses, `Command`, `CommandError`, argument helpers); `mtdsl cache`;
the model commands (`compile`, `run`, `export`, `inspect`, ...); the front end's commands
(`check`, `fmt`), the command table and `main`. A new subcommand's module imports `base` only
(none of these imports this package's `main`), and `commands` or `app` imports it.
"""

from .app import main

__all__ = ["main"]
