"""Start-up costs (issue 5, target 6), each measured in a fresh Python process.

* ``import fastsoftmax``: wall time of the whole subprocess, against
  ``python -c pass`` (the interpreter's own start-up, the floor); the import
  alone, clocked inside the subprocess, goes to ``extra_info["import_seconds"]``.
* First calls of the public kernels on small float32 data (and the
  uint8 gradient, and a one-epoch ``SoftmaxRegression`` fit when the estimator
  exists), in a fresh process whose ``NUMBA_CACHE_DIR`` is a new empty
  folder ("cold": numba compiles everything) or a folder a previous process
  filled ("warm": numba loads its on-disk cache).  Done for the numba backend
  and for the default backend, which must need no compile on first call.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

import pytest
from benchutils import all_backends

IMPORT_SCRIPT = """
import time
start = time.perf_counter()
import fastsoftmax
print(time.perf_counter() - start)
"""

# argv[1]: a backend name or "default".  Prints a JSON dict of seconds.
FIRST_CALL_SCRIPT = r"""
import json, sys, time
start = time.perf_counter()
import numpy as np
import fastsoftmax
import fastsoftmax.functions as F
times = {"import": time.perf_counter() - start}
name = None if sys.argv[1] == "default" else sys.argv[1]
start = time.perf_counter()
fastsoftmax.set_backend(name)
backend = fastsoftmax.get_backend()
F.softmax(np.zeros((1, 2), np.float32), axis=-1)  # loads the backend module
times["load_backend"] = time.perf_counter() - start

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 20)).astype(np.float32)
X = rng.random((64, 20), dtype=np.float32)
X8 = rng.integers(0, 256, (64, 20), dtype=np.uint8)
W = np.zeros((20, 3), np.float32)
w = np.zeros(20, np.float32)
b = np.zeros(3, np.float32)
y = rng.integers(0, 3, 64)
y01 = (y == 0).astype(np.float32)
calls = {
    "softmax": lambda: F.softmax(x, axis=-1),
    "log_softmax": lambda: F.log_softmax(x, axis=-1),
    "logsumexp": lambda: F.logsumexp(x, axis=-1),
    "linear": lambda: F.linear(X, W, b),
    "cross_entropy": lambda: F.cross_entropy(x[:, :3], y),
    "softmax_cross_entropy_grad": lambda: F.softmax_cross_entropy_grad(X, W, b, y),
    "softmax_cross_entropy_grad_uint8": lambda: F.softmax_cross_entropy_grad(X8, W, b, y),
    "sigmoid": lambda: F.sigmoid(x[:, 0]),
    "binary_cross_entropy": lambda: F.binary_cross_entropy(x[:, 0], y01),
    "logistic_loss_grad": lambda: F.logistic_loss_grad(X, w, 0.0, y01),
    "classification_error": lambda: F.classification_error(x[:, :3], y),
}
try:
    from fastsoftmax.estimators import SoftmaxRegression
    calls["SoftmaxRegression.fit"] = lambda: SoftmaxRegression(max_epochs=1).fit(X, y)
except ImportError:
    pass
for key, call in calls.items():
    start = time.perf_counter()
    call()
    times[key] = time.perf_counter() - start
kernels = [k for k in times if k not in ("import", "load_backend", "SoftmaxRegression.fit")]
times["kernels_total"] = sum(times[k] for k in kernels)
print(json.dumps({"backend": backend, "times": times}))
"""


def _python(script, *args, env=None):
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        pytest.fail(f"subprocess failed:\n{result.stderr[-3000:]}")
    return result.stdout


def _env(cache_dir):
    env = dict(os.environ)
    env["NUMBA_CACHE_DIR"] = cache_dir
    env["FASTSOFTMAX_NUM_THREADS"] = "1"
    env.pop("FASTSOFTMAX_BACKEND", None)
    return env


def test_python_startup(benchmark):
    benchmark.group = "startup: python -c 'import fastsoftmax'"
    benchmark.extra_info.update(impl="python -c pass", kind="floor")
    benchmark.pedantic(_python, args=("pass",), rounds=5, warmup_rounds=1)


def test_import_fastsoftmax(benchmark):
    seconds = []

    def once():
        seconds.append(float(_python(IMPORT_SCRIPT)))

    benchmark.group = "startup: python -c 'import fastsoftmax'"
    benchmark.pedantic(once, rounds=5, warmup_rounds=1)
    benchmark.extra_info.update(
        impl="import fastsoftmax",
        kind="fastsoftmax",
        import_seconds=statistics.median(seconds[1:]),
        import_seconds_all=seconds[1:],
    )


@pytest.fixture(scope="module")
def cache_dirs():
    """backend -> the NUMBA_CACHE_DIR its cold run filled, reused by its warm run."""
    dirs = {}
    yield dirs
    for d in dirs.values():
        d.cleanup()


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
@pytest.mark.parametrize("backend", ["numba", "default"])
def test_first_calls(benchmark, cache_dirs, backend, warm):
    if backend != "default" and backend not in all_backends():
        pytest.skip(f"backend {backend!r} is not available")
    results = []

    def once(cache_dir):
        results.append(json.loads(_python(FIRST_CALL_SCRIPT, backend, env=_env(cache_dir))))

    if warm:
        if backend not in cache_dirs:  # the cold run was not selected: fill a cache now
            cache_dirs[backend] = tempfile.TemporaryDirectory(prefix="numba-cache-")
            _python(FIRST_CALL_SCRIPT, backend, env=_env(cache_dirs[backend].name))
        args, rounds = (cache_dirs[backend].name,), 3
    else:
        # A cold numba compile of every kernel takes a minute on a busy 2-core machine: 1 round.
        previous = cache_dirs.pop(backend, None)
        if previous is not None:
            previous.cleanup()
        cache_dirs[backend] = tempfile.TemporaryDirectory(prefix="numba-cache-")
        args, rounds = (cache_dirs[backend].name,), 1
    benchmark.group = f"startup: first calls in a new process, {backend} backend"
    benchmark.pedantic(once, args=args, rounds=rounds)
    keys = results[0]["times"]
    times = {key: statistics.median(r["times"][key] for r in results) for key in keys}
    benchmark.extra_info.update(
        impl=f"{'warm' if warm else 'cold'} numba cache",
        kind="fastsoftmax",
        backend=results[0]["backend"],
        # backend import (module-level compiles) plus the first call of every kernel
        compile_seconds=times["load_backend"] + times["kernels_total"],
        # the estimator's first fit separately: it may compile a whole-epoch kernel
        fit_first_call_seconds=times.get("SoftmaxRegression.fit"),
        first_call_seconds=times,
    )
