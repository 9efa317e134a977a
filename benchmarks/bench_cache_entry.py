"""Decoding a stored rendering: the data format of the kernel cache against pickle (before).

    .venv/bin/python benchmarks/bench_cache_entry.py [--repeats 7]

The rendering of the power spectrum with its gradient kernels (what a cache hit of
`benchmarks/bench_compile.py` reads), encoded by `codegen/serialize.py` (a JSON line and
the raw bytes of its arrays, built only from the renderer's dataclasses) and by pickle
(which the cache used to store, and which runs code when read). Prints sizes, the best
decode time of each in milliseconds, and the ratio.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import sys

from _common import best_wall

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rendering():
    from benchmarks.bench_compile import load_module
    from mtdsl.codegen.cpp import render_module
    from mtdsl.codegen.schedule.derived import extended_module
    from mtdsl.ir.passes.autodiff import module_gradients
    from mtdsl.codegen.rendered import ir_text, slim_rendering, with_extra

    module, _ = load_module()
    gradients = module_gradients(module)
    extended, terms = extended_module(with_extra(module, ()), gradients)
    return slim_rendering((ir_text(module, gradients), render_module(extended, "float64"), terms), module)


def best(function, repeats: int) -> float:
    """Milliseconds."""
    return best_wall(function, repeats) * 1e3


def main() -> None:
    from mtdsl.codegen import serialize

    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    stored = rendering()
    pickled = pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL)
    data = serialize.encode(stored)
    assert serialize.encode(serialize.decode(data)) == data
    ours = best(lambda: serialize.decode(data), args.repeats)
    theirs = best(lambda: pickle.loads(pickled), args.repeats)
    print(f"rendering: data {len(data) / 1e6:.2f} MB, pickle {len(pickled) / 1e6:.2f} MB")
    print(f"decode: data {ours:.1f} ms, pickle {theirs:.1f} ms, ratio {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
