"""Shared fixtures of the fastsoftmax benchmark suite (pytest-benchmark).

Run with ``pytest benchmarks/ --benchmark-only``; the normal test run never
collects this folder (``testpaths = tests``).  See ``benchmarks/README.md``.

Conventions every benchmark follows, so that ``benchmarks/report.py`` can read
a run without knowing the individual tests:

* ``benchmark.group`` names one comparison (same work, same data, same
  threads); the report computes ratios inside a group.
* ``benchmark.extra_info["impl"]`` names the contender: ``"fastsoftmax[<backend>]"``
  for a fastsoftmax backend, otherwise the peer (``"scipy"``, ``"torch"``,
  ``"jax"``, ``"sklearn"``, ``"np.copyto"``...).  ``extra_info["kind"]`` is
  ``"fastsoftmax"``, ``"peer"`` or ``"floor"`` (a physical lower bound such
  as a memory copy).
* Timing goes through :func:`run`: one untimed warm-up call (JIT compile,
  page faults, caches), then a fixed number of rounds chosen from the cost of
  that call so that each benchmark takes about ``FASTSOFTMAX_BENCH_BUDGET``
  seconds (default 1.0).  The report uses medians.
"""

from __future__ import annotations

import os
import sys

# XLA reads its thread settings once, at import: keep JAX on one thread like
# every other contender (set before anything can import jax).
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import fastsoftmax  # noqa: E402
from benchutils import BUDGET  # noqa: E402

MNIST_SHAPE = (60000, 784)
MNIST_TEST_ROWS = 10000
N_CLASSES = 10

# --------------------------------------------------------------------------- threads


def _threads_of(request):
    callspec = getattr(request.node, "callspec", None)
    return callspec.params.get("threads", 1) if callspec is not None else 1


@pytest.fixture(autouse=True)
def pinned_threads(request):
    """Pin every thread pool to 1 thread, or to the benchmark's ``threads`` parameter.

    fastsoftmax's own kernels, the BLAS/OpenMP pools that threadpoolctl sees
    (NumPy, SciPy, scikit-learn, torch's OpenMP) and torch's intra-op pool.
    """
    from threadpoolctl import threadpool_limits

    n = _threads_of(request)
    previous = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(n)
    torch = sys.modules.get("torch")
    torch_previous = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(n)
    with threadpool_limits(limits=n):
        yield n
    fastsoftmax.set_num_threads(previous)
    if torch is not None:
        torch.set_num_threads(torch_previous)


# --------------------------------------------------------------------------- peers


@pytest.fixture(scope="session")
def torch():
    """PyTorch (CPU), or a skip when it is not installed."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


@pytest.fixture(scope="session")
def jax():
    """JAX on one CPU thread (see ``XLA_FLAGS`` above), or a skip."""
    jax = pytest.importorskip("jax")
    return jax


@pytest.fixture(scope="session")
def sklearn():
    return pytest.importorskip("sklearn")


# --------------------------------------------------------------------------- data


class MNIST:
    """MNIST arrays, or random arrays of the same shapes and dtypes.

    Attributes: ``X`` (60000, 784) float32 in [0, 1], ``X_u8`` the same as
    uint8 pixels, ``y`` int64 labels, ``X_test``/``X_test_u8``/``y_test``,
    ``source`` ("mnist" or "random").
    """

    def __init__(self):
        data_home = os.environ.get("FASTSOFTMAX_DATA")
        loaded = None
        if data_home and os.path.isdir(data_home):
            try:
                from fastsoftmax.datasets import load_mnist

                loaded = load_mnist(data_home, download=False, dtype="uint8", return_X_y=True)
            except (ImportError, OSError) as exc:  # loader not written yet, or files missing
                self.load_error = repr(exc)
        if loaded is not None:
            arrays = (np.ascontiguousarray(a) for a in loaded)
            self.X_u8, self.y, self.X_test_u8, self.y_test = arrays
            self.source = "mnist"
        else:
            # Random stand-in: pixels mostly 0 like MNIST, labels uniform.
            rng = np.random.default_rng(0)
            self.X_u8 = self._random_pixels(rng, MNIST_SHAPE[0])
            self.X_test_u8 = self._random_pixels(rng, MNIST_TEST_ROWS)
            self.y = rng.integers(0, N_CLASSES, MNIST_SHAPE[0]).astype(np.int64)
            self.y_test = rng.integers(0, N_CLASSES, MNIST_TEST_ROWS).astype(np.int64)
            self.source = "random"
        # Same scaling as load_mnist(dtype="float32"): pixels / 255.
        self.X = self.X_u8.astype(np.float32) / np.float32(255)
        self.X_test = self.X_test_u8.astype(np.float32) / np.float32(255)

    @staticmethod
    def _random_pixels(rng, n):
        pixels = rng.integers(0, 256, (n, MNIST_SHAPE[1]), dtype=np.uint8)
        pixels[rng.random((n, MNIST_SHAPE[1])) < 0.8] = 0
        return pixels


@pytest.fixture(scope="session")
def mnist():
    return MNIST()


@pytest.fixture(scope="session")
def random_matrices():
    """Cache of random float matrices keyed by (shape, dtype), shared by the softmax benchmarks."""
    cache = {}
    rng = np.random.default_rng(1)

    def get(shape, dtype):
        key = (shape, np.dtype(dtype).name)
        if key not in cache:
            cache[key] = (rng.standard_normal(shape, dtype=np.float32) * 4).astype(dtype)
        return cache[key]

    return get


def _lscpu():
    import subprocess

    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return {}
    return dict(
        (key.strip(), value.strip())
        for key, _, value in (line.partition(":") for line in text.splitlines())
        if value
    )


def _loadavg():
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on this platform
        return None


_LOADAVG_START = _loadavg()


def pytest_benchmark_update_machine_info(config, machine_info):
    """Record what the report needs to describe the run: CPU, backends, versions, load."""
    from threadpoolctl import threadpool_info

    cpu = _lscpu()
    versions = {"numpy": np.__version__}
    for name in ("scipy", "numba", "sklearn", "torch", "jax"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "?")
    machine_info["fastsoftmax"] = {
        "cpu_model": cpu.get("Model name"),
        "cores": cpu.get("CPU(s)"),
        "backends": fastsoftmax.backends(),
        "default_backend": fastsoftmax.get_backend(),
        "versions": versions,
        "blas": sorted(
            {
                f"{p.get('internal_api')} {p.get('version')}"
                for p in threadpool_info()
                if p.get("user_api") == "blas"
            }
        ),
        # the machine is shared: the load average says how busy it was
        "loadavg_start": _LOADAVG_START,
        "loadavg_end": _loadavg(),
    }


def pytest_report_header(config):
    return (
        f"fastsoftmax {fastsoftmax.__version__}, backends {fastsoftmax.backends()}, "
        f"FASTSOFTMAX_DATA={os.environ.get('FASTSOFTMAX_DATA')!r}, budget {BUDGET} s/benchmark"
    )
