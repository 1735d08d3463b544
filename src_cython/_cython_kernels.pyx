# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels of the ``cython`` backend.

Three layers, as in scikit-learn's ``sklearn/_loss``:

1. per-row / per-element ``nogil`` functions (the SIMD row kernels and block
   products live in C, ``fs_simd.h``, with run-time instruction-set
   dispatch; the scalar element functions are below);
2. array loops over them, split over OpenMP threads with ``prange`` (the
   thread count is passed in by the caller);
3. the thin Python module :mod:`fastsoftmax.backends.cython`, which exports the
   kernel protocol and allocates buffers.

Inputs are ``const`` typed memoryviews, so read-only arrays work.  All arrays
must be C-contiguous; the wrapper guarantees it.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport exp, expf, log1p, log1pf, fabs, fabsf
from libc.stdint cimport uint8_t

ctypedef fused floating:
    float
    double

# X of the products may also be raw uint8 pixels
ctypedef fused xtype:
    float
    double
    uint8_t

cdef extern from "fs_simd.h" nogil:
    int fs_set_level(int level)
    int fs_level
    void fs_softmax_rows_f32(const float *x, float *out, Py_ssize_t n, Py_ssize_t k)
    void fs_softmax_rows_f64(const double *x, double *out, Py_ssize_t n, Py_ssize_t k)
    void fs_log_softmax_rows_f32(const float *x, float *out, Py_ssize_t n, Py_ssize_t k)
    void fs_log_softmax_rows_f64(const double *x, double *out, Py_ssize_t n, Py_ssize_t k)
    void fs_logsumexp_rows_f32(const float *x, float *out, Py_ssize_t n, Py_ssize_t k)
    void fs_logsumexp_rows_f64(const double *x, double *out, Py_ssize_t n, Py_ssize_t k)
    void fs_exp_array_f32(const float *x, float *out, Py_ssize_t n)
    void fs_exp_array_f64(const double *x, double *out, Py_ssize_t n)
    double fs_ce_residual_rows_f32(float *Z, Py_ssize_t n, Py_ssize_t C, const Py_ssize_t *y,
                                   const float *sw, double *db)
    double fs_ce_residual_rows_f64(double *Z, Py_ssize_t n, Py_ssize_t C, const Py_ssize_t *y,
                                   const double *sw, double *db)
    void fs_fwd_f_f32(const float *X, Py_ssize_t n, Py_ssize_t d, const float *WT, Py_ssize_t C,
                      float *Z)
    void fs_fwd_f_f64(const double *X, Py_ssize_t n, Py_ssize_t d, const double *WT, Py_ssize_t C,
                      double *Z)
    void fs_fwd_u8_f32(const uint8_t *X, Py_ssize_t n, Py_ssize_t d, const float *WT, Py_ssize_t C,
                       float *Z)
    void fs_fwd_u8_f64(const uint8_t *X, Py_ssize_t n, Py_ssize_t d, const double *WT,
                       Py_ssize_t C, double *Z)
    void fs_bwd_f_f32(const float *X, Py_ssize_t n, Py_ssize_t d, const float *R, Py_ssize_t C,
                      float *dWT)
    void fs_bwd_f_f64(const double *X, Py_ssize_t n, Py_ssize_t d, const double *R, Py_ssize_t C,
                      double *dWT)
    void fs_bwd_u8_f32(const uint8_t *X, Py_ssize_t n, Py_ssize_t d, const float *R, Py_ssize_t C,
                       float *dWT)
    void fs_bwd_u8_f64(const uint8_t *X, Py_ssize_t n, Py_ssize_t d, const double *R,
                       Py_ssize_t C, double *dWT)

_LEVEL_NAMES = ("baseline", "avx2", "avx512")


def set_simd_level(level=None):
    """Use the kernels of instruction set ``level`` ("baseline", "avx2",
    "avx512"; None: the best this CPU has, never more).  Returns the name of
    the level in use.  For tests and benchmarks."""
    cdef int lv = -1 if level is None else _LEVEL_NAMES.index(level)
    return _LEVEL_NAMES[fs_set_level(lv)]


def simd_level():
    """Name of the instruction set the kernels use now."""
    return _LEVEL_NAMES[fs_level]


set_simd_level(None)


# ------------------------------------------------------------------------
# Layer 1: row and element functions (C-level, nogil)

cdef inline void _softmax_rows(const floating *x, floating *out, Py_ssize_t n,
                               Py_ssize_t k) noexcept nogil:
    if floating is float:
        fs_softmax_rows_f32(x, out, n, k)
    else:
        fs_softmax_rows_f64(x, out, n, k)


cdef inline void _log_softmax_rows(const floating *x, floating *out, Py_ssize_t n,
                                   Py_ssize_t k) noexcept nogil:
    if floating is float:
        fs_log_softmax_rows_f32(x, out, n, k)
    else:
        fs_log_softmax_rows_f64(x, out, n, k)


cdef inline void _logsumexp_rows(const floating *x, floating *out, Py_ssize_t n,
                                 Py_ssize_t k) noexcept nogil:
    if floating is float:
        fs_logsumexp_rows_f32(x, out, n, k)
    else:
        fs_logsumexp_rows_f64(x, out, n, k)


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _abs(floating x) noexcept nogil:
    if floating is float:
        return fabsf(x)
    else:
        return fabs(x)


cdef inline floating _sigmoid(floating x) noexcept nogil:
    # exp(-|x|) never overflows
    cdef floating e = _exp(-_abs(x))
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


cdef inline floating _bce(floating z, floating y) noexcept nogil:
    # log(1 + exp(z)) - y z == max(z, 0) + log1p(exp(-|z|)) - y z
    cdef floating e = _exp(-_abs(z))
    cdef floating pos = z if z > 0 else 0
    if floating is float:
        return pos + log1pf(e) - y * z
    else:
        return pos + log1p(e) - y * z


cdef inline void _fwd(const xtype *X, Py_ssize_t n, Py_ssize_t d, const floating *WT,
                      Py_ssize_t C, floating *Z) noexcept nogil:
    # Z (n, C) += X (n, d) @ WT (C, d)^T; X is floating (same type) or uint8
    if xtype is uint8_t:
        if floating is float:
            fs_fwd_u8_f32(X, n, d, WT, C, Z)
        else:
            fs_fwd_u8_f64(X, n, d, WT, C, Z)
    elif xtype is float:
        if floating is float:
            fs_fwd_f_f32(X, n, d, WT, C, Z)
    else:
        if floating is double:
            fs_fwd_f_f64(X, n, d, WT, C, Z)


cdef inline void _bwd(const xtype *X, Py_ssize_t n, Py_ssize_t d, const floating *R,
                      Py_ssize_t C, floating *dWT) noexcept nogil:
    # dWT (C, d) += R (n, C)^T @ X (n, d)
    if xtype is uint8_t:
        if floating is float:
            fs_bwd_u8_f32(X, n, d, R, C, dWT)
        else:
            fs_bwd_u8_f64(X, n, d, R, C, dWT)
    elif xtype is float:
        if floating is float:
            fs_bwd_f_f32(X, n, d, R, C, dWT)
    else:
        if floating is double:
            fs_bwd_f_f64(X, n, d, R, C, dWT)


cdef inline void _init_rows(floating *Z, Py_ssize_t n, Py_ssize_t C,
                            const floating *b) noexcept nogil:
    cdef Py_ssize_t i, c
    for i in range(n):
        for c in range(C):
            Z[i * C + c] = b[c]


# ------------------------------------------------------------------------
# Layer 2: array loops, rows split over threads

cdef inline Py_ssize_t _start(Py_ssize_t part, Py_ssize_t parts, Py_ssize_t n) noexcept nogil:
    return part * n // parts


def softmax(const floating[:, ::1] x, floating[:, ::1] out, int num_threads):
    """Row-wise softmax; ``out`` may be ``x``."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], p, a, z
    if n == 0 or k == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _softmax_rows(&x[a, 0], &out[a, 0], z - a, k)


def log_softmax(const floating[:, ::1] x, floating[:, ::1] out, int num_threads):
    """Row-wise log-softmax; ``out`` may be ``x``."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], p, a, z
    if n == 0 or k == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _log_softmax_rows(&x[a, 0], &out[a, 0], z - a, k)


def logsumexp(const floating[:, ::1] x, floating[::1] out, int num_threads):
    """Row-wise log-sum-exp into ``out`` (n,)."""
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], p, a, z
    if n == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _logsumexp_rows(&x[a, 0], &out[a], z - a, k)


def exp_array(const floating[::1] x, floating[::1] out):
    """Element-wise vector exp (exposed to test it against ``np.exp``)."""
    if x.shape[0] == 0:
        return
    if floating is float:
        fs_exp_array_f32(&x[0], &out[0], x.shape[0])
    else:
        fs_exp_array_f64(&x[0], &out[0], x.shape[0])


def cross_entropy(const floating[:, ::1] logits, const Py_ssize_t[::1] y, floating[::1] out,
                  int num_threads):
    """Per-row ``logsumexp(z_i) - z_i[y_i]``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], p, a, z, i
    if n == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _logsumexp_rows(&logits[a, 0], &out[a], z - a, k)
                for i in range(a, z):
                    out[i] = out[i] - logits[i, y[i]]


def linear(const xtype[:, ::1] X, const floating[:, ::1] WT, const floating[::1] b,
           floating[:, ::1] out, int num_threads):
    """``out = X @ WT.T + b`` (WT is the transposed weights, (C, d))."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0], p, a, z
    if n == 0 or C == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _init_rows(&out[a, 0], z - a, C, &b[0])
                _fwd(&X[a, 0], z - a, d, &WT[0, 0], C, &out[a, 0])


cdef double _softmax_ce_block(const xtype *X, Py_ssize_t n, Py_ssize_t d,
                              const floating *WT, const floating *b, Py_ssize_t C,
                              const Py_ssize_t *y, const floating *sw, floating *Z,
                              floating *dWT, double *db) noexcept nogil:
    # One block of rows, read from memory once: logits, residual P - Y (in
    # L1), then the gradient from the same cached rows.
    cdef double loss
    _init_rows(Z, n, C, b)
    _fwd(X, n, d, WT, C, Z)
    if floating is float:
        loss = fs_ce_residual_rows_f32(Z, n, C, y, sw, db)
    else:
        loss = fs_ce_residual_rows_f64(Z, n, C, y, sw, db)
    _bwd(X, n, d, Z, C, dWT)
    return loss


def softmax_cross_entropy_grad(const xtype[:, ::1] X, const floating[:, ::1] WT,
                               const floating[::1] b, const Py_ssize_t[::1] y,
                               const floating[::1] sample_weight,
                               floating[:, :, ::1] dWT_acc, double[:, ::1] db_acc,
                               floating[:, :, ::1] Z_buf, int num_threads):
    """Fused softmax regression pass over blocks of rows.

    Adds thread ``t``'s share of ``X^T (s (P - Y))`` (transposed, (C, d)) to
    ``dWT_acc[t]`` and of the column sums of ``s (P - Y)`` to ``db_acc[t]``;
    ``Z_buf`` (threads, block, C) is scratch.  An empty ``sample_weight``
    means unit weights.  Returns ``sum_i s_i CE_i``.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0]
    cdef Py_ssize_t block = Z_buf.shape[1], nblocks, k, a, t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef double loss = 0
    if n == 0 or C == 0:
        return 0.0
    nblocks = (n + block - 1) // block
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _softmax_ce_block(
                &X[a, 0], min(block, n - a), d, &WT[0, 0], &b[0], C, &y[a],
                sw + a if sw != NULL else NULL, &Z_buf[t, 0, 0], &dWT_acc[t, 0, 0], &db_acc[t, 0])
    return loss


cdef double _logistic_block(const xtype *X, Py_ssize_t n, Py_ssize_t d, const floating *w,
                            floating b, const floating *y, const floating *sw, floating *z,
                            floating *dw, double *db) noexcept nogil:
    cdef double loss = 0
    cdef Py_ssize_t i
    cdef floating s
    for i in range(n):
        z[i] = b
    _fwd(X, n, d, w, 1, z)
    for i in range(n):
        s = sw[i] if sw != NULL else 1
        loss += s * _bce(z[i], y[i])
        z[i] = s * (_sigmoid(z[i]) - y[i])
        db[0] += z[i]
    _bwd(X, n, d, z, 1, dw)
    return loss


def logistic_loss_grad(const xtype[:, ::1] X, const floating[::1] w, double b,
                       const floating[::1] y, const floating[::1] sample_weight,
                       floating[:, ::1] dw_acc, double[:, ::1] db_acc,
                       floating[:, ::1] z_buf, int num_threads):
    """Fused binary logistic pass; the binary counterpart of
    :func:`softmax_cross_entropy_grad` (``dw_acc`` (threads, d), ``db_acc``
    (threads, 1), ``z_buf`` (threads, block)).  Returns ``sum_i s_i BCE_i``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef Py_ssize_t block = z_buf.shape[1], nblocks, k, a, t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef floating bf = <floating>b
    cdef double loss = 0
    if n == 0:
        return 0.0
    nblocks = (n + block - 1) // block
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _logistic_block(
                &X[a, 0], min(block, n - a), d, &w[0], bf, &y[a],
                sw + a if sw != NULL else NULL, &z_buf[t, 0], &dw_acc[t, 0], &db_acc[t, 0])
    return loss


def sigmoid(const floating[::1] x, floating[::1] out, int num_threads):
    """Element-wise logistic sigmoid; ``out`` may be ``x``."""
    cdef Py_ssize_t i
    for i in prange(x.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
        out[i] = _sigmoid(x[i])


def binary_cross_entropy(const floating[::1] logits, const floating[::1] y, floating[::1] out,
                         int num_threads):
    """Element-wise ``log(1 + exp(z)) - y z`` without overflow."""
    cdef Py_ssize_t i
    for i in prange(logits.shape[0], nogil=True, num_threads=num_threads, schedule="static"):
        out[i] = _bce(logits[i], y[i])


def classification_error_count(const floating[:, ::1] logits, const Py_ssize_t[::1] y,
                               int num_threads):
    """Number of rows whose first argmax (as ``np.argmax``: a NaN wins) differs from ``y``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], i, j, best
    cdef Py_ssize_t wrong = 0
    cdef floating m, v
    if k == 0:
        return n
    for i in prange(n, nogil=True, num_threads=num_threads, schedule="static"):
        best = 0
        m = logits[i, 0]
        for j in range(1, k):
            if m != m:
                break
            v = logits[i, j]
            if v > m or v != v:
                m = v
                best = j
        if best != y[i]:
            wrong += 1
    return wrong
