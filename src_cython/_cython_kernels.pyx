# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled kernels of the ``cython`` backend.

Three layers, as in scikit-learn's ``sklearn/_loss``:

1. per-row / per-element ``nogil`` functions (the SIMD row kernels and block
   products live in C, ``fs_simd.h``, with run-time instruction-set
   dispatch; the scalar element functions are below);
2. array loops over them, split over OpenMP threads with ``prange`` (the
   thread count is passed in by the caller);
3. the thin Python module :mod:`fastsoftmax._backends.cython`, which exports the
   kernel protocol and allocates buffers.

Inputs are ``const`` typed memoryviews, so read-only arrays work.  All arrays
must be C-contiguous; the wrapper guarantees it.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport exp, expf, log1p, log1pf, fabs, fabsf, pow, sqrt, sqrtf
from libc.string cimport memset
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint8_t

ctypedef fused floating:
    float
    double

# X of the products may also be raw uint8 pixels
ctypedef fused xtype:
    float
    double
    uint8_t

# the C kernels of fs_simd.h (SIMD, dispatched per instruction set), declared once
from fs_simd cimport *

# rows per block of the fused kernels (row-pointer tables live on the stack)
cdef enum:
    MAX_BLOCK = 512
    # bytes of X per chunk of a minibatch in train_epoch (cython.py's
    # _BLOCK_BYTES for the full-batch blocks): the chunk stays in L2 between
    # the forward and the backward product
    _BLOCK_BYTES = 131072

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

# a row kernel of fs_simd.h: (x, out, rows, row length), for each float type
ctypedef void (*rows_kernel_f32)(const float *x, float *out, Py_ssize_t n,
                                 Py_ssize_t k) noexcept nogil
ctypedef void (*rows_kernel_f64)(const double *x, double *out, Py_ssize_t n,
                                 Py_ssize_t k) noexcept nogil


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
    # log(1 + exp(z)) - y z == (1 - y) z + log1p(exp(-z)) for z > 0, -y z +
    # log1p(exp(z)) otherwise; a zero coefficient gives 0 (not 0 * inf), so
    # z = +-inf gives the limit
    cdef floating e = _exp(-_abs(z))
    cdef floating coef = (1 - y) if z > 0 else -y
    cdef floating lin = coef * z if coef != 0 else 0
    if floating is float:
        return lin + log1pf(e)
    else:
        return lin + log1p(e)


cdef inline void _fwd(const xtype **rows, Py_ssize_t n, Py_ssize_t d, const floating *WT,
                      const floating *b, Py_ssize_t C, floating *Z, Py_ssize_t rs, Py_ssize_t cs,
                      const xtype **next) noexcept nogil:
    # Z = X (n, d) @ WT (C, d)^T + b with Z[i rs + c cs] for row i, class c
    # (row-major: rs = C, cs = 1; class-major: rs = 1, cs = n), X given by
    # its row pointers, floating (the same type) or uint8; meanwhile
    # prefetches the rows next[0..n) (unless next is NULL)
    if xtype is uint8_t:
        if floating is float:
            fs_fwd_u8_f32(rows, n, d, WT, b, C, Z, rs, cs, next)
        else:
            fs_fwd_u8_f64(rows, n, d, WT, b, C, Z, rs, cs, next)
    elif xtype is float:
        if floating is float:
            fs_fwd_f_f32(rows, n, d, WT, b, C, Z, rs, cs, next)
    else:
        if floating is double:
            fs_fwd_f_f64(rows, n, d, WT, b, C, Z, rs, cs, next)
    # (a float/double mix does nothing here: the def functions refuse it, _check_x_type)


cdef inline void _bwd(const xtype **rows, Py_ssize_t n, Py_ssize_t d, const floating *R,
                      Py_ssize_t C, floating *dWT, const xtype **next) noexcept nogil:
    # dWT (C, d) += R^T @ X (n, d), R class-major (R[c n + i]); meanwhile
    # prefetches the rows next[0..n) (unless next is NULL)
    if xtype is uint8_t:
        if floating is float:
            fs_bwd_u8_f32(rows, n, d, R, C, dWT, next)
        else:
            fs_bwd_u8_f64(rows, n, d, R, C, dWT, next)
    elif xtype is float:
        if floating is float:
            fs_bwd_f_f32(rows, n, d, R, C, dWT, next)
    else:
        if floating is double:
            fs_bwd_f_f64(rows, n, d, R, C, dWT, next)
    # (a float/double mix does nothing here: the def functions refuse it, _check_x_type)


cdef inline void _block_rows(const xtype *X, Py_ssize_t n, Py_ssize_t n_after, Py_ssize_t d,
                             const xtype **rows, const xtype **next) noexcept nogil:
    # row tables of a contiguous block and of the n_after rows that follow it
    cdef Py_ssize_t i
    for i in range(n):
        rows[i] = X + i * d
        next[i] = X + (n + min(i, n_after - 1)) * d if n_after > 0 else X


cdef double _softmax_ce_chunk(const xtype **rows, const xtype **next, Py_ssize_t n, Py_ssize_t d,
                              const floating *WT, const floating *b, Py_ssize_t C,
                              const Py_ssize_t *y, const floating *sw, floating *Z,
                              floating *dWT, double *db) noexcept nogil:
    # A chunk of rows small enough to stay in L2: logits in Z (class-major,
    # n C entries), the residual s (P - Y) in place with its class sums added
    # to db, then dWT += residual^T X from the cached rows.  Both products
    # prefetch the rows next[0..n) (unless next is NULL).  Returns sum s CE.
    cdef double loss
    _fwd(rows, n, d, WT, b, C, Z, 1, n, next)
    if floating is float:
        loss = fs_ce_residual_cols_f32(Z, n, C, y, sw, db)
    else:
        loss = fs_ce_residual_cols_f64(Z, n, C, y, sw, db)
    _bwd(rows, n, d, Z, C, dWT, next)
    return loss


cdef inline int _check_x_type(const xtype *X, const floating *W) except -1:
    # Cython instantiates every (xtype, floating) pair; X must be uint8 or of
    # the weights' type, and a float/double mix (which _fwd/_bwd would skip,
    # leaving the output unwritten) is refused.  Called with NULL pointers:
    # only the types matter.
    if (xtype is float and floating is double) or (xtype is double and floating is float):
        raise TypeError(
            f"X ({'float32' if xtype is float else 'float64'}) must be uint8 or of the weights' "
            f"dtype ({'float32' if floating is float else 'float64'})")
    return 0


# ------------------------------------------------------------------------
# Layer 2: array loops, rows split over threads

cdef inline Py_ssize_t _start(Py_ssize_t part, Py_ssize_t parts, Py_ssize_t n) noexcept nogil:
    return part * n // parts


cdef void _split_rows(rows_kernel_f32 kernel_f32, rows_kernel_f64 kernel_f64,
                      const floating[:, ::1] x, floating *out, Py_ssize_t out_row_size,
                      int num_threads) noexcept:
    # rows of x (n >= 1, k >= 1) in num_threads contiguous parts, one row
    # kernel call per part; out holds out_row_size entries per row
    cdef Py_ssize_t n = x.shape[0], k = x.shape[1], p, a, z
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                if floating is float:
                    kernel_f32(&x[a, 0], out + a * out_row_size, z - a, k)
                else:
                    kernel_f64(&x[a, 0], out + a * out_row_size, z - a, k)


def softmax_rows(const floating[:, ::1] x, floating[:, ::1] out, int num_threads):
    """Row-wise softmax of ``x`` (n, k) into ``out`` (n, k), which may be ``x``."""
    if x.shape[0] and x.shape[1]:
        _split_rows(fs_softmax_rows_f32, fs_softmax_rows_f64, x, &out[0, 0], out.shape[1],
                    num_threads)


def log_softmax_rows(const floating[:, ::1] x, floating[:, ::1] out, int num_threads):
    """Row-wise log-softmax of ``x`` (n, k) into ``out`` (n, k), which may be ``x``."""
    if x.shape[0] and x.shape[1]:
        _split_rows(fs_log_softmax_rows_f32, fs_log_softmax_rows_f64, x, &out[0, 0],
                    out.shape[1], num_threads)


def logsumexp_rows(const floating[:, ::1] x, floating[::1] out, int num_threads):
    """Row-wise log-sum-exp of ``x`` (n, k >= 1) into ``out`` (n,)."""
    if x.shape[0] and x.shape[1]:
        _split_rows(fs_logsumexp_rows_f32, fs_logsumexp_rows_f64, x, &out[0], 1, num_threads)


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
    """Per-row ``logsumexp(z_i) - z_i[y_i]``, as ``(max_i - z_i[y_i]) + log(sum
    exp(z_i - max_i))``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], p, a, z
    if n == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                if floating is float:
                    fs_cross_entropy_rows_f32(&logits[a, 0], &y[a], &out[a], z - a, k)
                else:
                    fs_cross_entropy_rows_f64(&logits[a, 0], &y[a], &out[a], z - a, k)


cdef void _linear_rows(const xtype *X, Py_ssize_t n, Py_ssize_t d, const floating *WT,
                       const floating *b, Py_ssize_t C, floating *Z) noexcept nogil:
    cdef const xtype *rows[MAX_BLOCK]
    cdef const xtype *ahead[MAX_BLOCK]
    cdef Py_ssize_t a = 0, m, i
    while a < n:
        m = min(<Py_ssize_t>MAX_BLOCK, n - a)
        for i in range(m):
            rows[i] = X + (a + i) * d
            # prefetch distance: the hardware prefetcher alone leaves loads waiting
            ahead[i] = X + min(a + i + 24, n - 1) * d
        _fwd(rows, m, d, WT, b, C, Z + a * C, C, 1, ahead)
        a += m


def linear(const xtype[:, ::1] X, const floating[:, ::1] WT, const floating[::1] b,
           floating[:, ::1] out, int num_threads):
    """``out = X @ WT.T + b`` (WT the weights in the layout of ``coef_``, (C, d))."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0], p, a, z
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    if n == 0 or C == 0:
        return
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _linear_rows(&X[a, 0], z - a, d, &WT[0, 0], &b[0], C, &out[a, 0])


cdef double _softmax_ce_block(const xtype *X, Py_ssize_t n, Py_ssize_t n_after, Py_ssize_t d,
                              const floating *WT, const floating *b, Py_ssize_t C,
                              const Py_ssize_t *y, const floating *sw, floating *Z,
                              floating *dWT, double *db) noexcept nogil:
    # One block of rows, read from memory once, while the rows after it are
    # prefetched.
    cdef const xtype *rows[MAX_BLOCK]
    cdef const xtype *next[MAX_BLOCK]
    _block_rows(X, n, n_after, d, rows, next)
    return _softmax_ce_chunk(rows, next if n_after > 0 else NULL, n, d, WT, b, C, y, sw, Z, dWT,
                             db)


def softmax_ce_sums(const xtype[:, ::1] X, const floating[:, ::1] WT,
                    const floating[::1] b, const Py_ssize_t[::1] y,
                    const floating[::1] sample_weight,
                    floating[:, :, ::1] dWT_acc, double[:, ::1] db_acc,
                    floating[:, :, ::1] Z_buf, int num_threads):
    """Fused softmax regression pass over blocks of rows: the data-term sums.

    With ``WT`` the weights in the layout of ``coef_`` (C, d), adds thread
    ``t``'s share of ``(s (P - Y))^T X`` (C, d) to ``dWT_acc[t]`` and of the
    column sums of ``s (P - Y)`` to ``db_acc[t]``; ``Z_buf`` (threads, block,
    C) is scratch (a block's logits, class-major).  An empty
    ``sample_weight`` means unit weights.  Returns ``sum_i s_i CE_i``.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0]
    cdef Py_ssize_t block = Z_buf.shape[1], nblocks, k, a, t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef double loss = 0
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    if block > MAX_BLOCK:
        raise ValueError(f"blocks of at most {MAX_BLOCK} rows, got {block}")
    if n == 0 or C == 0:
        return 0.0
    nblocks = (n + block - 1) // block
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _softmax_ce_block(
                &X[a, 0], min(block, n - a), max(0, n - a - block), d, &WT[0, 0], &b[0], C, &y[a],
                sw + a if sw != NULL else NULL, &Z_buf[t, 0, 0], &dWT_acc[t, 0, 0], &db_acc[t, 0])
    return loss


cdef double _logistic_block(const xtype *X, Py_ssize_t n, Py_ssize_t n_after, Py_ssize_t d,
                            const floating *w, floating b, const floating *y, const floating *sw,
                            floating *z, floating *dw, double *db) noexcept nogil:
    cdef double loss = 0
    cdef Py_ssize_t i
    cdef floating s
    cdef const xtype *rows[MAX_BLOCK]
    cdef const xtype *next[MAX_BLOCK]
    _block_rows(X, n, n_after, d, rows, next)
    _fwd(rows, n, d, w, &b, 1, z, 1, n, next if n_after > 0 else NULL)
    for i in range(n):
        s = sw[i] if sw != NULL else 1
        loss += s * _bce(z[i], y[i])
        z[i] = s * (_sigmoid(z[i]) - y[i])
        db[0] += z[i]
    _bwd(rows, n, d, z, 1, dw, next if n_after > 0 else NULL)
    return loss


def logistic_sums(const xtype[:, ::1] X, const floating[::1] w, double b,
                  const floating[::1] y, const floating[::1] sample_weight,
                  floating[:, ::1] dw_acc, double[:, ::1] db_acc,
                  floating[:, ::1] z_buf, int num_threads):
    """Fused binary logistic pass; the binary counterpart of
    :func:`softmax_ce_sums` (``dw_acc`` (threads, d), ``db_acc`` (threads,
    1), ``z_buf`` (threads, block)).  Returns ``sum_i s_i BCE_i``."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1]
    cdef Py_ssize_t block = z_buf.shape[1], nblocks, k, a, t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef floating bf = <floating>b
    cdef double loss = 0
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    if block > MAX_BLOCK:
        raise ValueError(f"blocks of at most {MAX_BLOCK} rows, got {block}")
    if n == 0:
        return 0.0
    nblocks = (n + block - 1) // block
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _logistic_block(
                &X[a, 0], min(block, n - a), max(0, n - a - block), d, &w[0], bf, &y[a],
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


# ------------------------------------------------------------------------
# Whole-epoch minibatch training (see "Optional whole-epoch kernel" in
# fastsoftmax._backends).  Learner codes: 0 sgd, 1 momentum, 2 nesterov,
# 3 adagrad, 4 adadelta, 5 rmsprop, 6 adam.

cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef void _learner_update(int kind, floating *p, const floating *g, floating *s1, floating *s2,
                          Py_ssize_t size, double lr, double mu, double rho, double beta1,
                          double beta2, double eps, long t) noexcept nogil:
    # The element-wise operations of fastsoftmax.learners, in the same order
    # (scalars cast to the parameter dtype, bias corrections in float64).
    cdef Py_ssize_t i
    cdef floating lr_f = <floating>lr, mu_f = <floating>mu, rho_f = <floating>rho
    cdef floating omr = <floating>(1.0 - rho), eps_f = <floating>eps
    cdef floating a, mu2, v, s, eg, dx, m, b1, omb1, b2, omb2, inv_c2, step
    if kind == 0:
        for i in range(size):
            p[i] -= g[i] * lr_f
    elif kind == 1:
        for i in range(size):
            v = s1[i] * mu_f - g[i] * lr_f
            s1[i] = v
            p[i] += v
    elif kind == 2:
        # p += -mu v_prev + (1 + mu) v_new, as learners.Nesterov computes it
        a = (1 + mu_f) * lr_f
        mu2 = mu_f * mu_f
        for i in range(size):
            v = s1[i]
            p[i] = (p[i] - g[i] * a) + v * mu2
            s1[i] = v * mu_f - g[i] * lr_f
    elif kind == 3:
        for i in range(size):
            s = s1[i] + g[i] * g[i]
            s1[i] = s
            p[i] -= (g[i] / (_sqrt(s) + eps_f)) * lr_f
    elif kind == 4:
        for i in range(size):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            dx = -((_sqrt(s2[i] + eps_f) / _sqrt(eg + eps_f)) * g[i])
            s2[i] = s2[i] * rho_f + (dx * dx) * omr
            p[i] += dx * lr_f
    elif kind == 5:
        for i in range(size):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            p[i] -= (g[i] / (_sqrt(eg) + eps_f)) * lr_f
    else:  # Adam; t already counts this step
        b1 = <floating>beta1
        omb1 = <floating>(1.0 - beta1)
        b2 = <floating>beta2
        omb2 = <floating>(1.0 - beta2)
        inv_c2 = <floating>(1.0 / (1.0 - pow(beta2, <double>t)))
        step = <floating>(<double>lr_f / (1.0 - pow(beta1, <double>t)))
        for i in range(size):
            m = s1[i] * b1 + g[i] * omb1
            v = s2[i] * b2 + (g[i] * g[i]) * omb2
            s1[i] = m
            s2[i] = v
            p[i] -= (m / (_sqrt(v * inv_c2) + eps_f)) * step


cdef void _epoch_part(const xtype **rows, const xtype **next_rows, Py_ssize_t a, Py_ssize_t e,
                      Py_ssize_t d, Py_ssize_t C, const floating *p, const floating *b,
                      const Py_ssize_t *yb, const floating *swb, floating *Z, floating *g,
                      double *gb_sum, double *data) noexcept nogil:
    # One thread's share, rows [a, e) of the minibatch: forward, residual,
    # and its own gradient accumulators g (C, d), gb_sum (C,), data (1,).
    # The share goes in chunks of about _BLOCK_BYTES of X (like the fused
    # full-batch pass): the backward product then re-reads each chunk from
    # L1/L2, where a whole minibatch of rows would spill out of them.
    cdef Py_ssize_t c, s, m, i, q, chunk
    cdef const xtype *pf[MAX_BLOCK]
    memset(g, 0, C * d * sizeof(floating))
    for c in range(C):
        gb_sum[c] = 0
    data[0] = 0
    if e <= a:
        return
    chunk = max(4, min(<Py_ssize_t>MAX_BLOCK, _BLOCK_BYTES // max(1, d * <Py_ssize_t>sizeof(xtype))) // 4 * 4)
    # equal chunks (multiples of 4 rows, the forward tile), not a short last one
    m = (e - a + chunk - 1) // chunk
    chunk = min(<Py_ssize_t>MAX_BLOCK, ((e - a + m - 1) // m + 3) // 4 * 4)
    s = a
    while s < e:
        m = min(chunk, e - s)
        # the rows after this chunk (this share's rows of the next minibatch
        # after the last chunk) are prefetched by its two products
        for i in range(m):
            q = s + m + i
            pf[i] = rows[q] if q < e else next_rows[min(a + q - e, e - 1)]
        data[0] += _softmax_ce_chunk(rows + s, pf, m, d, p, b, C, yb + s,
                                     swb + s if swb != NULL else NULL, Z + s * C, g, gb_sum)
        s += m


cdef void _epoch_update(Py_ssize_t s0, Py_ssize_t s1, int nt, Py_ssize_t size, floating *p,
                        floating *G, floating scale, floating l2, int kind, floating *st1,
                        floating *st2, double lr, double mu, double rho, double beta1,
                        double beta2, double eps, long t) noexcept nogil:
    # Entries [s0, s1) of W: the threads' gradients summed, scaled, the l2
    # term added, and the learner's step.
    cdef Py_ssize_t i, k
    cdef floating acc
    for i in range(s0, s1):
        acc = G[i]
        for k in range(1, nt):
            acc = acc + G[k * size + i]
        G[i] = acc * scale + l2 * p[i]
    _learner_update(kind, p + s0, G + s0, st1 + s0, st2 + s0, s1 - s0, lr, mu, rho, beta1,
                    beta2, eps, t)


def train_epoch(const xtype[:, ::1] X, const Py_ssize_t[::1] y, const floating[::1] sample_weight,
                double weight_mean, floating[:, ::1] WT, floating[::1] b,
                const Py_ssize_t[::1] order, Py_ssize_t batch_size, double l2, bint fit_intercept,
                int kind, double lr, double mu, double rho, double beta1, double beta2, double eps,
                long t, floating[::1] sW1, floating[::1] sW2, floating[::1] sb1, floating[::1] sb2,
                Py_ssize_t[::1] y_batch, floating[::1] sw_batch, floating[:, ::1] Z,
                floating[:, :, ::1] G, floating[::1] gb, double[:, ::1] gb_sum,
                double[::1] data_t):
    """One epoch of minibatch training over ``X[order]``; ``WT`` (C, d), ``b``
    and the flat learner states are updated in place.  The minibatch rows are
    used where they are (row-pointer tables).  Each minibatch is split over
    ``G.shape[0]`` threads (rows for the products, entries of ``W`` for the
    update).  The ``*_batch``, ``Z`` (batch, C), ``G`` (threads, C, d),
    ``gb`` (C,), ``gb_sum`` (threads, C) and ``data_t`` (threads,) arrays
    are scratch.  An empty ``sample_weight`` means unit weights;
    ``weight_mean > 0`` divides each weighted minibatch's data term by
    ``len(batch) * weight_mean``.  Returns ``(mean minibatch loss weighted by
    rows, t)``."""
    cdef Py_ssize_t n = order.shape[0], d = WT.shape[1], C = WT.shape[0], size = C * d
    cdef int nt = G.shape[0], tt
    cdef Py_ssize_t k, lo, hi, nb, r, i, c
    cdef bint weighted = sample_weight.shape[0] > 0
    cdef double data, m, scale, loss, total = 0.0, sq, gbs
    cdef floating *p = &WT[0, 0]
    cdef floating *g = &G[0, 0, 0]
    cdef floating *swb = &sw_batch[0] if weighted else NULL
    cdef const xtype **rows
    cdef const xtype **next_rows
    if n == 0:
        return 0.0, t
    rows = <const xtype **>malloc(2 * batch_size * sizeof(xtype *))
    if rows == NULL:
        raise MemoryError()
    next_rows = rows + batch_size
    with nogil:
        for k in range((n + batch_size - 1) // batch_size):
            lo = k * batch_size
            hi = min(lo + batch_size, n)
            nb = hi - lo
            for r in range(nb):
                i = order[lo + r]
                rows[r] = &X[i, 0]
                next_rows[r] = &X[order[min(hi + r, n - 1)], 0]
                y_batch[r] = y[i]
                if weighted:
                    sw_batch[r] = sample_weight[i]
            if nt == 1:
                _epoch_part(rows, next_rows, 0, nb, d, C, p, &b[0], &y_batch[0], swb, &Z[0, 0],
                            g, &gb_sum[0, 0], &data_t[0])
            else:
                for tt in prange(nt, num_threads=nt, schedule="static"):
                    _epoch_part(rows, next_rows, tt * nb // nt, (tt + 1) * nb // nt, d, C, p,
                                &b[0], &y_batch[0], swb, &Z[0, 0], &G[tt, 0, 0], &gb_sum[tt, 0],
                                &data_t[tt])
            data = 0
            for tt in range(nt):
                data = data + data_t[tt]
            if weighted and weight_mean > 0:
                m = nb * weight_mean  # the estimators' unbiased-estimate convention
            elif weighted:
                m = 0
                for r in range(nb):
                    m += sw_batch[r]
            else:
                m = nb
            scale = 1.0 / m if m > 0 else 0.0
            loss = data * scale
            if l2 != 0:
                sq = 0
                for i in range(size):
                    sq += <double>p[i] * p[i]
                loss += 0.5 * l2 * sq
            total += loss * nb
            t += 1
            if nt == 1 and kind == 0:
                # plain SGD: scaling and step fused in one vectorized pass
                if floating is float:
                    fs_sgd_step_f32(p, g, size, <float>scale, <float>l2, <float>lr)
                else:
                    fs_sgd_step_f64(p, g, size, scale, <double>l2, lr)
            elif nt == 1:
                _epoch_update(0, size, 1, size, p, g, <floating>scale, <floating>l2, kind,
                              &sW1[0], &sW2[0], lr, mu, rho, beta1, beta2, eps, t)
            else:
                for tt in prange(nt, num_threads=nt, schedule="static"):
                    _epoch_update(tt * size // nt, (tt + 1) * size // nt, nt, size, p, g,
                                  <floating>scale, <floating>l2, kind, &sW1[0], &sW2[0], lr, mu,
                                  rho, beta1, beta2, eps, t)
            if fit_intercept:
                for c in range(C):
                    gbs = 0
                    for tt in range(nt):
                        gbs = gbs + gb_sum[tt, c]
                    gb[c] = <floating>(gbs * scale)
                _learner_update(kind, &b[0], &gb[0], &sb1[0], &sb2[0], C, lr, mu, rho, beta1,
                                beta2, eps, t)
    free(rows)
    return total / n, t
