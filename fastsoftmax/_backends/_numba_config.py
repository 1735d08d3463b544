"""The one njit configuration shared by every numba kernel of fastsoftmax.

Importing this module imports numba, so only the numba backend modules import
it (never ``fastsoftmax/__init__.py`` or ``functions.py``).

* ``cache=True``: compiled machine code is kept on disk next to the sources
  (or in ``$NUMBA_CACHE_DIR``), so only the very first call of a kernel for a
  given dtype pays the JIT compile.
* ``error_model="numpy"``: division by zero gives inf/NaN like NumPy instead
  of raising, and removes the zero-division checks from hot loops.
* ``nogil=True``: kernels release the GIL, so Python threads run them
  concurrently.
* ``no_cfunc_wrapper=True``: no C-callable wrapper per kernel (nothing takes
  a kernel's address), which the cold compile of every kernel paid for.
* ``parallel`` (the ``prange`` kernels) converts the explicit ``prange`` loops
  only, not NumPy array expressions into parallel loops of their own: the
  kernels' array expressions (zeroing accumulators, adding up per-thread
  sums) are tiny, and their conversion was a large part of the cold compile
  (issue 13: the cold compile of what a default fit needs).
* ``fastmath`` is restricted to flags that keep NaN and inf semantics
  (``nnan``/``ninf`` stay off): ``reassoc`` lets LLVM vectorise reductions
  (sums, dot products) with several partial accumulators, ``contract`` fuses
  multiply-adds into FMA and ``arcp`` turns divisions by a loop-invariant
  value into multiplications by its reciprocal.
"""

from __future__ import annotations

import numba

#: fastmath flags that keep NaN/inf/signed-zero semantics intact.
FASTMATH_FLAGS = frozenset({"contract", "reassoc", "arcp"})

#: Options of every serial kernel.
JIT_OPTIONS = {
    "cache": True,
    "error_model": "numpy",
    "nogil": True,
    "no_cfunc_wrapper": True,
    "fastmath": set(FASTMATH_FLAGS),
}

#: ``parallel`` of the prange kernels: the explicit prange loops only.
PARALLEL_OPTIONS = {
    "prange": True,
    "comprehension": False,
    "reduction": False,
    "inplace_binop": False,
    "setitem": False,
    "numpy": False,
    "stencil": False,
    "fusion": False,
}


def njit(*args, parallel=False, **overrides):
    """``numba.njit`` with the shared options (``parallel=True`` for prange kernels).

    Usable bare (``@njit``) or with extra options (``@njit(parallel=True)``).
    """
    options = {**JIT_OPTIONS, **overrides}
    if parallel:
        options["parallel"] = dict(PARALLEL_OPTIONS)  # numba empties the dict it is given
    if len(args) == 1 and callable(args[0]) and not overrides and not parallel:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


def set_threads_for_call():
    """Apply ``fastsoftmax.get_num_threads()`` to numba's pool before a parallel call.

    Returns the thread count in use (capped at numba's pool size).
    """
    from .._threads import get_num_threads

    n = min(get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(n)
    return n
