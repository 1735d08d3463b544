# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled vector passes of the wide L-BFGS (:mod:`fastsoftmax._lbfgs`), float64.

Each function is one pass over its vectors (``src_cython/fs_lbfgs.h``), the
columns split between ``num_threads`` threads in contiguous ranges; partial
sums are added in thread order, so a result does not depend on the schedule.
The history ``rows`` is (2 maxcor, n), C-contiguous: rows 2k and 2k + 1 are
``s`` and ``y`` of slot k.
"""

from cython.parallel cimport prange
from libc.stdlib cimport calloc, free

import numpy as np

cdef extern from "fs_lbfgs.h" nogil:
    void fs_lbfgs_products(double *rows, Py_ssize_t n, Py_ssize_t nrows, Py_ssize_t slot,
                             double stp, const double *d, const double *g,
                             const double *g_old, int want_y, Py_ssize_t lo, Py_ssize_t hi,
                             double *out)
    void fs_lbfgs_set_block(Py_ssize_t block)
    void fs_lbfgs_combine(const double *rows, Py_ssize_t n, Py_ssize_t nrows,
                          const double *coefs, double gamma, const double *g, Py_ssize_t lo,
                          Py_ssize_t hi, double *out, double *dots)
    void fs_lbfgs_axpy(const double *x, double stp, const double *d, const double *scale,
                       Py_ssize_t lo, Py_ssize_t hi, double *out)
    void fs_lbfgs_copy_dot(const double *src, const double *d, const double *scale,
                           Py_ssize_t lo, Py_ssize_t hi, double *out, double *dots)


cdef inline Py_ssize_t _split(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t t) noexcept nogil:
    # the start of part t of [0, n), on a multiple of 8 columns (whole cache lines)
    cdef Py_ssize_t step = ((n + parts - 1) // parts + 7) // 8 * 8
    return min(t * step, n)


cdef inline int _threads(Py_ssize_t n, int num_threads) noexcept nogil:
    # at least 64k columns a thread: below, starting threads costs more than it saves
    cdef Py_ssize_t most = max(n // 65536, 1)
    return <int>min(<Py_ssize_t>max(num_threads, 1), most)


def products(double[:, ::1] rows, Py_ssize_t nrows, Py_ssize_t slot, double stp,
             const double[::1] d, const double[::1] g, const double[::1] g_old,
             double[:, ::1] out, int num_threads):
    """With ``slot >= 0`` write ``s = stp d`` and ``y = g - g_old`` into that slot's rows;
    set ``out[r] = (rows[r] . g, rows[r] . y)`` (the second 0 without a slot) for
    ``r < nrows``."""
    cdef Py_ssize_t n = g.shape[0], t, r
    cdef int nt = _threads(n, num_threads)
    cdef int want_y = slot >= 0
    cdef double *part
    if out.shape[0] < nrows or out.shape[1] != 2 or rows.shape[0] < nrows or (
            nrows and rows.shape[1] != n) or (slot >= 0 and (2 * slot + 1 >= rows.shape[0]
                                                             or rows.shape[1] != n
                                                             or d.shape[0] != n
                                                             or g_old.shape[0] != n)):
        raise ValueError("products: inconsistent shapes")
    part = <double *>calloc(nt * 2 * nrows + 1, sizeof(double))
    if part == NULL:
        raise MemoryError()
    try:
        with nogil:
            for t in prange(nt, num_threads=nt, schedule="static"):
                fs_lbfgs_products(
                    &rows[0, 0] if rows.shape[0] else NULL, n, nrows, slot, stp,
                    &d[0] if n else NULL, &g[0] if n else NULL, &g_old[0] if n else NULL,
                    want_y, _split(n, nt, t), _split(n, nt, t + 1), part + t * 2 * nrows)
        for r in range(nrows):
            out[r, 0] = 0
            out[r, 1] = 0
            for t in range(nt):
                out[r, 0] += part[t * 2 * nrows + 2 * r]
                out[r, 1] += part[t * 2 * nrows + 2 * r + 1]
    finally:
        free(part)


def combine(const double[:, ::1] rows, Py_ssize_t nrows, const double[::1] coefs, double gamma,
            const double[::1] g, double[::1] out, int num_threads):
    """``out = coefs[:nrows] @ rows[:nrows] - gamma g``; return ``(g . out, out . out)``."""
    cdef Py_ssize_t n = g.shape[0], t
    cdef int nt = _threads(n, num_threads)
    cdef double *dots
    cdef double gd = 0, dd = 0
    if out.shape[0] != n or coefs.shape[0] < nrows or rows.shape[0] < nrows or (
            nrows and rows.shape[1] != n):
        raise ValueError("combine: inconsistent shapes")
    dots = <double *>calloc(2 * nt, sizeof(double))
    if dots == NULL:
        raise MemoryError()
    try:
        with nogil:
            for t in prange(nt, num_threads=nt, schedule="static"):
                fs_lbfgs_combine(&rows[0, 0] if nrows else NULL, n, nrows,
                                 &coefs[0] if nrows else NULL, gamma, &g[0] if n else NULL,
                                 _split(n, nt, t), _split(n, nt, t + 1),
                                 &out[0] if n else NULL, dots + 2 * t)
        for t in range(nt):
            gd += dots[2 * t]
            dd += dots[2 * t + 1]
    finally:
        free(dots)
    return gd, dd


cdef inline const double *_optional(const double[::1] v, Py_ssize_t n) except? NULL:
    # the data of an optional vector of length n (None: NULL)
    if v is None:
        return NULL
    if v.shape[0] != n:
        raise ValueError("inconsistent shapes")
    return &v[0] if n else NULL


def axpy(const double[::1] x, double stp, const double[::1] d, const double[::1] scale,
         double[::1] out, int num_threads):
    """``out = x + stp (scale d)`` (``scale`` None: ones)."""
    cdef Py_ssize_t n = x.shape[0], t
    cdef int nt = _threads(n, num_threads)
    cdef const double *sc
    if d.shape[0] != n or out.shape[0] != n:
        raise ValueError("axpy: inconsistent shapes")
    sc = _optional(scale, n)
    if n == 0:
        return
    with nogil:
        for t in prange(nt, num_threads=nt, schedule="static"):
            fs_lbfgs_axpy(&x[0], stp, &d[0], sc, _split(n, nt, t), _split(n, nt, t + 1),
                          &out[0])


def copy_dot(const double[::1] src, const double[::1] d, const double[::1] scale,
             double[::1] out, int num_threads):
    """``out = scale src`` (``scale`` None: ones); return ``(out . d, max |src|)``."""
    cdef Py_ssize_t n = src.shape[0], t
    cdef int nt = _threads(n, num_threads)
    cdef double total = 0, gmax = 0
    cdef double parts[512]
    cdef const double *sc
    if d.shape[0] != n or out.shape[0] != n:
        raise ValueError("copy_dot: inconsistent shapes")
    sc = _optional(scale, n)
    if n == 0:
        return 0.0, 0.0
    nt = min(nt, 256)
    for t in range(nt):
        parts[2 * t] = 0
        parts[2 * t + 1] = 0
    with nogil:
        for t in prange(nt, num_threads=nt, schedule="static"):
            fs_lbfgs_copy_dot(&src[0], &d[0], sc, _split(n, nt, t), _split(n, nt, t + 1),
                              &out[0], parts + 2 * t)
    for t in range(nt):
        total += parts[2 * t]
        gmax = max(gmax, parts[2 * t + 1])
    return total, gmax


def _set_block(Py_ssize_t block):
    """Tuning only: the columns of a block of the passes."""
    fs_lbfgs_set_block(block)
