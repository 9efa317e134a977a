"""Where the time of mtdsl's call goes in each row of bench_soap.py's gradients table, per call.

    .venv/bin/python benchmarks/bench_soap_anatomy.py [--tree PATH] [--repeats 5]

Runs `PATH/benchmarks/bench_soap.py --gradients-only` (default: this checkout; give another
checkout to compare trees, its own mtdsl is then imported) in this process, with its
`side_by_side` wrapped so that every call of mtdsl's side is measured on its own: wall, user and
kernel (sys) CPU of the process, minor page faults, and the CPU of each thread (from
/proc/self/task/*/schedstat, named when it is a Python thread: `MainThread`, `mtdsl-llvm_0` the
LLVM driver's helper; the unnamed ones are native pools: libgomp's worker, vesin's, featomic's
rayon workers, OpenBLAS). Prints, before each row of bench_soap's table, the medians over the
timed calls. Written for issue #15's expansion-gradient row (docs/performance.md, session 9):
whether another thread spins during mtdsl's call, or its own threads take longer, and in which
mode (user or kernel).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import statistics
import sys
import threading
import time


def per_thread_ms() -> dict:
    """CPU time (ms) of each thread of this process, by thread id."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as stat:
                out[int(tid)] = int(stat.read().split()[0]) / 1e6
        except OSError:
            pass
    return out


def thread_name(tid: int) -> str:
    for thread in threading.enumerate():
        if thread.native_id == tid:
            return thread.name
    return str(tid)


def measured(function, calls: list):
    """`function`, each call's wall, user, sys, minor faults and per-thread CPU appended to `calls`."""

    def call():
        threads, usage, start = per_thread_ms(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        result = function()
        wall = time.perf_counter() - start
        after, threads_after = resource.getrusage(resource.RUSAGE_SELF), per_thread_ms()
        calls.append((wall * 1e3, (after.ru_utime - usage.ru_utime) * 1e3, (after.ru_stime - usage.ru_stime) * 1e3,
                      after.ru_minflt - usage.ru_minflt,
                      {t: threads_after[t] - threads.get(t, 0.0) for t in threads_after
                       if threads_after[t] - threads.get(t, 0.0) > 0.5}))
        return result

    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=os.path.join(os.path.dirname(__file__), ".."))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tree = os.path.abspath(args.tree)
    sys.argv = ["bench_soap.py", "--repeats", str(args.repeats), "--gradients-only"]
    os.environ["RAYON_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"] = "2"  # as bench_soap's pin_threads
    sys.path.insert(0, os.path.join(tree, "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_soap_of_tree", os.path.join(tree, "benchmarks", "bench_soap.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.ARGS = bench.parse()
    timed = bench.side_by_side

    def side_by_side(functions, repeats, *rest, **options):
        calls = []
        result = timed([measured(functions[0], calls), *functions[1:]], repeats, *rest, **options)
        calls = calls[1:]  # the first call is side_by_side's warm-up

        def median(k):
            return statistics.median(call[k] for call in calls)

        threads = {thread_name(t): round(statistics.median(call[4].get(t, 0.0) for call in calls), 1)
                   for t in sorted({t for call in calls for t in call[4]})}
        print(f"   [mtdsl, median of {len(calls)} calls: wall {median(0):.1f} ms, user {median(1):.1f} ms, "
              f"sys {median(2):.1f} ms, {median(3):.0f} minor faults; CPU ms by thread {threads}]")
        return result

    bench.side_by_side = side_by_side
    bench.main()


if __name__ == "__main__":
    main()
