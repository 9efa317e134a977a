"""Run every fuzz campaign and print the table of docs/reliability.md.

    python -m fuzz.run                      # the long run of `make fuzz`
    python -m fuzz.run --scale 0.1          # a tenth of it
    python -m fuzz.run --programs 500 --mts 500 --structures 100 --cache 10

Each campaign runs in child processes (`python -m fuzz.NAME --n N --seed S`), in chunks,
under an address-space limit (`--memory`, GiB): a child that dies (a signal, the
memory limit, a non-zero exit) is a crash, and the next chunk goes on. Seeds are fixed:
the same command gives the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python fuzz/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fuzz.common import Tally  # noqa: E402

#: campaign -> (inputs of the long run, inputs per child process)
CAMPAIGNS = {
    "programs": (10_000, 2_500),
    "mts": (10_000, 2_500),
    "structures": (1_000, 250),
    "cache": (200, 50),
}
DESCRIPTIONS = {
    "programs": "mutated `.mt` programs, `mtdsl check`",
    "mts": "mutated `.mts` files, `load` / `load_buffer` / `load(mmap=True)`",
    "structures": "bad structures, neighbour list / model / extxyz",
    "cache": "damaged kernel-cache entries, compile + run (cpp, llvm)",
}


def run_chunk(name: str, n: int, seed: int, memory_gib: float, timeout: float) -> Tally:
    limit = int(memory_gib * 2**30)

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    root = Path(__file__).resolve().parents[1]
    environment = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        result = subprocess.run([sys.executable, "-m", f"fuzz.{name}", "--n", str(n), "--seed", str(seed)],
                                capture_output=True, text=True, preexec_fn=limited, timeout=timeout, env=environment,
                                cwd=root)
    except subprocess.TimeoutExpired:
        tally = Tally()
        tally.note("crashes", f"{name} seed {seed}: no answer in {timeout:.0f} s")
        return tally
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        tally = Tally()
        tally.note("crashes", f"{name} seed {seed}: exit status {result.returncode}: {result.stderr[-500:]}")
        return tally
    record = json.loads(lines[-1])
    tally = Tally(**{k: v for k, v in record.items() if k != "examples"})
    tally.examples = record["examples"]
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every campaign's size (default 1)")
    for name, (size, _) in CAMPAIGNS.items():
        parser.add_argument(f"--{name}", type=int, metavar="N", help=f"inputs of `{name}` (default {size} x scale)")
    parser.add_argument("--seed", type=int, default=2026, help="first seed (default 2026)")
    parser.add_argument("--memory", type=float, default=4.0, help="address-space limit of a child, GiB (default 4)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a child may run (default 1800)")
    args = parser.parse_args()

    rows = []
    clean = True
    for index, (name, (size, chunk)) in enumerate(CAMPAIGNS.items()):
        total = getattr(args, name)
        total = round(size * args.scale) if total is None else total
        tally = Tally()
        start = time.monotonic()
        done = 0
        while done < total:
            n = min(chunk, total - done)
            tally.add(run_chunk(name, n, args.seed + 1000 * index + done, args.memory, args.timeout))
            done += n
            print(f"  {name}: {done}/{total}", file=sys.stderr, flush=True)
        seconds = time.monotonic() - start
        rows.append((name, tally, seconds))
        clean = clean and tally.clean
        for example in tally.examples:
            print(f"  {name}: {example}", file=sys.stderr)

    print("| campaign | inputs | tried | errors | escapes | crashes | silent corruptions | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, tally, seconds in rows:
        print(f"| {name} | {DESCRIPTIONS[name]} | {tally.tried:,} | {tally.errors:,} | {tally.escapes} | "
              f"{tally.crashes} | {tally.silent} | {seconds:.0f} |")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
