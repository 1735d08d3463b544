"""Helpers shared by the benchmark modules (imported as ``benchutils``).

Kept out of ``conftest.py`` so that the benchmark modules import a module with
a unique name rather than ``conftest``.
"""

from __future__ import annotations

import importlib
import os
import time


import fastsoftmax

#: Seconds each benchmark aims to spend in its timed rounds.
BUDGET = float(os.environ.get("FASTSOFTMAX_BENCH_BUDGET", "1.0"))


def mnist_train_arrays():
    """MNIST's training rows from ``$FASTSOFTMAX_DATA`` as uint8 and as float32 in
    [0, 1], and their labels as intp (the scripts' ``X8, X32, y``)."""
    import numpy as np

    from fastsoftmax.datasets import load_mnist

    X8, y, _, _ = load_mnist(os.environ["FASTSOFTMAX_DATA"], download=False, dtype="uint8",
                             return_X_y=True)  # fmt: skip
    return X8, X8.astype(np.float32) / np.float32(255), y.astype(np.intp)


# --------------------------------------------------------------------------- timing


def run(
    benchmark, fn, *, budget=None, min_rounds=3, max_rounds=100, warmup=True, rounds=None, **info
):
    """Time ``fn()`` with pytest-benchmark's pedantic mode and return its result.

    One or two calls outside the timed region warm up (numba and JAX compile
    there, buffers are touched); the last one's duration picks the number of
    rounds so that the timed rounds take about ``budget`` seconds, clamped to
    ``[min_rounds, max_rounds]``.  ``rounds`` fixes the count instead.
    ``warmup=False`` skips the warm-up (for slow calls with nothing to
    compile); a callable ``warmup`` is called instead of ``fn`` (a cheap call
    that compiles the same kernels, e.g. a fit on a few rows) and ``rounds``
    or ``min_rounds`` rounds follow.  Extra keyword arguments go to
    ``benchmark.extra_info``.
    """
    budget = BUDGET if budget is None else budget
    if callable(warmup):
        warmup()
    if warmup is True:
        first = _timed(fn)
        if first < budget / 2:
            # The first call may include a JIT compile: calibrate on a second one.
            first = _timed(fn)
        benchmark.extra_info["warmup_seconds"] = first
        if rounds is None:
            rounds = int(min(max_rounds, max(min_rounds, budget / max(first, 1e-6))))
    elif rounds is None:
        rounds = min_rounds
    benchmark.extra_info.update(info)
    result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
    # The machine is shared: a 1-minute load average above the core count means
    # other processes competed for the cores during the rounds.
    benchmark.extra_info["loadavg_1min"] = os.getloadavg()[0]
    return result


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_rounds(cases, rounds):
    """Time each of ``cases`` (name -> callable) in ``rounds`` interleaved rounds.

    For the standalone ratio scripts on a shared machine: each round runs every
    case once, so a load spike hits all of them alike. Returns ``(cpu, wall)``,
    name -> list of seconds; cpu is the calling thread's CPU time. No warm-up.
    """
    cpu = {k: [] for k in cases}
    wall = {k: [] for k in cases}
    for _ in range(rounds):
        for k, f in cases.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            f()
            cpu[k].append(time.thread_time() - c0)
            wall[k].append(time.perf_counter() - t0)
    return cpu, wall


# --------------------------------------------------------------------------- backends


def compiled_backends():
    """fastsoftmax backends worth timing on full-size data (all but ``naive``)."""
    return [name for name in fastsoftmax.backends() if name != "naive"]


def all_backends():
    return list(fastsoftmax.backends())


def impl_name(backend):
    return f"fastsoftmax[{backend}]"


def public_or_kernel(name):
    """The public function ``name`` of fastsoftmax, or ``None`` if it does not import yet.

    The suite times the public API (validation and dispatch included); while
    :mod:`fastsoftmax.functions` is still missing, benchmarks fall back to the
    backend kernels themselves and say so in ``extra_info["api"]``.
    """
    try:
        return getattr(fastsoftmax, name)
    except (ImportError, AttributeError):
        return None


def kernel(backend, name):
    """Kernel ``name`` of ``backend`` (the low-level protocol of fastsoftmax._backends)."""
    # the registry module (fastsoftmax.backends is the backends() function)
    registry = importlib.import_module("fastsoftmax._backends")
    return getattr(registry.get_module(backend), name)


def has_train_epoch(backend):
    """Whether ``backend`` exports the optional compiled whole-epoch kernel."""
    registry = importlib.import_module("fastsoftmax._backends")
    return hasattr(registry.get_module(backend), "train_epoch")


def require(name):
    """The public fastsoftmax name ``name``, or a skip while it does not import yet."""
    value = public_or_kernel(name)
    if value is None:
        import pytest

        pytest.skip(f"fastsoftmax.{name} is not available yet")
    return value
