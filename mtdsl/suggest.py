"""`did you mean ...?`: the closest known name to a misspelt one, for every layer's messages.

A utility below every layer (it imports nothing of mtdsl): the front end's diagnostics and the
runtime's errors both suggest names with it.
"""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


def closest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate most similar to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> Optional[str]:
    match = closest(name, candidates)
    return f"did you mean `{match}`?" if match is not None else None
