"""The one place the compiled kernels take their thread count from.

``set_num_threads(n)`` sets the number of threads used by the cython (OpenMP)
and numba (parallel) kernels of fastsoftmax.  It does not change the threads
of NumPy's BLAS, which the numpy backend uses: limit those with
``threadpoolctl.threadpool_limits`` (fastsoftmax's own OpenMP pool shows up
there too, under the ``openmp`` user API, and obeys it only as far as
``set_num_threads`` does not override it: fastsoftmax passes its own count to
every parallel region explicitly).

The default is ``$FASTSOFTMAX_NUM_THREADS`` if set (read at first use; a value
that is not a positive integer, or -1 for all cores, is ignored with a
``RuntimeWarning``), else all the cores this process may run on.
"""

from __future__ import annotations

import operator
import os
import threading
import warnings

import numpy as np

_lock = threading.Lock()


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _initial():
    """The thread count of ``$FASTSOFTMAX_NUM_THREADS``, else all cores.

    Read at first use, not at import, and a bad value only warns: a typo in the
    environment must not make ``import fastsoftmax`` fail with a traceback.
    """
    env = os.environ.get("FASTSOFTMAX_NUM_THREADS", "").strip()
    if not env:
        return _cpu_count()
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
        return _cpu_count()
    return n


_num_threads = None  # set at first use


def get_num_threads():
    """Return the number of threads fastsoftmax's parallel kernels use.

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.get_num_threads() >= 1
    True
    """
    global _num_threads
    if _num_threads is None:
        with _lock:
            if _num_threads is None:
                _num_threads = _initial()
    return _num_threads


def set_num_threads(n):
    """Set the number of threads of fastsoftmax's parallel kernels.

    Parameters
    ----------
    n : int or None
        A positive thread count (of any integer type, e.g. ``numpy.int64``);
        ``None`` or ``-1`` means all of this machine's cores (the default,
        overridable by ``$FASTSOFTMAX_NUM_THREADS``).

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
    if n is None or n == -1:
        n = _cpu_count()
    if n < 1:
        raise ValueError(message)
    with _lock:
        _num_threads = n
