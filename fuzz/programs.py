"""Mutated `.mt` programs through the checker: no input may reach `E000` or a traceback.

Mutations of the example programs, token-wise: delete, swap, duplicate, replace with a
keyword or symbol, and hostile ones (integer literals of thousands of digits, control
bytes and NUL, huge values for every integer, impossible `use` paths, huge `--set`
overrides).
"""

from __future__ import annotations

import random
import re
import shutil
import tempfile
from pathlib import Path

from .common import Tally, main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PROGRAMS = ["spherical_expansion.mt", "soap_power_spectrum.mt", "soap_energy.mt", "equivariant_convolution.mt"]
TOKEN = re.compile(r'"[^"\n]*"|[A-Za-z_][A-Za-z0-9_]*|\d+\.\d*|\d+|==|!=|<=|>=|#[^\n]*|\S')
VOCABULARY = [
    "model", "use", "hyper", "input", "pairs", "dim", "index", "param", "let", "tensor", "output", "convention",
    "keys", "samples", "components", "properties", "where", "sum", "in", "with", "gradients", "and", "or", "not",
    "S", "P", "i", "l", "m", "n", "p", "range", "irrep", "atoms", "species", "sph", "cg", "exp", "neighbors",
    "0", "1", "2", "1.5", "=", "==", "+", "-", "*", "/", "(", ")", "[", "]", "{", "}", ",", ":", "\n",
]
HOSTILE = [
    "9" * 4301, "1" * 25, "7" * 50_000, "\x00", "\x01", "\x7f", "\x1b[31m", "\ud800", "\t", "1e400", "-" + "9" * 5000,
    "2147483648", "9223372036854775807", "9223372036854775808", "1" + "0" * 400, "0" * 5000,
    'use "a\x00b.mt"', 'use "\x01"', 'use "/dev/zero"', 'use "."', 'use "' + "a/" * 2000 + '"',
    "hyper n_radial = 2147483648", "dim big = range(99999999999)", "index q : irrep(9223372036854775807)",
]
HUGE = ["2147483648", "9223372036854775807", "99999999999", "1" + "0" * 30, "100001", "-5", "1e308", "nan"]


def mutate(text: str, rng: random.Random) -> tuple[str, dict]:
    pieces = [m.group(0) for m in TOKEN.finditer(text)]
    overrides = {}
    for _ in range(rng.randint(1, 4)):
        if not pieces:
            break
        k = rng.randrange(len(pieces))
        operation = rng.choice(["delete", "swap", "duplicate", "replace", "hostile", "insert", "numbers", "set"])
        if operation == "delete":
            del pieces[k]
        elif operation == "swap":
            j = rng.randrange(len(pieces))
            pieces[k], pieces[j] = pieces[j], pieces[k]
        elif operation == "duplicate":
            pieces.insert(k, pieces[k])
        elif operation == "replace":
            pieces[k] = rng.choice(VOCABULARY)
        elif operation == "hostile":
            pieces[k] = rng.choice(HOSTILE)
        elif operation == "insert":
            pieces.insert(k, "\n" + rng.choice(HOSTILE) + "\n")
        elif operation == "numbers":
            pieces = [rng.choice(HUGE[:5]) if p.isdigit() else p for p in pieces]
        else:
            hypers = re.findall(r"hyper\s+(\w+)", text)
            if hypers:
                overrides[rng.choice(hypers)] = rng.choice(HUGE + ["\x00", "9" * 5000, "[1, 2]", '"x"'])
    return " ".join(pieces), overrides


def campaign(n: int, seed: int) -> Tally:
    from mtdsl.lang import check_source

    rng = random.Random(seed)
    tally = Tally()
    texts = {name: (EXAMPLES / name).read_text() for name in PROGRAMS}
    with tempfile.TemporaryDirectory(prefix="mtdsl-fuzz-programs-") as directory:
        for name in PROGRAMS:  # so that `use` of a sibling resolves
            shutil.copy(EXAMPLES / name, Path(directory) / name)
        for _ in range(n):
            name = rng.choice(PROGRAMS)
            mutated, overrides = mutate(texts[name], rng)
            tally.tried += 1
            try:
                diagnostics = check_source(mutated, str(Path(directory) / name), overrides or None)
            except Exception as error:  # noqa: BLE001 - counted, never raised
                tally.note("escapes", f"{type(error).__name__}: {error} in {mutated[:200]!r} {overrides}")
                continue
            internal = [d for d in diagnostics if d.code == "E000"]
            if internal:
                tally.note("escapes", f"{internal[0].message} in {mutated[:200]!r} {overrides}")
            elif any(d.is_error for d in diagnostics):
                tally.errors += 1
    return tally


if __name__ == "__main__":
    main(campaign)
