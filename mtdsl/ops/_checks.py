"""`checks_enabled`, `unsafe_disable_checks`, `unsafe_enable_checks`: switch metadata checks.

With checks disabled, the binary operations (`add`, `subtract`, `multiply`,
`divide`) trust that their inputs have the same samples, components, properties
and gradients, as in metatensor-operations. Keys are always matched. The
environment variable ``METATENSOR_UNSAFE_DISABLE_CHECKS`` (true/1/yes/on) starts
with checks disabled.
"""

from __future__ import annotations

import os


def _parse_bool_env_var(key: str) -> bool:
    return os.environ.get(key, "").lower() in ("true", "1", "yes", "on")


_CHECKS_ENABLED = not _parse_bool_env_var("METATENSOR_UNSAFE_DISABLE_CHECKS")


def checks_enabled() -> bool:
    """Whether the operations check their inputs' metadata."""
    return _CHECKS_ENABLED


class _SetChecks:
    """Set the checks on creation; as a context manager, restore the previous state on exit."""

    def __init__(self, state: bool):
        global _CHECKS_ENABLED
        self.original_check_state = _CHECKS_ENABLED
        self.state = state
        _CHECKS_ENABLED = state

    def __repr__(self) -> str:
        return f"checks {'en' if self.state else 'dis'}abled"

    def __enter__(self):
        global _CHECKS_ENABLED
        _CHECKS_ENABLED = self.state
        return self

    def __exit__(self, type, value, traceback):
        global _CHECKS_ENABLED
        _CHECKS_ENABLED = self.original_check_state


class unsafe_enable_checks(_SetChecks):
    """Enable the metadata checks (the default), permanently or within a ``with`` block."""

    def __init__(self):
        super().__init__(state=True)


class unsafe_disable_checks(_SetChecks):
    """Disable the metadata checks, permanently or within a ``with`` block."""

    def __init__(self):
        super().__init__(state=False)
