"""The one place the compiled kernels take their thread count from.

``set_num_threads(n)`` sets the number of threads used by the cython (OpenMP)
and numba (parallel) kernels of fastsoftmax.  It does not change the threads
of NumPy's BLAS, which the numpy backend uses: limit those with
``threadpoolctl.threadpool_limits`` (fastsoftmax's own OpenMP pool shows up
there too, under the ``openmp`` user API, and obeys it only as far as
``set_num_threads`` does not override it: fastsoftmax passes its own count to
every parallel region explicitly).

The count is, first to last: ``set_num_threads(n)``; else
``$FASTSOFTMAX_NUM_THREADS`` if set (read at first use; a value that is not a
positive integer, or -1 for all cores, is ignored with a ``RuntimeWarning``);
else all the cores this process may run on, capped by the OpenMP runtime's
limit of the calling thread, so that ``OMP_NUM_THREADS`` and
``threadpoolctl.threadpool_limits(n)`` limit fastsoftmax's kernels too.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Iterator
from typing import Any, Callable, SupportsIndex, cast
import threading
import warnings

import numpy as np

_lock = threading.Lock()


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _environment_threads() -> int:
    """``$FASTSOFTMAX_NUM_THREADS`` as a count, or 0 when it is unset.

    Read at first use, not at import, and a bad value only warns: a typo in the
    environment must not make ``import fastsoftmax`` fail with a traceback.
    """
    env = os.environ.get("FASTSOFTMAX_NUM_THREADS", "").strip()
    if not env:
        return 0
    try:
        n = int(env)
    except ValueError:
        n = 0
    if n == -1:  # as set_num_threads(-1): all cores
        return _cpu_count()
    if n < 1:
        warnings.warn(
            f"ignoring FASTSOFTMAX_NUM_THREADS={env!r}: expected a positive integer "
            f"(or -1 for all cores); using all {_cpu_count()} cores",
            RuntimeWarning,
            stacklevel=3,
        )
        return 0
    return n


_num_threads: int | None = None  # set_num_threads's count, or None
_env_threads: int | None = None  # $FASTSOFTMAX_NUM_THREADS (0: unset), read at first use


def _environment_openmp_limit() -> int:
    try:
        return int(os.environ.get("OMP_NUM_THREADS", "").split(",")[0])
    except ValueError:
        return 0


_openmp_max_threads: Callable[[], int] | None = None  # the compiled kernels' omp_get_max_threads, found at first use
_omp_env = 0  # $OMP_NUM_THREADS (0: unset)


def _openmp_limit() -> int | None:
    """The OpenMP thread limit of this thread, or None if there is none to follow.

    Both the runtime's limit (``threadpool_limits`` sets it) and ``$OMP_NUM_THREADS``
    count: numba's OpenMP threading layer resets the runtime's limit to its own.
    """
    global _openmp_max_threads, _omp_env
    if _openmp_max_threads is None:
        _omp_env = _environment_openmp_limit()  # read once, like the OpenMP runtime
        try:
            from ._cython_kernels import openmp_max_threads as _openmp_max_threads
        except ImportError:  # no compiled kernels: the environment only
            _openmp_max_threads = _environment_openmp_limit
    runtime = cast(Callable[[], int], _openmp_max_threads)()  # set just above
    if runtime >= 1 and _omp_env >= 1:
        return min(runtime, _omp_env)
    return runtime if runtime >= 1 else (_omp_env if _omp_env >= 1 else None)


def get_num_threads() -> int:
    """Return the number of threads fastsoftmax's parallel kernels use.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    global _env_threads
    if _num_threads is not None:
        return _num_threads
    if _env_threads is None:
        with _lock:
            if _env_threads is None:
                _env_threads = _environment_threads()
    if _env_threads:
        return _env_threads
    limit = _openmp_limit()
    return _cpu_count() if limit is None else min(_cpu_count(), limit)


def set_num_threads(n: SupportsIndex | None) -> None:
    """Set the number of threads of fastsoftmax's parallel kernels.

    Parameters
    ----------
    n : int or None
        A positive thread count (of any integer type, e.g. ``numpy.int64``);
        ``None`` restores the default (``$FASTSOFTMAX_NUM_THREADS``, else
        all cores within the OpenMP limit); ``-1`` means all of this
        machine's cores, whatever the OpenMP limit.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.set_num_threads(1)
    >>> fastsoftmax.get_num_threads()
    1
    >>> fastsoftmax.set_num_threads(None)
    """
    global _num_threads
    message = f"n must be a positive int, None or -1, got {n!r}"
    if n is not None:
        if isinstance(n, (bool, np.bool_)):
            raise ValueError(message)
        try:
            n = operator.index(n)  # int, numpy integers
        except TypeError:
            raise ValueError(message) from None
    if n is not None and n == -1:
        n = _cpu_count()
    if n is not None and n < 1:
        raise ValueError(message)
    with _lock:
        _num_threads = n


# -- scipy's own BLAS during its L-BFGS-B driver --------------------------------------------
# scipy's L-BFGS-B makes a few small BLAS calls an iteration; with scipy's bundled OpenBLAS
# on more than one thread, its worker threads then spin for milliseconds after each call,
# on the cores the fused kernels use (an MNIST fit on 2 threads took 3.0 s instead of 1.2 s).
# So the driver runs with scipy's own BLAS on one thread.  Only a BLAS that scipy alone
# loaded is limited (a wheel's scipy.libs): a BLAS shared with NumPy also serves the
# numpy backend's data term inside the objective.  Without threadpoolctl this does nothing.

_blas_lock = threading.Lock()
_scipy_blas: list[Any] | None = None  # threadpoolctl's controllers of scipy's own BLAS
_blas_depth = 0  # nesting of scipy_blas_single_thread, over all threads
_blas_saved: list[int] = []


def _scipy_own_blas() -> list[Any]:
    global _scipy_blas
    if _scipy_blas is None:
        try:
            import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
            from threadpoolctl import ThreadpoolController

            scipy_dir = os.path.dirname(os.path.dirname(scipy.linalg.__file__))
            controllers = ThreadpoolController().lib_controllers
        except Exception:  # no threadpoolctl, or one without its controller API
            controllers, scipy_dir = [], ""
        _scipy_blas = [
            c for c in controllers
            if c.user_api == "blas" and (
                os.path.basename(os.path.dirname(c.filepath)) == "scipy.libs"
                or c.filepath.startswith(scipy_dir + os.sep))
        ]  # fmt: skip
    return _scipy_blas


@contextlib.contextmanager
def scipy_blas_single_thread() -> Iterator[None]:
    """Run the block with scipy's own BLAS on one thread (restored after the last nested exit).

    Thread-safe: concurrent fits (LogisticRegressionCV's folds) share one count, so
    the first to enter saves the threads and the last to leave restores them.
    """
    global _blas_depth, _blas_saved
    controllers = _scipy_own_blas()
    if not controllers:
        yield
        return
    with _blas_lock:
        if _blas_depth == 0:
            _blas_saved = [c.get_num_threads() for c in controllers]
            for c in controllers:
                c.set_num_threads(1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if _blas_depth == 0:
                for c, n in zip(controllers, _blas_saved):
                    c.set_num_threads(n)
