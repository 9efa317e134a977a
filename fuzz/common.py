"""What a campaign counts, and the command line every campaign module shares."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys


@dataclasses.dataclass
class Tally:
    """The outcome of a campaign.

    - ``tried``: inputs run;
    - ``errors``: refused with a clear error (an `MtdslError` or a diagnostic) — the right outcome
      for a broken input;
    - ``escapes``: any other exception (an internal error, a traceback for the user);
    - ``crashes``: the process died (a signal, the memory limit); counted by `fuzz.run`;
    - ``silent``: accepted, and the result is wrong (differs from the reference, or non-finite).
    """

    tried: int = 0
    errors: int = 0
    escapes: int = 0
    crashes: int = 0
    silent: int = 0
    examples: list = dataclasses.field(default_factory=list)  # the first few escapes and silent ones

    def note(self, kind: str, text: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {text[:300]}")

    def add(self, other: "Tally") -> None:
        for field in ("tried", "errors", "escapes", "crashes", "silent"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        self.examples += other.examples[: max(0, 5 - len(self.examples))]

    @property
    def clean(self) -> bool:
        return self.escapes == self.crashes == self.silent == 0


def main(campaign) -> None:
    """`python -m fuzz.NAME --n N --seed S`: run the campaign, print its tally as one JSON line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tally = campaign(args.n, args.seed)
    print(json.dumps(dataclasses.asdict(tally)))
    sys.stdout.flush()
