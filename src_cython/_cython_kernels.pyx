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
from libc.math cimport exp, expf, log, log1p, log1pf, fabs, fabsf, pow, sqrt, sqrtf, INFINITY
from libc.string cimport memset, memcpy
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint8_t, uint16_t

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

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int fs_openmp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fs_openmp_max_threads(void) { return 0; }
    #endif
    """
    int fs_openmp_max_threads() nogil


cdef extern from *:
    """
    #if defined(__x86_64__) || defined(__SSE2__)
    #include <xmmintrin.h>
    /* flush-to-zero and denormals-are-zero for this thread; returns the old MXCSR */
    static unsigned int fs_flush_denormals(void)
    {
        unsigned int old = _mm_getcsr();
        _mm_setcsr(old | 0x8040);
        return old;
    }
    static void fs_restore_csr(unsigned int old) { _mm_setcsr(old); }
    #else
    static unsigned int fs_flush_denormals(void) { return 0; }
    static void fs_restore_csr(unsigned int old) { (void)old; }
    #endif
    """
    unsigned int fs_flush_denormals() nogil
    void fs_restore_csr(unsigned int old) nogil


def openmp_max_threads():
    """The OpenMP runtime's thread limit for this thread (``OMP_NUM_THREADS``,
    ``threadpoolctl.threadpool_limits``), or 0 when built without OpenMP."""
    return fs_openmp_max_threads()


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


# the scalar sigmoid and binary cross-entropy: one definition, shared with _sparse_kernels
from fs_scalar cimport fs_bce as _bce, fs_sigmoid as _sigmoid


cdef inline void _fwd(const xtype **rows, Py_ssize_t n, Py_ssize_t d, const floating *Wp,
                      const floating *b, Py_ssize_t C, floating *Z, Py_ssize_t rs, Py_ssize_t cs,
                      const xtype **next) noexcept nogil:
    # Z = X (n, d) @ WT (C, d)^T + b with Z[i rs + c cs] for row i, class c
    # (row-major: rs = C, cs = 1; class-major: rs = 1, cs = n), X given by
    # its row pointers, floating (the same type) or uint8, WT by its panels
    # Wp (_packed_weights); meanwhile prefetches the rows next[0..n) (unless
    # next is NULL)
    if xtype is uint8_t:
        if floating is float:
            fs_fwd_u8_f32(rows, n, d, Wp, b, C, Z, rs, cs, next)
        else:
            fs_fwd_u8_f64(rows, n, d, Wp, b, C, Z, rs, cs, next)
    elif xtype is float:
        if floating is float:
            fs_fwd_f_f32(rows, n, d, Wp, b, C, Z, rs, cs, next)
    else:
        if floating is double:
            fs_fwd_f_f64(rows, n, d, Wp, b, C, Z, rs, cs, next)
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


cdef inline void _bwd_set(const xtype **rows, Py_ssize_t n, Py_ssize_t d, const floating *R,
                          Py_ssize_t C, floating *dWT, const xtype **next) noexcept nogil:
    # _bwd with dWT = R^T @ X instead of +=: the old dWT is not read (no zeroing pass)
    if xtype is uint8_t:
        if floating is float:
            fs_bwd_set_u8_f32(rows, n, d, R, C, dWT, next)
        else:
            fs_bwd_set_u8_f64(rows, n, d, R, C, dWT, next)
    elif xtype is float:
        if floating is float:
            fs_bwd_set_f_f32(rows, n, d, R, C, dWT, next)
    else:
        if floating is double:
            fs_bwd_set_f_f64(rows, n, d, R, C, dWT, next)


cdef inline void _block_rows(const xtype *X, Py_ssize_t n, Py_ssize_t n_after, Py_ssize_t d,
                             const xtype **rows, const xtype **next) noexcept nogil:
    # row tables of a contiguous block and of the n_after rows that follow it
    cdef Py_ssize_t i
    for i in range(n):
        rows[i] = X + i * d
        next[i] = X + (n + min(i, n_after - 1)) * d if n_after > 0 else X


cdef double _softmax_ce_chunk(const xtype **rows, const xtype **next, Py_ssize_t n, Py_ssize_t d,
                              const floating *Wp, const floating *b, Py_ssize_t C,
                              const Py_ssize_t *y, const floating *sw, floating *Z,
                              floating *dWT, double *db) noexcept nogil:
    return _ce_chunk(rows, next, n, d, Wp, b, C, y, sw, Z, dWT, db, 0)


cdef double _ce_chunk(const xtype **rows, const xtype **next, Py_ssize_t n, Py_ssize_t d,
                      const floating *Wp, const floating *b, Py_ssize_t C,
                      const Py_ssize_t *y, const floating *sw, floating *Z,
                      floating *dWT, double *db, bint set_grad) noexcept nogil:
    # _softmax_ce_chunk; with set_grad, dWT = residual^T X (its old entries unread)
    # A chunk of rows small enough to stay in L2, the weights packed
    # (_packed_weights): logits in Z (class-major,
    # n C entries), the residual s (P - Y) in place with its class sums added
    # to db, then dWT += residual^T X from the cached rows.  Both products
    # prefetch the rows next[0..n) (unless next is NULL).  Returns sum s CE.
    # Denormals are flushed to zero meanwhile (as in the tiled regime): with
    # wide logits (uint8 pixels) many probabilities underflow below the
    # normal range, and products with them take microcode assists on Intel
    # cores (2x slower on MNIST uint8 X).
    cdef double loss
    cdef unsigned int csr = fs_flush_denormals()
    _fwd(rows, n, d, Wp, b, C, Z, 1, n, next)
    if floating is float:
        loss = fs_ce_residual_cols_f32(Z, n, C, y, sw, db)
    else:
        loss = fs_ce_residual_cols_f64(Z, n, C, y, sw, db)
    if set_grad:
        _bwd_set(rows, n, d, Z, C, dWT, next)
    else:
        _bwd(rows, n, d, Z, C, dWT, next)
    fs_restore_csr(csr)
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


# O(1) checks at the compiled boundary (and one pass over the labels): a caller's
# bug becomes an exception here, never an out-of-bounds read or write.
cdef int _require(bint ok, str what) except -1:
    if not ok:
        raise ValueError(f"compiled kernel called with {what}")
    return 0


cdef int _require_threads(int num_threads, Py_ssize_t accumulators) except -1:
    # prange's threadid() indexes the per-thread accumulators
    return _require(1 <= num_threads <= accumulators,
                    f"num_threads={num_threads} for {accumulators} per-thread accumulators")


cdef int _require_labels(const Py_ssize_t[::1] y, Py_ssize_t n, Py_ssize_t C) except -1:
    cdef Py_ssize_t i, bad = 0
    _require(y.shape[0] == n, f"{y.shape[0]} labels for {n} rows")
    with nogil:
        for i in range(n):
            bad += (y[i] < 0) | (y[i] >= C)
    return _require(bad == 0, f"{bad} labels outside [0, {C})")


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
    _require(out.shape[0] == x.shape[0] and out.shape[1] == x.shape[1], "out of another shape")
    _require(num_threads >= 1, f"num_threads={num_threads}")
    if x.shape[0] and x.shape[1]:
        _split_rows(fs_softmax_rows_f32, fs_softmax_rows_f64, x, &out[0, 0], out.shape[1],
                    num_threads)


def log_softmax_rows(const floating[:, ::1] x, floating[:, ::1] out, int num_threads):
    """Row-wise log-softmax of ``x`` (n, k) into ``out`` (n, k), which may be ``x``."""
    _require(out.shape[0] == x.shape[0] and out.shape[1] == x.shape[1], "out of another shape")
    _require(num_threads >= 1, f"num_threads={num_threads}")
    if x.shape[0] and x.shape[1]:
        _split_rows(fs_log_softmax_rows_f32, fs_log_softmax_rows_f64, x, &out[0, 0],
                    out.shape[1], num_threads)


def logsumexp_rows(const floating[:, ::1] x, floating[::1] out, int num_threads):
    """Row-wise log-sum-exp of ``x`` (n, k >= 1) into ``out`` (n,)."""
    _require(out.shape[0] == x.shape[0], f"{out.shape[0]} outputs for {x.shape[0]} rows")
    _require(num_threads >= 1, f"num_threads={num_threads}")
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


def all_finite(const floating[::1] x, int num_threads):
    """Whether ``x`` holds no NaN and no infinity (the values in ``num_threads`` parts)."""
    cdef Py_ssize_t n = x.shape[0], p, a, z
    cdef int bad = 0
    _require(num_threads >= 1, f"num_threads={num_threads}")
    if n == 0:
        return True
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                if floating is float:
                    bad += 1 - fs_all_finite_f32(&x[a], z - a)
                else:
                    bad += 1 - fs_all_finite_f64(&x[a], z - a)
    return bad == 0


def cross_entropy(const floating[:, ::1] logits, const Py_ssize_t[::1] y, floating[::1] out,
                  int num_threads):
    """Per-row ``logsumexp(z_i) - z_i[y_i]``, as ``(max_i - z_i[y_i]) + log(sum
    exp(z_i - max_i))``."""
    cdef Py_ssize_t n = logits.shape[0], k = logits.shape[1], p, a, z
    if n == 0:
        return
    _require(out.shape[0] == n and num_threads >= 1, "out or num_threads out of range")
    _require_labels(y, n, k)
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                if floating is float:
                    fs_cross_entropy_rows_f32(&logits[a, 0], &y[a], &out[a], z - a, k)
                else:
                    fs_cross_entropy_rows_f64(&logits[a, 0], &y[a], &out[a], z - a, k)


cdef void _linear_rows(const xtype *X, Py_ssize_t n, Py_ssize_t d, const floating *Wp,
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
        _fwd(rows, m, d, Wp, b, C, Z + a * C, C, 1, ahead)
        a += m


def linear(const xtype[:, ::1] X, const floating[:, ::1] WT, const floating[::1] b,
           floating[:, ::1] out, int num_threads):
    """``out = X @ WT.T + b`` (WT the weights in the layout of ``coef_``, (C, d))."""
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0], p, a, z
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    _require(WT.shape[1] == d, f"weights of {WT.shape[1]} features for X of {d}")
    _require(b.shape[0] == C, f"{b.shape[0]} intercepts for {C} classes")
    _require(out.shape[0] == n and out.shape[1] == C, "out of another shape")
    _require(num_threads >= 1, f"num_threads={num_threads}")
    if n == 0 or C == 0:
        return
    cdef void *packed
    cdef const floating *Wp = _packed_weights(&WT[0, 0], C, d, &packed)
    with nogil:
        for p in prange(num_threads, num_threads=num_threads, schedule="static"):
            a = _start(p, num_threads, n)
            z = _start(p + 1, num_threads, n)
            if z > a:
                _linear_rows(&X[a, 0], z - a, d, Wp, &b[0], C, &out[a, 0])
    free(packed)


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


cdef const floating *_aligned_weights(const floating *WT, Py_ssize_t size, void **buffer) except? NULL:
    # WT itself if it starts on a cache line, else a copy that does (into
    # *buffer, for the caller to free): the forward products load every
    # weight vector once per pair of rows, and a load that straddles two cache
    # lines costs two (the fused MNIST pass: 8.3 -> 6.4 ms of forward product)
    cdef size_t address = <size_t>WT
    buffer[0] = NULL
    if address % 64 == 0 or size < 16:
        return WT
    buffer[0] = malloc(size * sizeof(floating) + 64)
    if buffer[0] == NULL:
        raise MemoryError()
    address = (<size_t>buffer[0] + 63) & ~(<size_t>63)
    memcpy(<void *>address, WT, size * sizeof(floating))
    return <const floating *>address


cdef const floating *_packed_weights(const floating *WT, Py_ssize_t C, Py_ssize_t d,
                                     void **buffer) except NULL:
    # WT (C, d) in the panels of the forward products (fs_pack_weights), on
    # cache lines (see _aligned_weights), in a buffer for the caller to free
    cdef Py_ssize_t line = 64 // sizeof(floating)
    cdef size_t address
    buffer[0] = malloc(max(1, C) * ((d + line - 1) // line * line) * sizeof(floating) + 64)
    if buffer[0] == NULL:
        raise MemoryError()
    address = (<size_t>buffer[0] + 63) & ~(<size_t>63)
    _pack_weights(WT, C, d, <floating *>address)
    return <const floating *>address


cdef inline void _pack_weights(const floating *WT, Py_ssize_t C, Py_ssize_t d,
                               floating *Wp) noexcept nogil:
    if floating is float:
        fs_pack_weights_f32(WT, C, d, Wp)
    else:
        fs_pack_weights_f64(WT, C, d, Wp)


cdef inline void _unpack_weights(const floating *Wp, Py_ssize_t C, Py_ssize_t d,
                                 floating *WT) noexcept nogil:
    if floating is float:
        fs_unpack_weights_f32(Wp, C, d, WT)
    else:
        fs_unpack_weights_f64(Wp, C, d, WT)


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
    _require(1 <= block, f"blocks of {block} rows")
    _require(WT.shape[1] == d, f"weights of {WT.shape[1]} features for X of {d}")
    _require(b.shape[0] == C, f"{b.shape[0]} intercepts for {C} classes")
    _require(sample_weight.shape[0] in (0, n), f"{sample_weight.shape[0]} weights for {n} rows")
    _require_threads(num_threads, min(dWT_acc.shape[0], db_acc.shape[0], Z_buf.shape[0]))
    _require(dWT_acc.shape[1] == C and dWT_acc.shape[2] == d and db_acc.shape[1] == C
             and Z_buf.shape[2] == C, "accumulators or scratch of another shape")
    _require_labels(y, n, C)
    nblocks = (n + block - 1) // block
    cdef void *packed
    cdef const floating *W = _packed_weights(&WT[0, 0], C, d, &packed)
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _softmax_ce_block(
                &X[a, 0], min(block, n - a), max(0, n - a - block), d, W, &b[0], C, &y[a],
                sw + a if sw != NULL else NULL, &Z_buf[t, 0, 0], &dWT_acc[t, 0, 0], &db_acc[t, 0])
    free(packed)
    return loss


# ------------------------------------------------------------------------
# The tiled regime of softmax_ce_sums, for many classes (see
# fastsoftmax._backends._tiling): per block of rows, pass A over class tiles
# keeps each (row, tile)'s logit maximum and sum of exponentials, pass B
# recomputes each tile's logits with the same register-blocked products,
# forms s (P - Y) and adds the tile's gradient rows.  Threads own class tiles:
# they write disjoint rows of dWT and db, so there are no per-thread
# accumulators of the (C, d) gradient and no atomics.

cdef extern from "fs_sparse_tiled.h" nogil:
    # a row's log-sum-exp from its per-tile maxima and sums (entries at stride `stride`)
    double fs_tiles_log_sum_exp(const double *tile_max, const double *tile_sum,
                                Py_ssize_t ntiles, Py_ssize_t stride)


cdef extern from "fs_tile_screen.h" nogil:
    # pass A's screening (float32, AMX bfloat16 tiles): exact bounds of a (row, tile)'s logits
    int fs_screen_available()
    double fs_screen_gamma(Py_ssize_t d)
    Py_ssize_t fs_screen_dpad(Py_ssize_t d)
    double FS_SCREEN_LIMIT
    void fs_screen_norms(const float *A, Py_ssize_t n, Py_ssize_t d, Py_ssize_t ld, double *out)
    void fs_screen_pack_rows(const float *X, Py_ssize_t ldx, Py_ssize_t h, Py_ssize_t d,
                             Py_ssize_t mp, uint16_t *Xs)
    void fs_screen_tile(const uint16_t *Xs, Py_ssize_t mp, Py_ssize_t d, const float *W,
                        const float *b, Py_ssize_t tc, const double *cn, const double *rn,
                        double gamma, uint16_t *Wb, float *Zs, double *ub, double *lb)


def screen_available():
    """Whether pass A of the tiled float32 kernel can screen its tiles (AMX bfloat16 tiles)."""
    return bool(fs_screen_available())


def screen_bounds(const float[:, ::1] X, const float[:, ::1] WT, const float[::1] b):
    """``(upper, lower)`` (n, C): the screening's bounds of each logit ``x_i . w_c + b_c``.

    For tests of the bound: one class a tile, the rows in blocks of 16 (what pass A's
    screening computes per (row, tile) is the max over the tile's classes of these).
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0], i, c, a, m, mp
    import numpy as np

    _require(fs_screen_available(), "no AMX bfloat16 tiles on this machine")
    _require(WT.shape[1] == d and b.shape[0] == C and d >= 1, "shapes")
    upper = np.full((n, C), np.inf)
    lower = np.full((n, C), -np.inf)
    cdef double[:, ::1] up = upper, lo = lower
    cdef Py_ssize_t dp = fs_screen_dpad(d)
    cdef double gamma = fs_screen_gamma(d)
    cn_arr = np.empty(3 * C)
    cdef double[::1] cn = cn_arr
    fs_screen_norms(&WT[0, 0], C, d, d, &cn[0])
    Xs_arr = np.zeros(16 * dp + 64, np.uint16)
    Wb_arr = np.zeros(16 * dp + 64, np.uint16)
    Zs_arr = np.zeros(16 * 64 + 32, np.float32)
    rn_arr = np.zeros(48)
    ub_arr = np.zeros(16)
    lb_arr = np.zeros(16)
    cdef uint16_t[::1] Xs = Xs_arr, Wb = Wb_arr
    cdef float[::1] Zs = Zs_arr
    cdef double[::1] rn = rn_arr, ub = ub_arr, lb = lb_arr
    cdef uint16_t *xs = <uint16_t *>((<size_t>&Xs[0] + 63) // 64 * 64)
    cdef uint16_t *wb = <uint16_t *>((<size_t>&Wb[0] + 63) // 64 * 64)
    cdef float *zs = _line_aligned(&Zs[0])
    for a in range(0, n, 16):
        m = min(16, n - a)
        rn[:] = 0
        fs_screen_norms(&X[a, 0], m, d, d, &rn[0])
        for i in range(m):
            if not (rn[3 * i + 1] <= FS_SCREEN_LIMIT):
                rn[3 * i] = -1
        fs_screen_pack_rows(&X[a, 0], d, m, d, 16, xs)
        for c in range(C):
            fs_screen_tile(xs, 16, d, &WT[c, 0], &b[c], 1, &cn[3 * c], &rn[0], gamma, wb, zs,
                           &ub[0], &lb[0])
            for i in range(m):
                up[a + i, c] = ub[i]
                lo[a + i, c] = lb[i]
    return upper, lower


cdef inline void _pack_panels(const floating *X, Py_ssize_t ldx, Py_ssize_t h, Py_ssize_t d,
                              floating *Xp, Py_ssize_t mp) noexcept nogil:
    # X's h rows (stride ldx) into the panels of fs_tile_logits, zero-padded to mp rows
    if floating is float:
        fs_pack_panels_f32(X, ldx, h, d, Xp, mp)
    else:
        fs_pack_panels_f64(X, ldx, h, d, Xp, mp)


cdef inline void _tile_logits(const floating *Xp, Py_ssize_t mp, Py_ssize_t d,
                              const floating *W, const floating *b, Py_ssize_t tc,
                              floating *Z, const floating *next, floating *tmax=NULL,
                              floating *tsum=NULL, bint keep=False,
                              const Py_ssize_t *label=NULL,
                              floating *label_logit=NULL) noexcept nogil:
    # Z (tc, mp), class-major, = W (tc, d) @ Xp (d, mp) + b; unless tmax is NULL, also each
    # row's max and sum of exponentials (with keep, z replaced by exp(z - shift)) and the
    # logits of the labels in the tile (label[i] >= 0), panel by panel
    if floating is float:
        fs_tile_logits_f32(Xp, mp, d, W, b, tc, Z, next, tmax, tsum, keep, label, label_logit)
    else:
        fs_tile_logits_f64(Xp, mp, d, W, b, tc, Z, next, tmax, tsum, keep, label, label_logit)


cdef inline void _tile_scale(floating *R, Py_ssize_t rs, const floating *E, Py_ssize_t es,
                             Py_ssize_t tc, Py_ssize_t hp, const floating *scale,
                             double *db) noexcept nogil:
    if floating is float:
        fs_tile_scale_f32(R, rs, E, es, tc, hp, scale, db)
    else:
        fs_tile_scale_f64(R, rs, E, es, tc, hp, scale, db)


cdef inline void _tile_scale_rows(floating *R, const floating *E, Py_ssize_t mp, Py_ssize_t tc,
                                  const Py_ssize_t *index, Py_ssize_t h, const floating *scale,
                                  double *db) noexcept nogil:
    if floating is float:
        fs_tile_scale_rows_f32(R, E, mp, tc, index, h, scale, db)
    else:
        fs_tile_scale_rows_f64(R, E, mp, tc, index, h, scale, db)


cdef inline void _tile_residual(floating *R, Py_ssize_t rs, const floating *L, Py_ssize_t ls,
                                Py_ssize_t tc, Py_ssize_t hp, const floating *lse,
                                const floating *w, double *db) noexcept nogil:
    if floating is float:
        fs_tile_residual_f32(R, rs, L, ls, tc, hp, lse, w, db)
    else:
        fs_tile_residual_f64(R, rs, L, ls, tc, hp, lse, w, db)


cdef inline Py_ssize_t _padded(Py_ssize_t m) noexcept nogil:
    # a multiple of every vector width of fs_tile_logits
    return (m + 15) // 16 * 16


cdef inline void _tile_grad(const floating *X, Py_ssize_t ldx, Py_ssize_t k, const floating *R,
                            Py_ssize_t tc, floating *dW, Py_ssize_t d, const void *pf0,
                            Py_ssize_t n0, const void *pf1, Py_ssize_t n1) noexcept nogil:
    # dW (tc, d) += R^T X (k rows), R class-major in a chunk of FS_TILE_GRAD_CHUNK rows;
    # prefetches n0 lines from pf0, n1 from pf1 into L2 meanwhile
    if floating is float:
        fs_tile_grad_f32(X, ldx, k, R, tc, dW, d, pf0, n0, pf1, n1)
    else:
        fs_tile_grad_f64(X, ldx, k, R, tc, dW, d, pf0, n0, pf1, n1)


cdef inline Py_ssize_t _chunked(Py_ssize_t m) noexcept nogil:
    # room for the residual chunks of m rows: whole chunks of FS_TILE_GRAD_CHUNK rows
    return (m + FS_TILE_GRAD_CHUNK - 1) // FS_TILE_GRAD_CHUNK * FS_TILE_GRAD_CHUNK


# blocks of rows screened at a time by pass A's screening (fs_tile_screen.h)
cdef enum:
    SCREEN_BLOCKS = 4

# rows per residual chunk of pass B (the scratch sizes of the Python caller depend on it)
TILE_GRAD_CHUNK = FS_TILE_GRAD_CHUNK


cdef inline Py_ssize_t _row_stride(Py_ssize_t d, Py_ssize_t itemsize) noexcept nogil:
    # Row stride (entries) of the rows packed for fs_tile_grad: whole cache lines, an odd
    # number of them.  A chunk's slice of rows at a stride of 2^k lines (1 KB at d = 256
    # float32) falls in a quarter of the L1 sets and does not stay in L1.
    cdef Py_ssize_t line = 64 // itemsize
    cdef Py_ssize_t ldx = (d + line - 1) // line * line
    return ldx + line if (ldx // line) % 2 == 0 else ldx


cdef inline floating *_line_aligned(floating *p) noexcept nogil:
    return <floating *>((<size_t>p + 63) // 64 * 64)


cdef inline void _convert_rows(const xtype **rows, Py_ssize_t h, Py_ssize_t d,
                               floating *out, Py_ssize_t ldx) noexcept nogil:
    # out (h, ldx) = rows[0..h) (their first d entries), of the weights' type
    cdef Py_ssize_t i, j
    for i in range(h):
        for j in range(d):
            out[i * ldx + j] = <floating>rows[i][j]


cdef Py_ssize_t _tile_pass_a(const floating *Xp, Py_ssize_t m, Py_ssize_t d,
                             const floating *WT, const floating *b, Py_ssize_t c0, Py_ssize_t tc,
                             const Py_ssize_t *y, floating *Z, floating *stored,
                             double *tile_max, double *tile_sum, double *label_logit,
                             const floating *next_W, const double *upper, const double *floor_,
                             int *position, const floating *Xrows, floating *Xp_hot,
                             floating *Xrow_hot) noexcept nogil:
    # logits of classes [c0, c0 + tc) for the m rows packed in Xp (class-major,
    # Z[c mp + i]; kept in stored (tc, mp) for pass B, as exp(z - the row's
    # tile max, 0 if not finite), unless stored is NULL);
    # tile_max[i] = max_c z_ic, tile_sum[i] = sum_c exp(z_ic - max), and the
    # label's logit of the rows whose label is in the tile.  Brings next_W (the
    # weights of this thread's next tile, unless NULL) into L2 meanwhile.
    # Screened (upper not NULL): only the rows that hold their label in the tile or
    # whose upper bound of the tile's logits (upper[i], screening) is not below
    # floor_[i]; they are compacted (Xrows, the block's rows for the gradient product,
    # copied to Xrow_hot and packed into Xp_hot), the tile's logits and kept
    # exponentials of the k-th of them go in column k (stride: k rounded up to 16),
    # position[i] = k (-1 for the others, whose tile_max is -inf and tile_sum 0).
    # Returns how many rows were computed.
    cdef floating row_max[MAX_BLOCK]
    cdef floating row_sum[MAX_BLOCK]
    cdef floating row_label[MAX_BLOCK]
    cdef Py_ssize_t label[MAX_BLOCK]
    cdef Py_ssize_t rows[MAX_BLOCK]
    cdef Py_ssize_t i, k, h = m, hp, ldx
    cdef floating *logits = stored if stored != NULL else Z
    cdef unsigned int csr
    if upper != NULL:
        h = 0
        for i in range(m):
            if c0 <= y[i] < c0 + tc or not upper[i] < floor_[i]:
                position[i] = h
                rows[h] = i
                h += 1
            else:
                position[i] = -1
                tile_max[i] = -INFINITY
                tile_sum[i] = 0
        if h == 0:
            return 0
        if h < m:
            ldx = _row_stride(d, sizeof(floating))
            for k in range(h):
                memcpy(Xrow_hot + k * ldx, Xrows + rows[k] * ldx, d * sizeof(floating))
            _pack_panels(Xrow_hot, ldx, h, d, Xp_hot, _padded(h))
            Xp = Xp_hot
    else:
        for k in range(m):
            rows[k] = k
    hp = _padded(h)
    # the exponentials of far-off logits are denormals, which cost the FMA units
    # a hundred cycles each on Intel: flushed to 0 (far below the skipping bound)
    csr = fs_flush_denormals()
    for k in range(hp):
        label[k] = y[rows[k]] - c0 if k < h and c0 <= y[rows[k]] < c0 + tc else -1
    # the statistics of each panel of rows right after its logits (kept for pass B as
    # exp(z - tile max) when stored)
    _tile_logits(Xp, hp, d, WT + c0 * d, b + c0, tc, logits, next_W, row_max, row_sum,
                 stored != NULL, label, row_label)
    for k in range(h):
        i = rows[k]
        tile_max[i] = row_max[k]
        tile_sum[i] = row_sum[k]
        if label[k] >= 0:
            label_logit[i] = row_label[k]
    fs_restore_csr(csr)
    return h


cdef Py_ssize_t _tile_pass_b(const floating *Xrows, const floating *Xp, Py_ssize_t m,
                             Py_ssize_t d, const floating *WT, const floating *b, Py_ssize_t c0,
                             Py_ssize_t tc, const Py_ssize_t *y, const floating *sw,
                             const double *lse, const double *tile_max, bint skip,
                             double log_threshold, const floating *stored, const int *position,
                             Py_ssize_t computed,
                             floating *Z, floating *Xp_hot, floating *Xrow_hot, floating *dWT,
                             double *db, const floating *next_W, const floating *next_dW,
                             const floating *next_kept) noexcept nogil:
    # s (P - Y) of classes [c0, c0 + tc) and its products into dWT, db, for the
    # rows of the block that hold the label in the tile or whose largest
    # probability in it reaches the threshold (all rows when not skip): the
    # others are left out of both products (compacted, re-packed rows).
    # Xrows (m, ldx) are the block's rows packed for fs_tile_grad (Xrow_hot
    # has room for as many), at the stride _row_stride, and Xp their panels
    # for fs_tile_logits (Xp_hot has room for as many); next_W, next_dW and
    # next_kept (unless NULL) the weights, gradient rows and kept logits of
    # this thread's next tile, brought into L2 meanwhile (prefetches never fault).  The residual R goes in
    # chunks of FS_TILE_GRAD_CHUNK rows, each class-major at that constant
    # stride (the layout of fs_tile_grad): at Z when pass A kept the logits,
    # else after the recomputed logits (tc mp entries).  With position (pass A
    # screened), only the `computed` rows of pass A (position[i] >= 0) are candidates,
    # and the kept exponentials of row i are column position[i] of stored (stride:
    # computed rounded up to 16).  Returns how many rows were hot.
    cdef Py_ssize_t hot_index[MAX_BLOCK]
    cdef Py_ssize_t hot_column[MAX_BLOCK]
    cdef Py_ssize_t ks
    cdef Py_ssize_t hot_label[MAX_BLOCK]
    cdef floating hot_lse[MAX_BLOCK + 16]
    cdef floating hot_weight[MAX_BLOCK + 16]
    cdef floating hot_scale[MAX_BLOCK + 16]
    cdef Py_ssize_t i, c, h = 0, hp, mp = _padded(m), k0, ck
    cdef Py_ssize_t K = FS_TILE_GRAD_CHUNK, ldx = _row_stride(d, sizeof(floating))
    cdef double shift
    cdef Py_ssize_t nch, q, lines_dW, lines_kept
    cdef unsigned int csr
    cdef bint here
    cdef const floating *G = Xrows
    cdef floating *R = Z if stored != NULL else Z + tc * mp
    cdef floating *Rk
    if position == NULL:
        computed = m
    ks = _padded(computed)
    for i in range(m):
        if position != NULL and position[i] < 0:
            continue
        here = c0 <= y[i] < c0 + tc
        if here or not skip or tile_max[i] - lse[i] >= log_threshold:
            hot_index[h] = i
            hot_column[h] = position[i] if position != NULL else i
            hot_label[h] = y[i] - c0 if here else -1
            hot_lse[h] = <floating>lse[i]
            hot_weight[h] = sw[i] if sw != NULL else 1
            # pass A kept exp(z - shift), shift the tile's max (0 if not finite)
            shift = tile_max[i] if tile_max[i] - tile_max[i] == 0 else 0
            hot_scale[h] = hot_weight[h] * _exp(<floating>(shift - lse[i]))
            h += 1
    if h == 0:
        return 0
    csr = fs_flush_denormals()  # as in _tile_pass_a
    hp = _padded(h)
    for i in range(h, hp):  # padding rows (zero in Xp): exp(z - inf) = 0, weight 0
        hot_lse[i] = <floating>INFINITY
        hot_weight[i] = 0
        hot_scale[i] = 0
    if h < m:  # the hot rows, contiguous, for the gradient product
        for i in range(h):
            memcpy(Xrow_hot + i * ldx, Xrows + hot_index[i] * ldx, d * sizeof(floating))
        G = Xrow_hot
    if stored == NULL:  # recompute the logits
        if h < m:
            _pack_panels(Xrow_hot, ldx, h, d, Xp_hot, hp)
            Xp = Xp_hot
        _tile_logits(Xp, hp, d, WT + c0 * d, b + c0, tc, Z, next_W)
    if stored != NULL and h < computed:  # the hot rows' kept exponentials, compacted
        _tile_scale_rows(R, stored, ks, tc, hot_column, h, hot_scale, db + c0)
    # the next tile's gradient rows and kept logits, prefetched in equal parts by the chunks
    nch = (h + K - 1) // K
    lines_dW = (tc * d * sizeof(floating) + 63) // 64 if next_dW != NULL else 0
    lines_kept = (tc * mp * sizeof(floating) + 63) // 64 if next_kept != NULL else 0
    k0 = 0
    while k0 < h:  # each chunk's residual right before its product (still in L1/L2)
        q = k0 // K
        Rk = R + k0 * tc
        ck = min(K, hp - k0)
        if stored == NULL:
            _tile_residual(Rk, K, Z + k0, hp, tc, ck, &hot_lse[k0], &hot_weight[k0], db + c0)
        elif h == computed:  # pass A kept the exponentials (tc, ks) of these very rows
            _tile_scale(Rk, K, stored + k0, ks, tc, ck, &hot_scale[k0], db + c0)
        for i in range(k0, min(k0 + K, h)):  # the label's -s_i
            if hot_label[i] >= 0:
                R[(i - i % K) * tc + hot_label[i] * K + i % K] -= hot_weight[i]
                db[c0 + hot_label[i]] -= hot_weight[i]
        _tile_grad(G + k0 * ldx, ldx, min(K, h - k0), R + k0 * tc, tc, dWT + c0 * d, d,
                   <const char *>next_dW + 64 * (q * lines_dW // nch),
                   (q + 1) * lines_dW // nch - q * lines_dW // nch,
                   <const char *>next_kept + 64 * (q * lines_kept // nch),
                   (q + 1) * lines_kept // nch - q * lines_kept // nch)
        k0 += K
    fs_restore_csr(csr)
    return h


def softmax_ce_sums_tiled(const xtype[:, ::1] X, const floating[:, ::1] WT,
                          const floating[::1] b, const Py_ssize_t[::1] y,
                          const floating[::1] sample_weight, floating[:, ::1] dWT,
                          double[::1] db, floating[:, ::1] Z_buf, floating[:, ::1] Xp_buf,
                          floating[:, ::1] Xrow_buf, double[:, ::1] tile_max, double[:, ::1] tile_sum,
                          floating[::1] stored_logits,
                          Py_ssize_t class_tile, bint skip, double log_threshold,
                          int num_threads, bint screen=False, Py_ssize_t[::1] counts=None):
    """The tiled regime of :func:`softmax_ce_sums`, for many classes.

    Adds ``(s (P - Y))^T X`` (C, d) to ``dWT`` and the column sums of
    ``s (P - Y)`` to ``db`` (zeroed by the caller), over blocks of
    ``tile_max.shape[1]`` rows (at most MAX_BLOCK) and tiles of
    ``class_tile`` classes.  Scratch (each row of it, and ``stored_logits``,
    with room for a cache line more, aligned to one): ``Z_buf`` (threads,
    class_tile x (mp rounded up to TILE_GRAD_CHUNK), plus class_tile x mp
    without ``stored_logits``) a tile's residual (and logits) per thread,
    ``Xp_buf`` (threads + 1, d x mp) the block of rows in the panels of
    fs_tile_logits (row 0) and each thread's hot rows, with mp the block
    rounded up to a multiple of 16; ``Xrow_buf`` (threads + 1, block x (d + 2
    cache lines)) the block's rows packed for the gradient product (row 0)
    and each thread's hot rows; ``tile_max`` and
    ``tile_sum`` (tiles, block) the per-(tile, row) maximum and sum of
    exponentials of pass A.  ``stored_logits``, if
    not empty (k x class_tile x mp entries, 1 <= k <= tiles), keeps a block's logits of
    the first k tiles from pass A to pass B, which then reads them instead of recomputing
    them (``Z_buf`` then needs the room for recomputed logits only when k < tiles).
    With ``skip``, a (row,
    tile) whose largest log-probability is below ``log_threshold`` and which
    does not hold the row's label is left out of pass B.  With ``screen`` too
    (float32 only, where :func:`screen_available`), pass A first bounds every
    (row, tile)'s logits from a bfloat16 product (fs_tile_screen.h) and computes
    only the rows whose bound reaches ``log_threshold - log(C)`` above a lower
    bound of their log-sum-exp (and the rows of the tile's labels): the others'
    exponentials add less than ``eps / C`` each, so a row's log-sum-exp is
    within ``eps`` of the exact one; a block where it spares less than a tenth
    of the pairs stops it for 8 blocks, twice as long after each such rest (at
    most 64).  ``counts``, if given
    (4 entries), gets the (row, tile) pairs of the call, those computed by pass A,
    those hot in pass B, and the rows whose block pass A screened.  Returns ``sum_i s_i CE_i``.
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], C = WT.shape[0]
    cdef Py_ssize_t block = tile_max.shape[1], ntiles, a, m, i, t, c0, mp, nstored = 0
    cdef Py_ssize_t ahead, computed_t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef const xtype *rows[MAX_BLOCK]
    cdef double lse[MAX_BLOCK]
    cdef double label_logit[MAX_BLOCK]
    cdef double loss = 0
    cdef floating *stored = NULL
    cdef floating *Xrows
    cdef Py_ssize_t ldx = _row_stride(d, sizeof(floating))
    cdef Py_ssize_t line = 64 // sizeof(floating)
    # pass A's screening (float32): see fs_tile_screen.h
    cdef bint screening = False, screened = False
    cdef Py_ssize_t dp = fs_screen_dpad(d), tcp = (class_tile + 15) // 16 * 16, pause = 0, rest = 8
    cdef Py_ssize_t pairs = 0, pairs_a = 0, pairs_b = 0, block_a, rows_screened = 0
    cdef double gamma = 0, widest = 0, lse_floor, log_c = log(max(C, 1))
    cdef char *screen_mem = NULL
    cdef unsigned char[::1] screen_view
    cdef double *class_norm = NULL
    cdef double *row_norm = NULL
    cdef double *upper = NULL
    cdef double *lower = NULL
    cdef double *floor_ = NULL
    cdef int *position = NULL
    cdef Py_ssize_t *computed = NULL
    cdef uint16_t *Xs = NULL
    cdef uint16_t *Wb = NULL
    cdef float *Zs = NULL
    # the screening runs over SCREEN_BLOCKS blocks of rows at a time (W is read once for them)
    cdef Py_ssize_t screen_rows = min(n, SCREEN_BLOCKS * block), sp = _padded(screen_rows)
    cdef Py_ssize_t screen_start = 0, screen_end = 0, s_rows, off = 0
    cdef float *Xsup = NULL
    cdef Py_ssize_t wb_size = tcp * dp + 32, zs_size = tcp * 64 + 16
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    if n == 0 or C == 0:
        return 0.0
    _require(1 <= block <= MAX_BLOCK, f"blocks of {block} rows (1 to {MAX_BLOCK})")
    _require(class_tile >= 1 and d >= 1, f"class tiles of {class_tile} classes, {d} features")
    ntiles = (C + class_tile - 1) // class_tile
    mp = _padded(block)
    _require(WT.shape[1] == d, f"weights of {WT.shape[1]} features for X of {d}")
    _require(b.shape[0] == C, f"{b.shape[0]} intercepts for {C} classes")
    _require(sample_weight.shape[0] in (0, n), f"{sample_weight.shape[0]} weights for {n} rows")
    _require_threads(num_threads, min(Z_buf.shape[0], Xp_buf.shape[0] - 1, Xrow_buf.shape[0] - 1))
    if stored_logits.shape[0]:
        nstored = (stored_logits.shape[0] - line) // (class_tile * mp)
        _require(1 <= nstored <= ntiles
                 and stored_logits.shape[0] == nstored * class_tile * mp + line,
                 f"kept logits of {stored_logits.shape[0]} entries")
    _require(dWT.shape[0] == C and dWT.shape[1] == d and db.shape[0] == C
             and Z_buf.shape[1] >= class_tile * ((0 if nstored == ntiles else mp)
                                                 + _chunked(mp)) + line
             and Xp_buf.shape[1] >= d * mp + line and Xrow_buf.shape[1] >= ldx * block + line
             and tile_max.shape[0] == ntiles and tile_sum.shape[0] == ntiles
             and tile_sum.shape[1] == block,
             "gradient or scratch of another shape")
    if stored_logits.shape[0]:
        stored = _line_aligned(&stored_logits[0])
    _require_labels(y, n, C)
    _require(counts is None or counts.shape[0] == 4, "counts of 4 entries")
    if floating is float:
        screening = screen and skip and fs_screen_available()
        if screening:
            mp = _padded(block)
            import numpy as np  # (numpy's allocation: memory tracers see the scratch)

            screen_buf = np.empty(3 * C * sizeof(double) + 3 * sp * sizeof(double)
                                  + 2 * ntiles * sp * sizeof(double) + sp * sizeof(double)
                                  + ntiles * mp * sizeof(int) + ntiles * sizeof(Py_ssize_t)
                                  + (sp * dp + num_threads * wb_size) * sizeof(uint16_t)
                                  + (num_threads * zs_size + screen_rows * d) * sizeof(float)
                                  + 5 * 64, np.uint8)
            screen_view = screen_buf
            screen_mem = <char *>((<size_t>&screen_view[0] + 63) // 64 * 64)
            class_norm = <double *>screen_mem
            row_norm = class_norm + 3 * C
            upper = row_norm + 3 * sp
            lower = upper + ntiles * sp
            floor_ = lower + ntiles * sp
            position = <int *>(floor_ + sp)
            computed = <Py_ssize_t *>(position + ntiles * mp)
            Xs = <uint16_t *>((<size_t>(computed + ntiles) + 63) // 64 * 64)
            Wb = <uint16_t *>((<size_t>(Xs + sp * dp) + 63) // 64 * 64)
            Zs = <float *>((<size_t>(Wb + num_threads * wb_size) + 63) // 64 * 64)
            Xsup = <float *>((<size_t>(Zs + num_threads * zs_size) + 63) // 64 * 64)
            fs_screen_norms(&WT[0, 0], C, d, d, class_norm)
            for i in range(C):
                if not class_norm[3 * i + 1] <= FS_SCREEN_LIMIT:  # (or NaN) bfloat16 could overflow
                    screening = False
                elif class_norm[3 * i + 1] > widest:
                    widest = class_norm[3 * i + 1]
            gamma = fs_screen_gamma(d)
    with nogil:
        a = 0
        while a < n:
            m = min(block, n - a)
            mp = _padded(m)
            for i in range(m):
                rows[i] = &X[a + i, 0]
            Xrows = _line_aligned(&Xrow_buf[0, 0])
            _convert_rows(rows, m, d, Xrows, ldx)
            _pack_panels(Xrows, ldx, m, d, _line_aligned(&Xp_buf[0, 0]), _padded(m))
            block_a = 0
            if floating is float:
                if screening and a >= screen_end and pause == 0:  # screen the next rows
                    screen_start = a
                    s_rows = min(screen_rows, n - a)
                    screen_end = a + s_rows
                    for i in range(s_rows):
                        for t in range(d):
                            Xsup[i * d + t] = <float>X[a + i, t]
                    for i in range(3 * sp):
                        row_norm[i] = 0
                    fs_screen_norms(Xsup, s_rows, d, d, row_norm)
                    for i in range(s_rows):  # rows where bfloat16 could overflow: not screened
                        if not (row_norm[3 * i + 1] <= FS_SCREEN_LIMIT
                                and row_norm[3 * i + 1] * widest <= FS_SCREEN_LIMIT):
                            row_norm[3 * i] = -1
                    fs_screen_pack_rows(Xsup, d, s_rows, d, _padded(s_rows), Xs)
                    for t in prange(ntiles, num_threads=num_threads, schedule="dynamic"):
                        c0 = t * class_tile
                        fs_screen_tile(Xs, _padded(s_rows), d, &WT[c0, 0], &b[c0],
                                       min(class_tile, C - c0), class_norm + 3 * c0, row_norm, gamma,
                                       Wb + threadid() * wb_size, Zs + threadid() * zs_size,
                                       upper + t * sp, lower + t * sp)
                    for i in range(s_rows):
                        # a lower bound of the row's log-sum-exp: the largest lower bound
                        lse_floor = -INFINITY
                        for t in range(ntiles):
                            if lower[t * sp + i] > lse_floor:
                                lse_floor = lower[t * sp + i]
                        floor_[i] = lse_floor + log_threshold - log_c
            screened = screening and a < screen_end
            if screened:
                rows_screened += m
            off = a - screen_start
            for t in prange(ntiles, num_threads=num_threads, schedule="dynamic"):
                c0 = t * class_tile
                computed_t = _tile_pass_a(
                    _line_aligned(&Xp_buf[0, 0]), m, d, &WT[0, 0], &b[0], c0,
                    min(class_tile, C - c0), &y[a], _line_aligned(&Z_buf[threadid(), 0]),
                    stored + c0 * _padded(m) if t < nstored else NULL,
                    &tile_max[t, 0], &tile_sum[t, 0], label_logit,
                    &WT[c0 + num_threads * class_tile, 0]
                    if c0 + num_threads * class_tile < C else NULL,
                    upper + t * sp + off if screened else NULL, floor_ + off,
                    position + t * mp if screened else NULL, Xrows,
                    _line_aligned(&Xp_buf[threadid() + 1, 0]),
                    _line_aligned(&Xrow_buf[threadid() + 1, 0]))
                if screened:
                    computed[t] = computed_t
                block_a += computed_t
            pairs += m * ntiles
            pairs_a += block_a
            for i in range(m):  # combine the tiles: the row's log-sum-exp and loss
                lse[i] = fs_tiles_log_sum_exp(&tile_max[0, i], &tile_sum[0, i], ntiles, block)
                loss += (sw[a + i] if sw != NULL else 1) * (lse[i] - label_logit[i])
            for t in prange(ntiles, num_threads=num_threads, schedule="dynamic"):
                c0 = t * class_tile
                ahead = t + num_threads  # (likely) this thread's next tile: prefetched
                pairs_b += _tile_pass_b(
                             Xrows, _line_aligned(&Xp_buf[0, 0]), m, d, &WT[0, 0], &b[0], c0,
                             min(class_tile, C - c0), &y[a], sw + a if sw != NULL else NULL, lse,
                             &tile_max[t, 0], skip, log_threshold,
                             stored + c0 * _padded(m) if t < nstored else NULL,
                             position + t * mp if screened else NULL,
                             computed[t] if screened else m,
                             _line_aligned(&Z_buf[threadid(), 0]),
                             _line_aligned(&Xp_buf[threadid() + 1, 0]),
                             _line_aligned(&Xrow_buf[threadid() + 1, 0]), &dWT[0, 0], &db[0],
                             &WT[ahead * class_tile, 0]
                             if ahead < ntiles and ahead >= nstored else NULL,
                             &dWT[ahead * class_tile, 0] if ahead < ntiles else NULL,
                             stored + ahead * class_tile * _padded(m)
                             if ahead < nstored else NULL)
            if screening:  # a block where the screening spares less than a tenth: rest 8
                if not screened:  # blocks, twice as long after each such rest (at most 64)
                    pause = max(0, pause - 1)
                elif block_a * 10 > 9 * m * ntiles:
                    pause = rest
                    rest = min(2 * rest, 64)
                else:
                    rest = 8
            a += m
    if counts is not None:
        counts[0], counts[1], counts[2], counts[3] = pairs, pairs_a, pairs_b, rows_screened
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
    _require(1 <= block, f"blocks of {block} rows")
    _require(w.shape[0] == d, f"weights of {w.shape[0]} features for X of {d}")
    _require(y.shape[0] == n, f"{y.shape[0]} targets for {n} rows")
    _require(sample_weight.shape[0] in (0, n), f"{sample_weight.shape[0]} weights for {n} rows")
    _require_threads(num_threads, min(dw_acc.shape[0], db_acc.shape[0], z_buf.shape[0]))
    _require(dw_acc.shape[1] == d and db_acc.shape[1] >= 1, "accumulators of another shape")
    nblocks = (n + block - 1) // block
    cdef void *packed
    cdef const floating *wp = _packed_weights(&w[0], 1, d, &packed)
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="static"):
            t = threadid()
            a = k * block
            loss += _logistic_block(
                &X[a, 0], min(block, n - a), max(0, n - a - block), d, wp, bf, &y[a],
                sw + a if sw != NULL else NULL, &z_buf[t, 0], &dw_acc[t, 0], &db_acc[t, 0])
    free(packed)
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
    _require(y.shape[0] == n and num_threads >= 1, "labels or num_threads out of range")
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
# fastsoftmax._backends).  Learner codes: the `code` column of
# fastsoftmax.learners.LEARNER_TABLE, one branch a code in _learner_update.

cdef enum LearnerCode:
    LEARNER_SGD = 0
    LEARNER_MOMENTUM = 1
    LEARNER_NESTEROV = 2
    LEARNER_ADAGRAD = 3
    LEARNER_ADADELTA = 4
    LEARNER_RMSPROP = 5
    LEARNER_ADAM = 6

cdef enum:
    # the most state arrays per parameter a learner may have
    MAX_LEARNER_STATES = 4

# what _learner_update returns (see _backends._epoch_args.check_update_status)
cdef enum LearnerStatus:
    LEARNER_UPDATED = 0
    LEARNER_NO_BRANCH = 1
    LEARNER_OTHER_ARITY = 2


cdef inline floating _sqrt(floating x) noexcept nogil:
    if floating is float:
        return sqrtf(x)
    else:
        return sqrt(x)


cdef int _learner_update(int code, floating *p, const floating *g, floating **states,
                         Py_ssize_t n_states, const double *hp, Py_ssize_t n_hp,
                         Py_ssize_t size, double lr, long t) noexcept nogil:
    # One step of the learner `code` on p[0:size): the element-wise operations
    # of fastsoftmax.learners, in the same order (scalars cast to the parameter
    # dtype, bias corrections in float64).  states[:n_states] and hp[:n_hp] are
    # the learner's state arrays and hyper-parameters in the order of its row of
    # the learner table.  Returns LEARNER_UPDATED or, updating nothing,
    # LEARNER_NO_BRANCH for a code without a branch here and LEARNER_OTHER_ARITY
    # when the row gives other numbers of states or hyper-parameters than the
    # branch reads (size 0 asks which, before an epoch).
    cdef Py_ssize_t i
    cdef floating lr_f = <floating>lr
    cdef floating mu_f, rho_f, omr, eps_f, a, mu2, v, s, eg, dx, m, b1, omb1, b2, omb2, inv_c2, step
    cdef floating *s1
    cdef floating *s2
    if code == LEARNER_SGD:
        if n_states != 0 or n_hp != 0:
            return LEARNER_OTHER_ARITY
        for i in range(size):
            p[i] -= g[i] * lr_f
        return LEARNER_UPDATED
    if code == LEARNER_MOMENTUM:
        if n_states != 1 or n_hp != 1:
            return LEARNER_OTHER_ARITY
        s1, mu_f = states[0], <floating>hp[0]  # velocity; momentum
        for i in range(size):
            v = s1[i] * mu_f - g[i] * lr_f
            s1[i] = v
            p[i] += v
        return LEARNER_UPDATED
    if code == LEARNER_NESTEROV:
        if n_states != 1 or n_hp != 1:
            return LEARNER_OTHER_ARITY
        # p += -mu v_prev + (1 + mu) v_new, as learners.Nesterov computes it
        s1, mu_f = states[0], <floating>hp[0]  # velocity; momentum
        a = (1 + mu_f) * lr_f
        mu2 = mu_f * mu_f
        for i in range(size):
            v = s1[i]
            p[i] = (p[i] - g[i] * a) + v * mu2
            s1[i] = v * mu_f - g[i] * lr_f
        return LEARNER_UPDATED
    if code == LEARNER_ADAGRAD:
        if n_states != 1 or n_hp != 1:
            return LEARNER_OTHER_ARITY
        s1, eps_f = states[0], <floating>hp[0]  # sum_sq; eps
        for i in range(size):
            s = s1[i] + g[i] * g[i]
            s1[i] = s
            p[i] -= (g[i] / (_sqrt(s) + eps_f)) * lr_f
        return LEARNER_UPDATED
    if code == LEARNER_ADADELTA:
        if n_states != 2 or n_hp != 2:
            return LEARNER_OTHER_ARITY
        s1, s2 = states[0], states[1]  # sq_grad_avg, sq_update_avg
        rho_f, omr, eps_f = <floating>hp[0], <floating>(1.0 - hp[0]), <floating>hp[1]  # rho, eps
        for i in range(size):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            dx = -((_sqrt(s2[i] + eps_f) / _sqrt(eg + eps_f)) * g[i])
            s2[i] = s2[i] * rho_f + (dx * dx) * omr
            p[i] += dx * lr_f
        return LEARNER_UPDATED
    if code == LEARNER_RMSPROP:
        if n_states != 1 or n_hp != 2:
            return LEARNER_OTHER_ARITY
        s1 = states[0]  # sq_grad_avg
        rho_f, omr, eps_f = <floating>hp[0], <floating>(1.0 - hp[0]), <floating>hp[1]  # rho, eps
        for i in range(size):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            p[i] -= (g[i] / (_sqrt(eg) + eps_f)) * lr_f
        return LEARNER_UPDATED
    if code == LEARNER_ADAM:  # t already counts this step
        if n_states != 2 or n_hp != 3:
            return LEARNER_OTHER_ARITY
        s1, s2 = states[0], states[1]  # m, v; hp: beta1, beta2, eps
        b1, omb1 = <floating>hp[0], <floating>(1.0 - hp[0])
        b2, omb2 = <floating>hp[1], <floating>(1.0 - hp[1])
        eps_f = <floating>hp[2]
        inv_c2 = <floating>(1.0 / (1.0 - pow(hp[1], <double>t)))
        step = <floating>(<double>lr_f / (1.0 - pow(hp[0], <double>t)))
        for i in range(size):
            m = s1[i] * b1 + g[i] * omb1
            v = s2[i] * b2 + (g[i] * g[i]) * omb2
            s1[i] = m
            s2[i] = v
            p[i] -= (m / (_sqrt(v * inv_c2) + eps_f)) * step
        return LEARNER_UPDATED
    return LEARNER_NO_BRANCH


def learner_update_status(int code, Py_ssize_t n_states, Py_ssize_t n_hyperparameters):
    """What the update rule of learner ``code`` says to ``n_states`` state
    arrays and ``n_hyperparameters`` hyper-parameters: 0 (it takes them), 1
    (no rule of that code), 2 (it takes other numbers).  Updates nothing."""
    cdef double *states[MAX_LEARNER_STATES]
    if not 0 <= n_states <= MAX_LEARNER_STATES:
        return LEARNER_OTHER_ARITY
    return _learner_update[double](code, NULL, NULL, states, n_states, NULL, n_hyperparameters, 0,
                                   0.0, 0)


cdef void _l1_pseudo_gradient(const floating *p, floating *g, Py_ssize_t size, floating l1,
                              signed char *orthant) noexcept nogil:
    # fastsoftmax.learners.l1_pseudo_gradient on p[0:size): g in place, the orthant out
    cdef Py_ssize_t i
    cdef floating plus, minus
    for i in range(size):
        plus = g[i] + l1
        minus = g[i] - l1
        if p[i] > 0:
            g[i] = plus
            orthant[i] = 1
        elif p[i] < 0:
            g[i] = minus
            orthant[i] = -1
        elif plus < 0:
            g[i] = plus
            orthant[i] = 1
        elif minus > 0:
            g[i] = minus
            orthant[i] = -1
        else:
            g[i] = 0
            orthant[i] = 0


cdef void _l1_orthant_project(floating *p, Py_ssize_t size,
                              const signed char *orthant) noexcept nogil:
    # fastsoftmax.learners.l1_orthant_project: the weights that left their orthant stop at 0
    cdef Py_ssize_t i
    cdef signed char o
    for i in range(size):
        o = orthant[i]
        if (o > 0 and not p[i] > 0) or (o < 0 and not p[i] < 0) or o == 0:
            p[i] = 0


cdef double _weight_sums(const floating *p, Py_ssize_t size, bint absolute) noexcept nogil:
    # sum of p^2 (or of |p|) in double, in 8 partial sums: a single running sum
    # is one chain of dependent additions over all of W each minibatch
    cdef double part[8]
    cdef double v
    cdef Py_ssize_t i, k
    for k in range(8):
        part[k] = 0
    for i in range(0, size - size % 8, 8):
        for k in range(8):
            v = <double>p[i + k]
            part[k] += fabs(v) if absolute else v * v
    for i in range(size - size % 8, size):
        v = <double>p[i]
        part[0] += fabs(v) if absolute else v * v
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]))


cdef double _minibatch_scale(const floating *swb, Py_ssize_t nb, double weight_mean) noexcept nogil:
    # what a minibatch's data sums are multiplied by: 1 / its rows, or with
    # weights swb 1 / their sum, or 1 / (rows * weight_mean) given a
    # weight_mean > 0 (the estimators' unbiased-estimate convention)
    cdef double m = nb
    cdef Py_ssize_t r
    if swb != NULL and weight_mean > 0:
        m = nb * weight_mean
    elif swb != NULL:
        m = 0
        for r in range(nb):
            m += swb[r]
    return 1.0 / m if m > 0 else 0.0


cdef void _epoch_part(const xtype **rows, const xtype **next_rows, Py_ssize_t a, Py_ssize_t e,
                      Py_ssize_t d, Py_ssize_t C, const floating *Wp, const floating *b,
                      const Py_ssize_t *yb, const floating *swb, floating *Z, floating *g,
                      double *gb_sum, double *data) noexcept nogil:
    # One thread's share, rows [a, e) of the minibatch: forward (from the
    # packed weights Wp), residual, and its own gradient accumulators g (C,
    # d), gb_sum (C,), data (1,).
    # The share goes in chunks of about _BLOCK_BYTES of X (like the fused
    # full-batch pass): the backward product then re-reads each chunk from
    # L1/L2, where a whole minibatch of rows would spill out of them.
    # The first chunk's backward product writes g rather than adds to it: no
    # zeroing pass over g (a gradient of C d entries a minibatch).
    cdef Py_ssize_t c, s, m, i, q, chunk
    cdef const xtype *pf[MAX_BLOCK]
    for c in range(C):
        gb_sum[c] = 0
    data[0] = 0
    if e <= a:
        memset(g, 0, C * d * sizeof(floating))
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
        data[0] += _ce_chunk(rows + s, pf, m, d, Wp, b, C, yb + s,
                             swb + s if swb != NULL else NULL, Z + s * C, g, gb_sum, s == a)
        s += m


cdef void _epoch_update(Py_ssize_t start, Py_ssize_t stop, int nt, Py_ssize_t size, floating *p,
                        floating *G, floating scale, floating l2, int code, floating **states,
                        Py_ssize_t n_states, const double *hp, Py_ssize_t n_hp, double lr,
                        long t, floating l1, signed char *orthant) noexcept nogil:
    # Entries [start, stop) of W: the threads' gradients summed, scaled, the l2
    # term added, and the learner's step (with l1 > 0: along the L1
    # pseudo-gradient, then projected on the orthant).
    cdef Py_ssize_t i, k
    cdef floating acc
    cdef floating *part[MAX_LEARNER_STATES]
    for i in range(start, stop):
        acc = G[i]
        for k in range(1, nt):
            acc = acc + G[k * size + i]
        G[i] = acc * scale + l2 * p[i]
    for k in range(n_states):
        part[k] = states[k] + start
    if l1 != 0:
        _l1_pseudo_gradient(p + start, G + start, stop - start, l1, orthant + start)
    _learner_update(code, p + start, G + start, part, n_states, hp, n_hp, stop - start, lr, t)
    if l1 != 0:
        _l1_orthant_project(p + start, stop - start, orthant + start)


cdef Py_ssize_t _state_pointers(list arrays, Py_ssize_t size, floating **pointers,
                                str what) except -1:
    # Pointers to the learner's state arrays of one parameter, each checked to
    # hold `size` entries.
    cdef floating[::1] state
    cdef Py_ssize_t k
    if len(arrays) > MAX_LEARNER_STATES:
        raise ValueError(f"at most {MAX_LEARNER_STATES} learner states, got {len(arrays)}")
    for k in range(len(arrays)):
        state = arrays[k]
        if state.shape[0] != size:
            raise ValueError(f"state {k} of {what} has {state.shape[0]} entries, expected {size}")
        pointers[k] = &state[0]
    return len(arrays)


def train_epoch(const xtype[:, ::1] X, const Py_ssize_t[::1] y, const floating[::1] sample_weight,
                double weight_mean, floating[:, ::1] WT, floating[::1] b,
                const Py_ssize_t[::1] order, Py_ssize_t batch_size, double l2, bint fit_intercept,
                int code, const double[::1] hyperparameters, double lr, long t, list states_W,
                list states_b, int num_threads, double l1=0.0):
    """One epoch of minibatch training over ``X[order]``; ``WT`` (C, d), ``b``
    and the learner's states are updated in place.  ``code`` and
    ``hyperparameters`` are the learner's in the learner table, ``states_W``
    its flat (C * d,) state arrays of ``WT`` in the table's order,
    ``states_b`` those of ``b`` (empty without ``fit_intercept``).  The
    minibatch rows are used where they are (row-pointer tables).  On
    ``num_threads >= 2`` threads the epoch runs in one parallel region and
    each minibatch is split by features (_train_epoch_split); a minibatch
    too large for that is split over the threads by rows for the products
    and by entries of ``W`` for the update.  An empty ``sample_weight`` means unit
    weights; ``weight_mean > 0`` divides each weighted minibatch's data term
    by ``len(batch) * weight_mean``.  A ``batch_size`` above ``len(order)``
    is the full batch.  With ``l1 > 0`` each minibatch loss gains
    ``l1 * ||W||_1`` and ``W`` steps along the L1 pseudo-gradient within its
    orthant (fastsoftmax.learners.l1_pseudo_gradient).  Sizes, row indices
    and labels are checked (ValueError)
    before anything is updated.  Returns ``(mean minibatch loss weighted by rows, t)``."""
    cdef Py_ssize_t n = order.shape[0], n_rows = X.shape[0], d = WT.shape[1], C = WT.shape[0]
    cdef Py_ssize_t size = C * d, n_hp = hyperparameters.shape[0], n_states
    cdef int nt = num_threads, tt, status
    cdef Py_ssize_t k, lo, hi, nb, r, i, c
    cdef Py_ssize_t bad = -1
    cdef bint weighted = sample_weight.shape[0] > 0
    # plain SGD on one thread steps the packed weights Wp themselves (the
    # forward products' operand): no packing after each step; WT is written
    # back from Wp after the last minibatch
    cdef bint packed_sgd = nt == 1 and code == LEARNER_SGD and l1 == 0
    cdef double data, scale, loss, total = 0.0, sq, gbs
    cdef floating *p = &WT[0, 0]
    cdef const double *hp = &hyperparameters[0] if n_hp > 0 else NULL
    cdef floating *sW[MAX_LEARNER_STATES]
    cdef floating *sb[MAX_LEARNER_STATES]
    cdef const xtype **rows = NULL
    cdef const xtype **next_rows
    cdef Py_ssize_t *y_batch = NULL
    cdef floating *sw_batch = NULL
    cdef floating *swb = NULL
    cdef floating *Z = NULL
    cdef floating *g = NULL
    cdef floating *gb = NULL
    cdef double *gb_sum = NULL
    cdef double *data_t = NULL
    cdef signed char *orthant = NULL
    cdef void *g_buffer = NULL
    cdef void *p_buffer = NULL
    cdef void *packed = NULL
    cdef floating *Wp = NULL

    # The loops below trust these sizes, the row indices and the labels:
    # checks first (O(1), then one pass over order), exceptions instead of
    # memory corruption.
    if X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} columns, WT {d}")
    if y.shape[0] != n_rows or (weighted and sample_weight.shape[0] != n_rows):
        raise ValueError(f"X has {n_rows} rows, y {y.shape[0]}, sample_weight "
                         f"{sample_weight.shape[0]} (0: unit weights)")
    if b.shape[0] != C:
        raise ValueError(f"b has {b.shape[0]} entries, WT {C} rows")
    if batch_size < 1 or nt < 1:
        raise ValueError(f"batch_size and num_threads must be >= 1, got {batch_size}, {nt}")
    n_states = _state_pointers(states_W, size, sW, "WT")
    if fit_intercept and _state_pointers(states_b, C, sb, "b") != n_states:
        raise ValueError(f"{n_states} states of WT but {len(states_b)} of b")
    status = _learner_update(code, p, p, sW, n_states, hp, n_hp, 0, lr, t)
    if status == LEARNER_NO_BRANCH:
        raise ValueError(f"no update rule for learner code {code} in the cython epoch kernel")
    if status != LEARNER_UPDATED:
        raise ValueError(f"the update rule of learner code {code} takes other numbers of states "
                         f"and hyper-parameters than {n_states} and {n_hp}")
    with nogil:  # every row of the epoch and its label, before anything is updated
        for k in range(n):
            i = order[k]
            if i < 0 or i >= n_rows or y[i] < 0 or y[i] >= C:
                bad = k
                break
    if bad >= 0:
        i = order[bad]
        if not 0 <= i < n_rows:
            raise ValueError(f"order must index rows of X in [0, {n_rows}): order[{bad}] = {i}")
        raise ValueError(f"y must hold class indices in [0, {C}): y[{i}] = {y[i]}")
    if n == 0:
        return 0.0, t
    batch_size = min(batch_size, n)  # and so are the per-batch buffers
    if _use_feature_split(nt, batch_size, d, sizeof(xtype)):
        split = _train_epoch_split(X, y, sample_weight, weight_mean, WT, b, order, batch_size, l2,
                                   fit_intercept, code, hyperparameters, lr, t, states_W, states_b,
                                   sW, sb, n_states, nt, l1)
        if split is not None:  # (None: fewer threads than nt, the row split below runs)
            return split

    try:
        rows = <const xtype **>malloc(2 * batch_size * sizeof(xtype *))
        y_batch = <Py_ssize_t *>malloc(batch_size * sizeof(Py_ssize_t))
        sw_batch = <floating *>malloc(batch_size * sizeof(floating))
        Z = <floating *>malloc(batch_size * C * sizeof(floating) + 1)
        # the gradient and the weights on cache lines (see _aligned_weights);
        # a misaligned WT is worked on in an aligned copy, copied back below
        g_buffer = malloc(nt * size * sizeof(floating) + 64)
        g = <floating *>((<size_t>g_buffer + 63) & ~(<size_t>63))
        p = <floating *>_aligned_weights(p, size, &p_buffer)
        # the weights in the panels of the forward product, packed again after each step
        Wp = <floating *>_packed_weights(p, C, d, &packed)
        gb = <floating *>malloc(C * sizeof(floating) + 1)
        gb_sum = <double *>malloc(nt * C * sizeof(double) + 1)
        data_t = <double *>malloc(nt * sizeof(double))
        orthant = <signed char *>malloc(size if l1 != 0 else 1)
        if (rows == NULL or y_batch == NULL or sw_batch == NULL or Z == NULL or g_buffer == NULL
                or gb == NULL or gb_sum == NULL or data_t == NULL or orthant == NULL):
            raise MemoryError(f"no memory for the buffers of minibatches of {batch_size} rows")
        next_rows = rows + batch_size
        swb = sw_batch if weighted else NULL
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
                if k > 0 and not packed_sgd:
                    _pack_weights(p, C, d, Wp)
                if nt == 1:
                    _epoch_part(rows, next_rows, 0, nb, d, C, Wp, &b[0], y_batch, swb, Z, g,
                                gb_sum, data_t)
                else:
                    for tt in prange(nt, num_threads=nt, schedule="static"):
                        _epoch_part(rows, next_rows, tt * nb // nt, (tt + 1) * nb // nt, d, C, Wp,
                                    &b[0], y_batch, swb, Z, g + tt * size, gb_sum + tt * C,
                                    data_t + tt)
                data = 0
                for tt in range(nt):
                    data = data + data_t[tt]
                scale = _minibatch_scale(swb, nb, weight_mean)
                loss = data * scale
                if l2 != 0 and not packed_sgd:
                    loss += 0.5 * l2 * _weight_sums(p, size, 0)
                if l1 != 0:
                    loss += l1 * _weight_sums(p, size, 1)
                if packed_sgd:
                    # plain SGD: scaling and step in one vectorized pass over Wp
                    # (and the squares of the weights before it, for the l2 term)
                    if floating is float:
                        sq = fs_sgd_step_packed_f32(Wp, g, C, d, <float>scale, <float>l2,
                                                    <float>lr, l2 != 0)
                    else:
                        sq = fs_sgd_step_packed_f64(Wp, g, C, d, scale, <double>l2, lr, l2 != 0)
                    if l2 != 0:
                        loss += 0.5 * l2 * sq
                total += loss * nb
                t += 1
                if packed_sgd:
                    pass  # stepped above, before the l2 term was added
                elif nt == 1:
                    _epoch_update(0, size, 1, size, p, g, <floating>scale, <floating>l2, code,
                                  sW, n_states, hp, n_hp, lr, t, <floating>l1, orthant)
                else:
                    for tt in prange(nt, num_threads=nt, schedule="static"):
                        _epoch_update(tt * size // nt, (tt + 1) * size // nt, nt, size, p, g,
                                      <floating>scale, <floating>l2, code, sW, n_states, hp,
                                      n_hp, lr, t, <floating>l1, orthant)
                if fit_intercept:
                    for c in range(C):
                        gbs = 0
                        for tt in range(nt):
                            gbs = gbs + gb_sum[tt * C + c]
                        gb[c] = <floating>(gbs * scale)
                    _learner_update(code, &b[0], gb, sb, n_states, hp, n_hp, C, lr, t)
            if packed_sgd:
                _unpack_weights(Wp, C, d, p)
    finally:
        if p_buffer != NULL:
            memcpy(&WT[0, 0], p, size * sizeof(floating))
            free(p_buffer)
        free(packed)
        free(rows)
        free(y_batch)
        free(sw_batch)
        free(Z)
        free(g_buffer)
        free(gb)
        free(gb_sum)
        free(data_t)
        free(orthant)
    return total / n, t


# ------------------------------------------------------------------------
# The epoch on two threads or more, split by features (fs_epoch_split.h)
#
# Thread t of the team owns the features [f0, f1) of W (C, d), split at
# whole cache lines of weights, and keeps its columns of W, of the learner
# states and their forward panels in buffers of its own for the whole epoch.
# Per minibatch k each thread
#   1. computes the partial logits of all the rows over its features (no
#      intercept) into its slot of the shared buffer of parity k % 2, and the
#      penalty sums of its weights (before this step's update) next to them;
#   2. waits at the barrier;
#   3. sums the partial logits of all threads in thread order (so every
#      thread gets the same logits, bit for bit), adds the intercept, and
#      forms the residual and the data loss of the whole minibatch (B x C:
#      redundant on every thread, cheaper than a second barrier);
#   4. computes the gradient of its own columns from the residual and the
#      rows it read in 1 (still in its cache), and steps its columns and their
#      learner states; each thread steps its own copy of the intercept and of
#      its states identically (they see the same residual), thread 0's copy
#      is the one written back.
# One barrier per minibatch suffices: a thread writes the slot of parity
# k % 2 again only in minibatch k + 2, after the barrier of minibatch k + 1,
# which every thread reaches only after it has read the slots of minibatch k
# (in step 3, and thread 0 the penalty sums).  The intercept and its states
# are read (copied in) before a thread's first barrier and written back by
# thread 0 after its last, and every epoch has a minibatch: no thread still
# reads them when thread 0 writes.

cdef extern from "fs_epoch_split.h" nogil:
    ctypedef struct fs_barrier:
        pass
    ctypedef void (*fs_team_body)(void *ctx, int thread, int threads) noexcept nogil
    void fs_run_team(int threads, fs_team_body body, void *ctx, fs_barrier *bar)
    void fs_barrier_wait(fs_barrier *bar, int me, int round)
    enum: FS_MAX_TEAM
    Py_ssize_t fs_split_point(Py_ssize_t d, int parts, int part, Py_ssize_t unit)
    void fs_sum_partials_f32(float *Z, const float *P, Py_ssize_t stride, int parts,
                             const float *b, Py_ssize_t n, Py_ssize_t C)
    void fs_sum_partials_f64(double *Z, const double *P, Py_ssize_t stride, int parts,
                             const double *b, Py_ssize_t n, Py_ssize_t C)


cdef enum:
    # a minibatch's share of rows (B x its features) above this many bytes
    # would not stay in L2 between the forward and the backward product: the
    # row split (train_epoch's prange branches) is used then
    _SPLIT_MAX_SHARE_BYTES = 1 << 20


ctypedef struct SplitEpoch:
    fs_barrier barrier
    const void *X                 # xtype (n_rows, d)
    const Py_ssize_t *y
    const void *sample_weight     # floating (n_rows,), NULL: unit weights
    const Py_ssize_t *order
    void *WT                      # floating (C, d), updated at the end of the epoch
    void *b                       # floating (C,)
    void *states_W[MAX_LEARNER_STATES]
    void *states_b[MAX_LEARNER_STATES]
    void *partials                # floating: 2 parities x team x slot, class-major logits
    double *penalties             # 2 parities x team x 2: sum W^2, sum |W| of each thread's columns
    const void *zeros             # floating (C,) zeros, the intercept of the partial logits
    char *scratch                 # each thread's buffers (_split_scratch), scratch_bytes apart
    Py_ssize_t scratch_bytes
    Py_ssize_t slot               # entries of a thread's slot of partial logits
    const double *hp
    Py_ssize_t n, d, C, batch_size, n_states, n_hp, unit, width
    double weight_mean, l2, l1, lr
    long t
    int code, fit_intercept, weighted, threads
    # results, written by thread 0
    double total
    long t_out
    int team


ctypedef struct SplitScratch:
    void *W                       # floating (C, width): this thread's columns of WT
    void *packed                  # their forward panels
    void *G                       # their gradient
    void *S[MAX_LEARNER_STATES]   # their learner states
    void *Z                       # floating (batch_size C): logits, then residual (class-major)
    void *b                       # floating (C,): this thread's copy of the intercept
    void *Sb[MAX_LEARNER_STATES]  # and of its states
    void *gb                      # floating (C,)
    double *db                    # (C,)
    void **rows                   # (batch_size,) row pointers at the thread's first feature
    void **next_rows              # and those of the next minibatch
    Py_ssize_t *y_batch
    void *sw_batch                # floating (batch_size,)
    signed char *orthant          # (C width,)


cdef inline Py_ssize_t _lines(Py_ssize_t nbytes) noexcept nogil:
    # nbytes rounded up to whole cache lines
    return (nbytes + 63) // 64 * 64


cdef inline char *_take(char *base, Py_ssize_t *at, Py_ssize_t nbytes) noexcept nogil:
    # the next nbytes of a layout from base, on cache lines of their own
    cdef char *p = base + at[0]
    at[0] += _lines(nbytes)
    return p


cdef Py_ssize_t _split_scratch(char *base, SplitScratch *s, Py_ssize_t C, Py_ssize_t width,
                               Py_ssize_t B, Py_ssize_t n_states,
                               Py_ssize_t item) noexcept nogil:
    # Lays out one thread's buffers from base (on a cache line; NULL: only
    # counts) into s; returns their bytes.
    cdef Py_ssize_t at = 0, k, cols = C * width, line = 64 // item
    s.W = _take(base, &at, cols * item)
    s.packed = _take(base, &at, C * ((width + line - 1) // line * line) * item)
    s.G = _take(base, &at, cols * item)
    for k in range(n_states):
        s.S[k] = _take(base, &at, cols * item)
        s.Sb[k] = _take(base, &at, C * item)
    s.Z = _take(base, &at, B * C * item)
    s.b = _take(base, &at, C * item)
    s.gb = _take(base, &at, C * item)
    s.db = <double *>_take(base, &at, C * sizeof(double))
    s.rows = <void **>_take(base, &at, B * sizeof(void *))
    s.next_rows = <void **>_take(base, &at, B * sizeof(void *))
    s.y_batch = <Py_ssize_t *>_take(base, &at, B * sizeof(Py_ssize_t))
    s.sw_batch = _take(base, &at, B * item)
    s.orthant = <signed char *>_take(base, &at, cols)
    return at


cdef void _copy_columns(floating *dst, Py_ssize_t dst_stride, const floating *src,
                        Py_ssize_t src_stride, Py_ssize_t C, Py_ssize_t width) noexcept nogil:
    cdef Py_ssize_t c
    if width > 0:
        for c in range(C):
            memcpy(dst + c * dst_stride, src + c * src_stride, width * sizeof(floating))


cdef void _split_worker(SplitEpoch *e, int tid, int team, const xtype *x_type,
                        floating *w_type) noexcept nogil:
    # One thread's whole epoch (see the protocol above); x_type and w_type
    # (NULL) only pick the types.
    cdef Py_ssize_t d = e.d, C = e.C, B = e.batch_size, n = e.n, n_states = e.n_states
    cdef Py_ssize_t f0, f1, w, cols, k, lo, hi, nb, r, i, c
    cdef SplitScratch s
    cdef const xtype *X = <const xtype *>e.X
    cdef const floating *sample_weight = <const floating *>e.sample_weight
    cdef floating *WT = <floating *>e.WT
    cdef floating *Wt
    cdef floating *Gt
    cdef floating *Z
    cdef floating *bt
    cdef floating *gb
    cdef floating *swb
    cdef floating *sW[MAX_LEARNER_STATES]
    cdef floating *sb[MAX_LEARNER_STATES]
    cdef const xtype **rows
    cdef const xtype **next_rows
    cdef floating *partials = <floating *>e.partials
    cdef double *pen
    cdef double data, scale, loss, total = 0.0, sq
    cdef long t = e.t
    cdef int parity, u
    cdef unsigned int csr
    if team != e.threads:
        # the OpenMP runtime gave a smaller team: nothing is done, and the
        # caller trains the epoch with the team it has
        if tid == 0:
            e.team = team
        return
    f0 = fs_split_point(d, team, tid, e.unit)
    f1 = fs_split_point(d, team, tid + 1, e.unit)
    w = f1 - f0
    cols = C * w
    _split_scratch(e.scratch + tid * e.scratch_bytes, &s, C, e.width, B, n_states,
                   sizeof(floating))
    Wt, Gt, Z, bt, gb = <floating *>s.W, <floating *>s.G, <floating *>s.Z, <floating *>s.b, <floating *>s.gb
    rows, next_rows = <const xtype **>s.rows, <const xtype **>s.next_rows
    swb = <floating *>s.sw_batch if e.weighted else NULL
    # this thread's columns of W and of its states, and its copy of b and of theirs
    _copy_columns(Wt, w, WT + f0, d, C, w)
    for k in range(n_states):
        sW[k] = <floating *>s.S[k]
        _copy_columns(sW[k], w, <floating *>e.states_W[k] + f0, d, C, w)
        sb[k] = <floating *>s.Sb[k]
        if e.fit_intercept:
            memcpy(sb[k], e.states_b[k], C * sizeof(floating))
    memcpy(bt, e.b, C * sizeof(floating))
    for k in range((n + B - 1) // B):
        lo = k * B
        hi = min(lo + B, n)
        nb = hi - lo
        parity = k & 1
        for r in range(nb):
            i = e.order[lo + r]
            rows[r] = X + i * d + f0
            next_rows[r] = X + e.order[min(hi + r, n - 1)] * d + f0
            s.y_batch[r] = e.y[i]
            if swb != NULL:
                swb[r] = sample_weight[i]
        # 1. partial logits over this thread's features, and its penalty sums
        _pack_weights(Wt, C, w, <floating *>s.packed)
        csr = fs_flush_denormals()
        _fwd(rows, nb, w, <const floating *>s.packed, <const floating *>e.zeros, C,
             partials + (parity * team + tid) * e.slot, 1, nb, next_rows)
        pen = e.penalties + (parity * team + tid) * 2
        if e.l2 != 0:
            pen[0] = _weight_sums(Wt, cols, 0)
        if e.l1 != 0:
            pen[1] = _weight_sums(Wt, cols, 1)
        # 2. (no hand-over to one thread when the cores are shared: its sums
        # would round differently, and the model would depend on the timing)
        fs_barrier_wait(&e.barrier, tid, <int>(k + 1))
        # 3. the minibatch's logits, residual and data loss, on every thread alike
        if floating is float:
            fs_sum_partials_f32(Z, partials + parity * team * e.slot, e.slot, team, bt, nb, C)
        else:
            fs_sum_partials_f64(Z, partials + parity * team * e.slot, e.slot, team, bt, nb, C)
        for c in range(C):
            s.db[c] = 0
        if floating is float:
            data = fs_ce_residual_cols_f32(Z, nb, C, s.y_batch, swb, s.db)
        else:
            data = fs_ce_residual_cols_f64(Z, nb, C, s.y_batch, swb, s.db)
        # 4. the gradient of this thread's columns, and its step
        _bwd_set(rows, nb, w, Z, C, Gt, next_rows)  # Gt = R^T X: no zeroing pass
        fs_restore_csr(csr)
        scale = _minibatch_scale(swb, nb, e.weight_mean)
        if tid == 0:
            loss = data * scale
            pen = e.penalties + parity * team * 2
            if e.l2 != 0:
                sq = 0
                for u in range(team):
                    sq += pen[2 * u]
                loss += 0.5 * e.l2 * sq
            if e.l1 != 0:
                sq = 0
                for u in range(team):
                    sq += pen[2 * u + 1]
                loss += e.l1 * sq
            total += loss * nb
        t += 1
        if e.code == LEARNER_SGD and e.l1 == 0:
            if floating is float:
                fs_sgd_step_f32(Wt, Gt, cols, <float>scale, <float>e.l2, <float>e.lr)
            else:
                fs_sgd_step_f64(Wt, Gt, cols, scale, e.l2, e.lr)
        else:
            _epoch_update(0, cols, 1, cols, Wt, Gt, <floating>scale, <floating>e.l2, e.code,
                          sW, n_states, e.hp, e.n_hp, e.lr, t, <floating>e.l1, s.orthant)
        if e.fit_intercept:
            for c in range(C):
                gb[c] = <floating>(s.db[c] * scale)
            _learner_update(e.code, bt, gb, sb, n_states, e.hp, e.n_hp, C, e.lr, t)
    _copy_columns(WT + f0, d, Wt, w, C, w)
    for k in range(n_states):
        _copy_columns(<floating *>e.states_W[k] + f0, d, sW[k], w, C, w)
    if tid == 0:
        if e.fit_intercept:
            memcpy(e.b, bt, C * sizeof(floating))
            for k in range(n_states):
                memcpy(e.states_b[k], sb[k], C * sizeof(floating))
        e.total = total
        e.t_out = t
        e.team = team


# the worker of each (X, W) type pair, as a team body
cdef void _split_body_f32(void *e, int tid, int team) noexcept nogil:
    _split_worker(<SplitEpoch *>e, tid, team, <const float *>NULL, <float *>NULL)


cdef void _split_body_f64(void *e, int tid, int team) noexcept nogil:
    _split_worker(<SplitEpoch *>e, tid, team, <const double *>NULL, <double *>NULL)


cdef void _split_body_u8_f32(void *e, int tid, int team) noexcept nogil:
    _split_worker(<SplitEpoch *>e, tid, team, <const uint8_t *>NULL, <float *>NULL)


cdef void _split_body_u8_f64(void *e, int tid, int team) noexcept nogil:
    _split_worker(<SplitEpoch *>e, tid, team, <const uint8_t *>NULL, <double *>NULL)


cdef bint _use_feature_split(int nt, Py_ssize_t batch_size, Py_ssize_t d,
                             Py_ssize_t itemsize) noexcept nogil:
    # the feature split when each thread's share of a minibatch stays in L2
    # between its two products (and the row split otherwise)
    return (2 <= nt <= FS_MAX_TEAM
            and batch_size * ((d + nt - 1) // nt) * itemsize <= _SPLIT_MAX_SHARE_BYTES)


cdef object _train_epoch_split(const xtype[:, ::1] X, const Py_ssize_t[::1] y,
                               const floating[::1] sample_weight, double weight_mean,
                               floating[:, ::1] WT, floating[::1] b, const Py_ssize_t[::1] order,
                               Py_ssize_t batch_size, double l2, bint fit_intercept, int code,
                               const double[::1] hyperparameters, double lr, long t,
                               list states_W, list states_b, floating **sW, floating **sb,
                               Py_ssize_t n_states, int nt, double l1):
    # train_epoch's epoch on nt >= 2 threads, split by features; the
    # arguments are checked (train_epoch), order is not empty and
    # batch_size <= len(order).  Returns (loss, t), or None when the OpenMP
    # runtime gave fewer threads than nt (nothing updated then).
    cdef SplitEpoch e
    cdef SplitScratch counted
    cdef Py_ssize_t C = WT.shape[0], d = WT.shape[1], k, share_bytes
    cdef Py_ssize_t item = sizeof(floating), line = 64 // sizeof(floating)
    cdef fs_team_body body
    cdef void *buffer = NULL
    cdef char *base
    _check_x_type(<const xtype *>NULL, <const floating *>NULL)
    if xtype is uint8_t:
        body = _split_body_u8_f32 if floating is float else _split_body_u8_f64
    elif xtype is float:
        body = _split_body_f32
    else:
        body = _split_body_f64
    e.X = &X[0, 0]
    e.y = &y[0]
    e.sample_weight = &sample_weight[0] if sample_weight.shape[0] > 0 else NULL
    e.weighted = sample_weight.shape[0] > 0
    e.order = &order[0]
    e.WT = &WT[0, 0]
    e.b = &b[0]
    for k in range(n_states):
        e.states_W[k] = sW[k]
        e.states_b[k] = sb[k] if fit_intercept else NULL
    e.hp = &hyperparameters[0] if hyperparameters.shape[0] > 0 else NULL
    e.n, e.d, e.C, e.batch_size = order.shape[0], d, C, batch_size
    e.n_states, e.n_hp = n_states, hyperparameters.shape[0]
    e.unit = line  # a cache line of weights
    e.width = 0
    for k in range(nt):
        e.width = max(e.width, fs_split_point(d, nt, k + 1, line) - fs_split_point(d, nt, k, line))
    e.width = max(e.width, 1)
    e.weight_mean, e.l2, e.l1, e.lr, e.t = weight_mean, l2, l1, lr, t
    e.code, e.fit_intercept, e.threads = code, fit_intercept, nt
    e.total, e.t_out, e.team = 0.0, t, 0
    e.slot = _lines(batch_size * C * item) // item
    e.scratch_bytes = _split_scratch(NULL, &counted, C, e.width, batch_size, n_states, item)
    share_bytes = (_lines(2 * nt * e.slot * item) + _lines(2 * nt * 2 * sizeof(double))
                   + _lines(C * item))
    buffer = malloc(share_bytes + nt * e.scratch_bytes + 64)
    if buffer == NULL:
        raise MemoryError(f"no memory for the buffers of minibatches of {batch_size} rows "
                          f"on {nt} threads")
    try:
        base = <char *>((<size_t>buffer + 63) & ~(<size_t>63))
        e.partials = base
        base += _lines(2 * nt * e.slot * item)
        e.penalties = <double *>base
        base += _lines(2 * nt * 2 * sizeof(double))
        memset(base, 0, C * item)
        e.zeros = base
        base += _lines(C * item)
        e.scratch = base
        with nogil:
            fs_run_team(nt, body, &e, &e.barrier)
    finally:
        free(buffer)
    if e.team != nt:
        return None
    return e.total / e.n, e.t_out


def epoch_split_columns(int num_threads, Py_ssize_t batch_size, Py_ssize_t d,
                        Py_ssize_t x_itemsize, Py_ssize_t w_itemsize):
    """The first feature of each thread's columns (``num_threads + 1``
    entries, the last ``d``) when ``train_epoch`` splits its minibatches of
    ``batch_size`` rows by features on ``num_threads`` threads (X entries of
    ``x_itemsize`` bytes, weights of ``w_itemsize``), or None when it does
    not (one thread, or the row split of large minibatches).  For tests."""
    if not _use_feature_split(num_threads, batch_size, d, x_itemsize):
        return None
    return [fs_split_point(d, num_threads, k, 64 // w_itemsize) for k in range(num_threads + 1)]
