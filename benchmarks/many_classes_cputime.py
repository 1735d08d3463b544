"""CPU-time companion of test_bench_many_classes.py, for a shared machine.

On one thread, the CPU time of a call is the wall time of a quiet machine,
whatever else runs beside it (up to contention for caches and memory).
Prints the median CPU seconds of the same calls as the benchmark groups:
``python benchmarks/many_classes_cputime.py [--classes 1000,10000,50000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("FASTSOFTMAX_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_bench_many_classes import (  # noqa: E402
    D, N, _kernel_call, _random_problem, _torch_call, _trained_problem,
)


def cpu_median(fn, rounds):
    fn()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def torch_call(api, X, coef, intercept, y):
    import torch

    torch.set_num_threads(1)
    return _torch_call(api, X, coef, intercept, y)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--classes", default="1000,10000,50000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--default-only", action="store_true",
                        help="only the default backend without skipping, random weights "
                             "(e.g. for C = 256,000)")  # fmt: skip
    parser.add_argument("--trained-only", action="store_true",
                        help="only the trained model: skipping with pass A screened, skipping "
                             "without the screening, no skipping (rounds interleaved)")  # fmt: skip
    parser.add_argument("--threads", action="store_true",
                        help="1 against 2 threads (skipping off): wall and CPU time; run with "
                             "OMP_WAIT_POLICY=passive so that waiting threads use no CPU")  # fmt: skip
    args = parser.parse_args()
    from threadpoolctl import threadpool_info, threadpool_limits

    import fastsoftmax

    default = fastsoftmax.backends()[0]
    if args.threads:
        return compare_threads(default, map(int, args.classes.split(",")), args.rounds)
    with threadpool_limits(1):
        for C in map(int, args.classes.split(",")):
            if args.trained_only:
                trained_model(default, C, args.rounds)
                continue
            problem = _random_problem(C)
            flops = 4 * N * D * C
            calls = {f"{default} no-skip": _kernel_call(default, *problem, skip=False)}
            if not args.default_only:
                calls = {f"{default} skip": _kernel_call(default, *problem, skip=True), **calls,
                         "numpy": _kernel_call("numpy", *problem)}  # fmt: skip
            if not (args.no_torch or args.default_only):
                for api in ("linear_cross_entropy", "linear+cross_entropy"):
                    calls[f"torch {api}"] = torch_call(api, *problem)
            for name, fn in calls.items():
                seconds = cpu_median(fn, args.rounds)
                print(f"C={C} random  {name:32s} {seconds * 1e3:9.0f} ms CPU  "
                      f"{flops / seconds / 1e9:6.1f} GFLOP/s")  # fmt: skip
            del calls, problem
            if C >= 10000 and not args.default_only:
                trained_model(default, C, args.rounds)
        print([{k: v for k, v in pool.items() if k in ("user_api", "internal_api", "num_threads",
                                                      "version", "architecture")}
               for pool in threadpool_info()])  # fmt: skip


def trained_model(backend, C, rounds):
    """CPU medians on the trained model: skipping (pass A screened where the CPU can,
    see _tiling.screen_pass_a), skipping with pass A not screened, no skipping; rounds
    interleaved; the (row, tile) fractions pass A computes and pass B keeps, and the
    loss and gradient against the exact pass."""
    from fastsoftmax._backends import _tiling, get_module

    X, coef, intercept, y = _trained_problem(C)
    kernel = get_module(backend).softmax_ce_sums
    runs = {"skip": (True, True), "skip, pass A not screened": (True, False), "no-skip": (False, False)}
    times, results = {name: [] for name in runs}, {}
    saved = _tiling.SCREEN_PASS_A
    try:
        for r in range(rounds + 1):
            for name, (skip, screen) in runs.items():
                _tiling.SCREEN_PASS_A = screen
                G, g = np.empty_like(coef), np.empty_like(intercept)
                counts = np.zeros(4, np.intp) if backend == "cython" else None
                if counts is not None:
                    get_module(backend).pass_counts = counts
                start = time.process_time()
                loss, _ = kernel(X, coef, intercept, y, None, G, g, skip_negligible=skip)
                if r:  # (the first round warms up)
                    times[name].append(time.process_time() - start)
                results[name] = loss, G, counts
    finally:
        _tiling.SCREEN_PASS_A = saved
        if backend == "cython":
            get_module(backend).pass_counts = None
    exact_loss, exact_G, _ = results["no-skip"]
    for name in runs:
        seconds = float(np.median(times[name]))
        loss, G, counts = results[name]
        fractions = (f"  pass A {counts[1] / counts[0]:.3f} pass B {counts[2] / counts[0]:.3f} of "
                     f"{counts[0]} (row, tile) pairs" if counts is not None else "")  # fmt: skip
        print(f"C={C} trained {backend} {name:27s} {seconds * 1e3:9.0f} ms CPU  "
              f"{np.median(times['no-skip']) / seconds:.2f}x  loss - exact {loss - exact_loss:.2e} "
              f"(of {exact_loss:.6e})  gradient relative error "
              f"{np.linalg.norm(G - exact_G) / np.linalg.norm(exact_G):.2e}{fractions}")  # fmt: skip


def compare_threads(backend, classes, rounds):
    """Median wall and CPU seconds of one call on 1 and 2 threads: with passive waiting,
    CPU(2) / CPU(1) near 1 means the split adds no work (whatever the machine's load)."""
    import fastsoftmax

    for C in classes:
        fn = _kernel_call(backend, *_random_problem(C), skip=False)
        wall, cpu = {1: [], 2: []}, {1: [], 2: []}
        for _ in range(rounds):
            for threads in (1, 2):
                fastsoftmax.set_num_threads(threads)
                fn()
                start, start_cpu = time.perf_counter(), time.process_time()
                fn()
                wall[threads].append(time.perf_counter() - start)
                cpu[threads].append(time.process_time() - start_cpu)
        w = {t: float(np.median(v)) for t, v in wall.items()}
        c = {t: float(np.median(v)) for t, v in cpu.items()}
        print(f"C={C} threads  wall 1t {w[1] * 1e3:.0f} ms 2t {w[2] * 1e3:.0f} ms (speed-up "
              f"{w[1] / w[2]:.2f}x)  CPU 1t {c[1] * 1e3:.0f} ms 2t {c[2] * 1e3:.0f} ms "
              f"(CPU(2)/CPU(1) {c[2] / c[1]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
