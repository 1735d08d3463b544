"""The one place the compiled kernels take their thread count from.

``set_num_threads(n)`` sets the number of threads used by the cython (OpenMP)
and numba (parallel) kernels of fastsoftmax.  It does not change the threads
of NumPy's BLAS, which the numpy backend uses: limit those with
``threadpoolctl.threadpool_limits`` (fastsoftmax's own OpenMP pool shows up
there too, under the ``openmp`` user API, and obeys it only as far as
``set_num_threads`` does not override it: fastsoftmax passes its own count to
every parallel region explicitly).
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _initial():
    env = os.environ.get("FASTSOFTMAX_NUM_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"FASTSOFTMAX_NUM_THREADS must be an integer, got {env!r}") from None
    return _cpu_count()


_num_threads = _initial()


def get_num_threads():
    """Return the number of threads fastsoftmax's parallel kernels use.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    return _num_threads


def set_num_threads(n):
    """Set the number of threads of fastsoftmax's parallel kernels.

    Parameters
    ----------
    n : int or None
        A positive thread count; ``None`` or ``-1`` means all of this machine's
        cores (the default, overridable by ``$FASTSOFTMAX_NUM_THREADS``).

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.set_num_threads(1)
    >>> fastsoftmax.get_num_threads()
    1
    >>> fastsoftmax.set_num_threads(None)
    """
    global _num_threads
    if n is None or n == -1:
        n = _cpu_count()
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, None or -1, got {n!r}")
    with _lock:
        _num_threads = n
