# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled CSR kernels of the ``cython`` backend (``nogil``, OpenMP).

The CSR counterparts of ``linear``, ``softmax_ce_sums`` and ``logistic_sums``
of ``_cython_kernels``; the thin Python layer that allocates the buffers is
:mod:`fastsoftmax._backends.cython`.  A CSR matrix arrives as its three
arrays: ``data`` of the weights' type, ``indices`` and ``indptr`` both int32
or both int64 (any order of indices, duplicates summed, explicit zeros, empty
rows).  The weights are used as ``W = coef.T``, (d, C): the entry ``x_ij``
reads the contiguous row ``W[j]`` and adds to the contiguous gradient row
``G[j]``, so the inner loops run over the classes and vectorise.

The fused pass takes blocks of rows: the block's logits (written
class-major), the softmax residual of the whole block by the SIMD kernel of
the dense pass (``fs_ce_residual_cols``, the same arithmetic), and the
scatter of ``x_i r_i^T`` into the (d, C) gradient; on several threads the
scatter is split by features (``softmax_ce_sums_csr_split``).
"""

from cython.parallel cimport prange, threadid
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free

from fs_simd cimport *
from fs_scalar cimport floating, fs_bce, fs_sigmoid

ctypedef fused index_t:
    int32_t
    int64_t

cdef extern from "fs_sparse_rows.h" nogil:
    # the inner loops over the entries of a row in the (d, C) layout, for every SIMD level
    void fs_csr_gather_f32_i32(const float *data, const int32_t *indices, Py_ssize_t lo,
                               Py_ssize_t hi, Py_ssize_t end, const float *W, Py_ssize_t C,
                               float *z, const float *G)
    void fs_csr_gather_f32_i64(const float *data, const int64_t *indices, Py_ssize_t lo,
                               Py_ssize_t hi, Py_ssize_t end, const float *W, Py_ssize_t C,
                               float *z, const float *G)
    void fs_csr_gather_f64_i32(const double *data, const int32_t *indices, Py_ssize_t lo,
                               Py_ssize_t hi, Py_ssize_t end, const double *W, Py_ssize_t C,
                               double *z, const double *G)
    void fs_csr_gather_f64_i64(const double *data, const int64_t *indices, Py_ssize_t lo,
                               Py_ssize_t hi, Py_ssize_t end, const double *W, Py_ssize_t C,
                               double *z, const double *G)
    void fs_csr_scatter_f32_i32(const float *data, const int32_t *indices, Py_ssize_t lo,
                                Py_ssize_t hi, Py_ssize_t end, const float *r, Py_ssize_t C,
                                float *G)
    void fs_csr_scatter_f32_i64(const float *data, const int64_t *indices, Py_ssize_t lo,
                                Py_ssize_t hi, Py_ssize_t end, const float *r, Py_ssize_t C,
                                float *G)
    void fs_csr_scatter_f64_i32(const double *data, const int32_t *indices, Py_ssize_t lo,
                                Py_ssize_t hi, Py_ssize_t end, const double *r, Py_ssize_t C,
                                double *G)
    void fs_csr_scatter_f64_i64(const double *data, const int64_t *indices, Py_ssize_t lo,
                                Py_ssize_t hi, Py_ssize_t end, const double *r, Py_ssize_t C,
                                double *G)
    void fs_sparse_set_prefetch(Py_ssize_t ahead, int grad_ahead)
    int fs_sparse_set_registers(int which)


cdef extern from "fs_sparse_split.h" nogil:
    # the feature-split pass on several threads (see softmax_ce_sums_csr_split), for float
    # or double data (f64) and int32 or int64 indices (i64)
    int fs_csr_softmax_split(
        int f64, int i64, const void *data, const void *indices, const void *indptr,
        Py_ssize_t n, Py_ssize_t d, Py_ssize_t C, const void *W, const void *b,
        const Py_ssize_t *y, const void *sw, void *G, double *loss_acc, double *db_acc,
        void *Z_buf, void *R_buf, int32_t *off_buf, uint8_t *row_buf, Py_ssize_t *count_buf,
        unsigned char *owner, int32_t *ready, Py_ssize_t *sync, Py_ssize_t block,
        Py_ssize_t nslots, Py_ssize_t cap, int num_threads)

# this module has its own copy of the dispatch pointers of fs_simd.h (and the level that
# fs_sparse_rows.h reads)
fs_set_level(-1)


cdef inline void _logits_row(const floating *data, const index_t *indices, Py_ssize_t lo,
                             Py_ssize_t hi, Py_ssize_t end, const floating *W, Py_ssize_t ws,
                             const floating *b, Py_ssize_t C, floating *z,
                             const floating *G) noexcept nogil:
    # z = W^T x + b for the entries lo:hi of a sparse row, W[j, c] at W[j C + c] (ws = 1,
    # compiled per SIMD level, prefetching the rows of W of the entries that follow, up to
    # end) or, in the layout of coef, at W[c ws + j] (ws = d: no transpose, for small batches)
    cdef Py_ssize_t k, c
    cdef floating x
    cdef const floating *w
    for c in range(C):
        z[c] = b[c]
    if ws == 1:
        if floating is float:
            if index_t is int32_t:
                fs_csr_gather_f32_i32(data, indices, lo, hi, end, W, C, z, G)
            else:
                fs_csr_gather_f32_i64(data, indices, lo, hi, end, W, C, z, G)
        else:
            if index_t is int32_t:
                fs_csr_gather_f64_i32(data, indices, lo, hi, end, W, C, z, G)
            else:
                fs_csr_gather_f64_i64(data, indices, lo, hi, end, W, C, z, G)
        return
    for k in range(lo, hi):
        x = data[k]
        w = W + <Py_ssize_t>indices[k]
        for c in range(C):
            z[c] += x * w[c * ws]


cdef inline void _scatter_row(const floating *data, const index_t *indices, Py_ssize_t lo,
                              Py_ssize_t hi, Py_ssize_t end, const floating *r, Py_ssize_t C,
                              floating *G, Py_ssize_t ws) noexcept nogil:
    # G[j] += x_ij r for the entries lo:hi of a sparse row, G in the layout of W
    # (see _logits_row)
    cdef Py_ssize_t k, c
    cdef floating x
    cdef floating *g
    if ws == 1:
        if floating is float:
            if index_t is int32_t:
                fs_csr_scatter_f32_i32(data, indices, lo, hi, end, r, C, G)
            else:
                fs_csr_scatter_f32_i64(data, indices, lo, hi, end, r, C, G)
        else:
            if index_t is int32_t:
                fs_csr_scatter_f64_i32(data, indices, lo, hi, end, r, C, G)
            else:
                fs_csr_scatter_f64_i64(data, indices, lo, hi, end, r, C, G)
        return
    for k in range(lo, hi):
        x = data[k]
        g = G + <Py_ssize_t>indices[k]
        for c in range(C):
            g[c * ws] += x * r[c]


cdef double _softmax_csr_block(const floating *data, const index_t *indices,
                               const index_t *indptr, Py_ssize_t a, Py_ssize_t nb,
                               const floating *W, Py_ssize_t ws, const floating *b,
                               Py_ssize_t C, const Py_ssize_t *y, const floating *sw,
                               floating *Z, floating *row, floating *G,
                               double *db) noexcept nogil:
    # rows a:a+nb: logits class-major in Z (Z[c nb + i]), residual in place, scatter
    cdef Py_ssize_t i, c
    cdef double loss
    for i in range(nb):
        _logits_row(data, indices, indptr[a + i], indptr[a + i + 1], indptr[a + nb], W, ws, b,
                    C, row, G)
        for c in range(C):
            Z[c * nb + i] = row[c]
    if floating is float:
        loss = fs_ce_residual_cols_f32(Z, nb, C, y + a, sw + a if sw != NULL else NULL, db)
    else:
        loss = fs_ce_residual_cols_f64(Z, nb, C, y + a, sw + a if sw != NULL else NULL, db)
    for i in range(nb):
        for c in range(C):
            row[c] = Z[c * nb + i]
        _scatter_row(data, indices, indptr[a + i], indptr[a + i + 1], indptr[a + nb], row, C, G,
                     ws)
    return loss


def softmax_ce_sums_csr(const floating[::1] data, const index_t[::1] indices,
                        const index_t[::1] indptr, const floating[:, ::1] W,
                        const floating[::1] b, const Py_ssize_t[::1] y,
                        const floating[::1] sample_weight, floating[:, ::1] G,
                        double[::1] db, floating[::1] Z_buf, Py_ssize_t block,
                        bint coef_layout):
    """Fused softmax regression pass over a CSR matrix, on one thread: the data-term sums.

    ``W`` is ``coef.T`` (d, C); ``X^T s (P - Y)`` is added to ``G`` (d, C,
    zeroed by the caller: e.g. the gradient itself) and the column sums of
    ``s (P - Y)`` to ``db``; ``Z_buf`` ((block + 1) C) is scratch.  With
    ``coef_layout``, ``W`` is ``coef`` itself (C, d) and ``G`` is (C, d) too:
    strided, but no transpose, for small batches.  An empty ``sample_weight``
    means unit weights.  Returns ``sum_i s_i CE_i``.  (Several threads:
    :func:`softmax_ce_sums_csr_split`.)
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, k, a
    cdef Py_ssize_t C = W.shape[0] if coef_layout else W.shape[1]
    cdef Py_ssize_t ws = W.shape[1] if coef_layout else 1
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef double loss = 0
    if Z_buf.shape[0] < (block + 1) * C:
        raise ValueError("Z_buf is too small for blocks of this size")
    if n == 0 or C == 0:
        return 0.0
    with nogil:
        for k in range((n + block - 1) // block):
            a = k * block
            loss += _softmax_csr_block(
                &data[0] if data.shape[0] else NULL, &indices[0] if indices.shape[0] else NULL,
                &indptr[0], a, min(block, n - a), &W[0, 0], ws, &b[0], C, &y[0], sw,
                &Z_buf[0], &Z_buf[block * C], &G[0, 0], &db[0])
    return loss



# -- the feature-split pass (two threads or more) ----------------------------------------
#
# A fused pass with blocks of rows per thread would need a (d, C) accumulator per extra
# thread and their reduction (at d C = 4M, about as long as the pass itself).  Here the
# rows are shared out for the logits and the residual, and the scatter X^T R is split by
# features: thread t updates only the gradient rows of the blocks of 64 features it owns.
# Whoever computes a block of rows also partitions its entries by owner; each thread then
# scatters its part of every block, in the order of the blocks (fs_sparse_split.h).  Each
# gradient row is summed by one thread over the rows in their order: bit for bit the
# one-thread pass, whatever the number of threads, with no accumulator and no reduction.

def softmax_ce_sums_csr_split(const floating[::1] data, const index_t[::1] indices,
                              const index_t[::1] indptr, const floating[:, ::1] W,
                              const floating[::1] b, const Py_ssize_t[::1] y,
                              const floating[::1] sample_weight, floating[:, ::1] G,
                              double[:, ::1] db_acc, floating[:, ::1] Z_buf,
                              floating[:, ::1] R_buf, int32_t[:, ::1] entry_offsets,
                              uint8_t[:, ::1] entry_rows, Py_ssize_t block, int num_threads):
    """The fused pass of :func:`softmax_ce_sums_csr` on several threads, split by features.

    ``W`` is ``coef.T`` (d, C); ``G`` (d, C) receives ``X^T s (P - Y)`` (all
    of it: no need to zero it) and ``db_acc[t]`` (zeroed) the column sums of
    ``s (P - Y)`` of the rows thread t computed.  Scratch: ``Z_buf``
    (threads, block C) a block's logits; a ring of slots, each holding a
    block's residual (``R_buf`` (slots x block, C)) and its entries
    listed by owner (``entry_offsets``, ``entry_rows`` (slots, threads x
    cap), cap at least the most entries of a block of rows).  Blocks of at most 256 rows.  The
    gradient is bit for bit that of the one-thread pass.  An empty
    ``sample_weight`` means unit weights.  Returns ``sum_i s_i CE_i``.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, d = W.shape[0], C = W.shape[1]
    cdef Py_ssize_t nslots = R_buf.shape[0] // block if block >= 1 else 0
    cdef Py_ssize_t nblocks = (n + block - 1) // block if block >= 1 else 0
    cdef Py_ssize_t cap = entry_offsets.shape[1] // num_threads if num_threads >= 1 else 0
    cdef Py_ssize_t k, a, widest = 0
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef const floating *dp = &data[0] if data.shape[0] else NULL
    cdef const index_t *ip = &indices[0] if indices.shape[0] else NULL
    cdef int team = 0, t
    cdef double loss = 0
    cdef double *loss_acc
    cdef Py_ssize_t *counts
    cdef Py_ssize_t *sync
    cdef unsigned char *owner
    cdef int32_t *ready
    if not (G.shape[0] == d and G.shape[1] == C and b.shape[0] == C and y.shape[0] == n
            and sample_weight.shape[0] in (0, n) and 1 <= num_threads <= 255
            and db_acc.shape[0] >= num_threads and db_acc.shape[1] == C
            and Z_buf.shape[0] >= num_threads and Z_buf.shape[1] >= block * C
            and 1 <= block <= 256 and nslots >= 1 and R_buf.shape[0] == nslots * block
            and R_buf.shape[1] == C and entry_offsets.shape[0] == nslots
            and entry_rows.shape[0] == nslots and entry_rows.shape[1] == entry_offsets.shape[1]):
        raise ValueError("gradient, weights, labels or scratch of another shape")
    for k in range(nblocks):
        a = k * block
        widest = max(widest, <Py_ssize_t>(indptr[min(a + block, n)] - indptr[a]))
    if cap < widest or cap > 2147483647:
        raise ValueError(f"entry lists of {cap} for a block's {widest} entries (at most 2**31 - 1)")
    if d == 0 or C == 0:
        return 0.0
    counts = <Py_ssize_t *>calloc(nslots * num_threads, sizeof(Py_ssize_t))
    sync = <Py_ssize_t *>calloc((num_threads + 1) * 8, sizeof(Py_ssize_t))
    loss_acc = <double *>calloc(num_threads, sizeof(double))
    owner = <unsigned char *>calloc((d + 63) // 64, 1)
    ready = <int32_t *>calloc(max(nblocks, 1), sizeof(int32_t))
    try:
        if not (counts and sync and loss_acc and owner and ready):
            raise MemoryError()
        with nogil:
            team = fs_csr_softmax_split(
                floating is double, index_t is int64_t, dp, ip, &indptr[0], n, d, C, &W[0, 0],
                &b[0], &y[0] if n else NULL, sw, &G[0, 0], loss_acc, &db_acc[0, 0],
                &Z_buf[0, 0], &R_buf[0, 0], &entry_offsets[0, 0] if cap else NULL,
                &entry_rows[0, 0] if cap else NULL, counts, owner, ready, sync, block, nslots,
                cap, num_threads)
        for t in range(team):
            loss += loss_acc[t]
    finally:
        free(counts)
        free(sync)
        free(loss_acc)
        free(owner)
        free(ready)
    return loss


def _set_simd_level(int level):
    """Tests only: this module's instruction-set level (0 base, 1 AVX2, 2 AVX-512; -1 the
    best the CPU has); returns the level in use."""
    return fs_set_level(level)


def _set_register_rows(int which):
    """Tuning only: where the AVX-512 register-held loops over a row's entries apply, use
    them in the gather (bit 1), the scatter (bit 2), the scatter of a thread's entries in the
    feature-split pass (bit 4); the plain loops elsewhere (the same sums; for A/B timings).
    On two threads the split pass's gather is always the plain loop (it lists the entries
    on the way).
    Returns the former setting (the default: 4)."""
    return fs_sparse_set_registers(which)


def _set_prefetch(Py_ssize_t ahead, bint grad_ahead):
    """Tuning only: prefetch the rows of the entries ``ahead`` ahead; with ``grad_ahead``
    the logits pass prefetches the gradient rows too (for the scatter)."""
    fs_sparse_set_prefetch(ahead, grad_ahead)


def linear_csr(const floating[::1] data, const index_t[::1] indices, const index_t[::1] indptr,
               const floating[:, ::1] W, const floating[::1] b, floating[:, ::1] out,
               int num_threads):
    """``out = X @ W + b`` for a CSR ``X`` (``W`` = ``coef.T``, (d, C))."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, C = W.shape[1], i
    if n == 0 or C == 0:
        return
    with nogil:
        for i in prange(n, num_threads=num_threads, schedule="static"):
            _logits_row(&data[0] if data.shape[0] else NULL,
                        &indices[0] if indices.shape[0] else NULL, indptr[i], indptr[i + 1],
                        indptr[i + 1], &W[0, 0], 1, &b[0], C, &out[i, 0], NULL)


cdef double _logistic_csr_rows(const floating *data, const index_t *indices,
                               const index_t *indptr, Py_ssize_t a, Py_ssize_t z,
                               const floating *w, floating b, const floating *y,
                               const floating *sw, floating *dw, double *db) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef floating m, s, r
    cdef double loss = 0
    for i in range(a, z):
        m = b
        for k in range(indptr[i], indptr[i + 1]):
            m = m + data[k] * w[indices[k]]
        s = sw[i] if sw != NULL else 1
        loss += s * fs_bce(m, y[i])
        r = s * (fs_sigmoid(m) - y[i])
        db[0] += r
        for k in range(indptr[i], indptr[i + 1]):
            dw[indices[k]] += data[k] * r
    return loss


def logistic_sums_csr(const floating[::1] data, const index_t[::1] indices,
                      const index_t[::1] indptr, const floating[::1] w, double b,
                      const floating[::1] y, const floating[::1] sample_weight,
                      floating[:, ::1] dw_acc, double[:, ::1] db_acc, Py_ssize_t block,
                      int num_threads):
    """Fused binary logistic pass over a CSR matrix; the binary counterpart of
    :func:`softmax_ce_sums_csr` (``dw_acc`` (threads, d) zeroed, ``db_acc``
    (threads, 1)).  Returns ``sum_i s_i BCE_i``."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, nblocks, k, a, t
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef floating bf = <floating>b
    cdef double loss = 0
    if n == 0:
        return 0.0
    nblocks = (n + block - 1) // block
    with nogil:
        for k in prange(nblocks, num_threads=num_threads, schedule="dynamic"):
            t = threadid()
            a = k * block
            loss += _logistic_csr_rows(
                &data[0] if data.shape[0] else NULL, &indices[0] if indices.shape[0] else NULL,
                &indptr[0], a, min(a + block, n), &w[0], bf, &y[0], sw, &dw_acc[t, 0],
                &db_acc[t, 0])
    return loss


def theta_to_weights(const double[::1] theta, floating[:, ::1] W, int num_threads):
    """``W`` (d, C) = ``theta[:C d].reshape(C, d).T`` rounded to W's dtype; returns the
    float64 ``||theta[:C d]||^2``.  The wide L-BFGS's parameters (coef (C, d) flattened,
    float64) become the CSR kernels' weights in one pass, without a transposed copy of coef
    and with the L2 penalty's sum of squares on the way."""
    cdef Py_ssize_t d = W.shape[0], C = W.shape[1], nblocks, blk, lo, hi, j, c
    cdef double v, total = 0
    if theta.shape[0] < C * d:
        raise ValueError("theta is shorter than W")
    nblocks = (d + 63) // 64
    with nogil:
        for blk in prange(nblocks, num_threads=num_threads, schedule="static"):
            lo = blk * 64
            hi = min(lo + 64, d)
            for c in range(C):
                for j in range(lo, hi):
                    v = theta[c * d + j]
                    W[j, c] = <floating>v
                    total += v * v
    return total


def weights_grad_to_theta(const floating[:, ::1] G, const double[::1] theta, double l2,
                          double[::1] out, int num_threads):
    """``out[:C d]`` = ``G.T.reshape(-1) + l2 theta[:C d]`` in float64 (``G`` (d, C), the
    data term's gradient in the kernels' layout): the inverse of :func:`theta_to_weights`
    with the L2 gradient added, in one pass."""
    cdef Py_ssize_t d = G.shape[0], C = G.shape[1], nblocks, blk, lo, hi, j, c
    if theta.shape[0] < C * d or out.shape[0] < C * d:
        raise ValueError("theta or out is shorter than G")
    nblocks = (d + 63) // 64
    with nogil:
        for blk in prange(nblocks, num_threads=num_threads, schedule="static"):
            lo = blk * 64
            hi = min(lo + 64, d)
            for c in range(C):
                for j in range(lo, hi):
                    out[c * d + j] = <double>G[j, c] + l2 * theta[c * d + j]


def sum_transposed(const floating[:, :, ::1] G, floating[:, ::1] out, int num_threads):
    """``out`` (C, d) = ``sum_t G[t].T`` of per-thread accumulators ``G`` (T, d, C)."""
    cdef Py_ssize_t T = G.shape[0], d = G.shape[1], C = G.shape[2], nblocks, blk, lo, hi
    cdef Py_ssize_t j, c, t
    cdef floating s
    nblocks = (d + 63) // 64
    with nogil:
        for blk in prange(nblocks, num_threads=num_threads, schedule="static"):
            lo = blk * 64
            hi = min(lo + 64, d)
            for c in range(C):
                for j in range(lo, hi):
                    s = G[0, j, c]
                    for t in range(1, T):
                        s = s + G[t, j, c]
                    out[c, j] = s


# ========================================================================
# Many classes (issue 14): the tiled regime of softmax_ce_sums_csr.
#
# Chosen by fastsoftmax._backends._tiling.plan_csr.  The weights arrive split
# into class tiles, each transposed ((d, tc) blocks, fs_sparse_tiled.h), so an
# entry x_ij reads and updates the contiguous row j of its tile.  Per block of
# rows, pass A over the tiles forms each tile's logits (class-major, lanes
# over rows) and keeps each (row, tile)'s logit max and sum of exponentials
# (fs_tile_stats of the dense tiled pass); their combination is the row's
# log-sum-exp and loss.  Pass B recomputes the logits of the rows that hold
# the label in the tile or whose largest probability there reaches the
# threshold (all rows without skipping), forms s (P - Y) (fs_tile_residual)
# and scatters x_i r_i^T into the tile's gradient block.  Threads own tiles:
# disjoint gradient blocks, no per-thread accumulators.  Extra memory: one
# tile of logits per thread and (tiles x rows) statistics, whatever n.

from libc.math cimport INFINITY

cdef extern from "fs_sparse_tiled.h" nogil:
    void fs_pack_class_tiles_f32(const float *coef, Py_ssize_t C, Py_ssize_t d,
                                 Py_ssize_t class_tile, float *Wt)
    void fs_pack_class_tiles_f64(const double *coef, Py_ssize_t C, Py_ssize_t d,
                                 Py_ssize_t class_tile, double *Wt)
    void fs_unpack_class_tiles_f32(const float *Gt, Py_ssize_t C, Py_ssize_t d,
                                   Py_ssize_t class_tile, float *coef_grad)
    void fs_unpack_class_tiles_f64(const double *Gt, Py_ssize_t C, Py_ssize_t d,
                                   Py_ssize_t class_tile, double *coef_grad)
    double fs_tiles_log_sum_exp(const double *tile_max, const double *tile_sum,
                                Py_ssize_t ntiles, Py_ssize_t stride)

cdef enum:
    # rows per block of the tiled CSR pass at most (its per-row tables live on the stack)
    _TILED_MAX_ROWS = 512


def pack_class_tiles(const floating[:, ::1] coef, Py_ssize_t class_tile, floating[::1] Wt):
    """``Wt`` (C d,) = ``coef`` (C, d) in transposed class tiles (see fs_sparse_tiled.h)."""
    if Wt.shape[0] != coef.shape[0] * coef.shape[1] or class_tile < 1:
        raise ValueError("Wt must hold C x d entries, class_tile be >= 1")
    if Wt.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fs_pack_class_tiles_f32(&coef[0, 0], coef.shape[0], coef.shape[1], class_tile, &Wt[0])
        else:
            fs_pack_class_tiles_f64(&coef[0, 0], coef.shape[0], coef.shape[1], class_tile, &Wt[0])


def unpack_class_tiles(const floating[::1] Gt, Py_ssize_t class_tile, floating[:, ::1] coef_grad):
    """The inverse of :func:`pack_class_tiles`: ``coef_grad`` (C, d) from the tiles ``Gt``."""
    if Gt.shape[0] != coef_grad.shape[0] * coef_grad.shape[1] or class_tile < 1:
        raise ValueError("Gt must hold C x d entries, class_tile be >= 1")
    if Gt.shape[0] == 0:
        return
    with nogil:
        if floating is float:
            fs_unpack_class_tiles_f32(&Gt[0], coef_grad.shape[0], coef_grad.shape[1], class_tile,
                                      &coef_grad[0, 0])
        else:
            fs_unpack_class_tiles_f64(&Gt[0], coef_grad.shape[0], coef_grad.shape[1], class_tile,
                                      &coef_grad[0, 0])


cdef inline Py_ssize_t _rows_padded(Py_ssize_t m) noexcept nogil:
    # a multiple of every vector width of fs_tile_stats / fs_tile_residual
    return (m + 15) // 16 * 16


cdef void _csr_tile_logits(const floating *data, const index_t *indices, const index_t *indptr,
                           const Py_ssize_t *rows, Py_ssize_t h, Py_ssize_t hp,
                           const floating *Wt, const floating *b, Py_ssize_t tc, floating *row,
                           floating *Z) noexcept nogil:
    # Z (tc, hp), class-major: the tile's logits of the CSR rows rows[0..h), 0 in the padding
    cdef Py_ssize_t k, c, r
    for k in range(h):
        r = rows[k]
        _logits_row(data, indices, indptr[r], indptr[r + 1], indptr[r + 1], Wt, 1, b, tc, row,
                    NULL)
        for c in range(tc):
            Z[c * hp + k] = row[c]
    for c in range(tc):
        for k in range(h, hp):
            Z[c * hp + k] = 0


cdef void _csr_tile_pass_a(const floating *data, const index_t *indices, const index_t *indptr,
                           const Py_ssize_t *rows, Py_ssize_t m, const floating *Wt,
                           const floating *b, Py_ssize_t c0, Py_ssize_t tc, const Py_ssize_t *y,
                           floating *row, floating *Z, double *tile_max, double *tile_sum,
                           double *label_logit) noexcept nogil:
    cdef floating row_max[_TILED_MAX_ROWS + 16]
    cdef floating row_sum[_TILED_MAX_ROWS + 16]
    cdef Py_ssize_t i, mp = _rows_padded(m)
    _csr_tile_logits(data, indices, indptr, rows, m, mp, Wt, b + c0, tc, row, Z)
    if floating is float:
        fs_tile_stats_f32(Z, mp, tc, row_max, row_sum)
    else:
        fs_tile_stats_f64(Z, mp, tc, row_max, row_sum)
    for i in range(m):
        tile_max[i] = row_max[i]
        tile_sum[i] = row_sum[i]
        if c0 <= y[i] < c0 + tc:
            label_logit[i] = Z[(y[i] - c0) * mp + i]


cdef void _csr_tile_pass_b(const floating *data, const index_t *indices, const index_t *indptr,
                           const Py_ssize_t *rows, Py_ssize_t m, const floating *Wt,
                           const floating *b, Py_ssize_t c0, Py_ssize_t tc, const Py_ssize_t *y,
                           const floating *sw, const double *lse, const double *tile_max,
                           bint skip, double log_threshold, floating *row, floating *Z,
                           floating *Gt, double *db) noexcept nogil:
    # s (P - Y) of the tile's classes for the hot rows (see the section comment) into the
    # tile's gradient block Gt (d, tc) and db[c0 : c0 + tc]
    cdef Py_ssize_t hot_rows[_TILED_MAX_ROWS]
    cdef Py_ssize_t hot_label[_TILED_MAX_ROWS]
    cdef floating hot_lse[_TILED_MAX_ROWS + 16]
    cdef floating hot_weight[_TILED_MAX_ROWS + 16]
    cdef Py_ssize_t i, c, k, r, h = 0, hp
    cdef bint here
    for i in range(m):
        here = c0 <= y[i] < c0 + tc
        if here or not skip or tile_max[i] - lse[i] >= log_threshold:
            hot_rows[h] = rows[i]
            hot_label[h] = y[i] - c0 if here else -1
            hot_lse[h] = <floating>lse[i]
            hot_weight[h] = sw[i] if sw != NULL else 1
            h += 1
    if h == 0:
        return
    hp = _rows_padded(h)
    for k in range(h, hp):  # padding rows: logits 0, exp(0 - inf) = 0, weight 0
        hot_lse[k] = <floating>INFINITY
        hot_weight[k] = 0
    _csr_tile_logits(data, indices, indptr, hot_rows, h, hp, Wt, b + c0, tc, row, Z)
    if floating is float:
        fs_tile_residual_f32(Z, hp, Z, hp, tc, hp, hot_lse, hot_weight, db + c0)
    else:
        fs_tile_residual_f64(Z, hp, Z, hp, tc, hp, hot_lse, hot_weight, db + c0)
    for k in range(h):
        if hot_label[k] >= 0:  # the label's -s_i
            Z[hot_label[k] * hp + k] -= hot_weight[k]
            db[c0 + hot_label[k]] -= hot_weight[k]
        for c in range(tc):
            row[c] = Z[c * hp + k]
        r = hot_rows[k]
        _scatter_row(data, indices, indptr[r], indptr[r + 1], indptr[r + 1], row, tc, Gt, 1)


def softmax_ce_sums_csr_tiled(const floating[::1] data, const index_t[::1] indices,
                              const index_t[::1] indptr, const floating[::1] Wt,
                              const floating[::1] b, const Py_ssize_t[::1] y,
                              const floating[::1] sample_weight, floating[::1] Gt,
                              double[::1] db, floating[:, ::1] Z_buf, floating[:, ::1] row_buf,
                              double[:, ::1] tile_max, double[:, ::1] tile_sum,
                              Py_ssize_t class_tile, bint skip, double log_threshold,
                              int num_threads):
    """The tiled regime of :func:`softmax_ce_sums_csr`, for many classes.

    ``Wt`` holds the weights in transposed class tiles (:func:`pack_class_tiles`
    of ``coef`` (C, d), tiles of ``class_tile`` classes); ``Gt`` (zeroed, the
    same layout) and ``db`` (C,) (zeroed) receive ``X^T s (P - Y)`` and the
    column sums of ``s (P - Y)``.  Blocks of ``tile_max.shape[1]`` rows (at
    most 512).  Scratch: ``Z_buf`` (threads, class_tile x mp) a tile's logits,
    ``row_buf`` (threads, class_tile) one row's, with mp the block rounded up
    to a multiple of 16; ``tile_max`` and ``tile_sum`` (tiles, block).  With
    ``skip``, a (row, tile) whose largest log-probability is below
    ``log_threshold`` and which does not hold the row's label is left out of
    the gradient.  An empty ``sample_weight`` means unit weights.  Returns
    ``sum_i s_i CE_i``.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1, C = b.shape[0], d, block = tile_max.shape[1]
    cdef Py_ssize_t ntiles, a, m, i, t, c0, tc
    cdef const floating *sw = &sample_weight[0] if sample_weight.shape[0] else NULL
    cdef const floating *dp = &data[0] if data.shape[0] else NULL
    cdef const index_t *ip = &indices[0] if indices.shape[0] else NULL
    cdef Py_ssize_t rows[_TILED_MAX_ROWS]
    cdef double lse[_TILED_MAX_ROWS]
    cdef double label_logit[_TILED_MAX_ROWS]
    cdef double loss = 0
    if n == 0 or C == 0:
        return 0.0
    if not (1 <= block <= _TILED_MAX_ROWS and class_tile >= 1 and Wt.shape[0] % C == 0):
        raise ValueError(f"blocks of {block} rows (1 to {_TILED_MAX_ROWS}), class tiles of "
                         f"{class_tile}, {Wt.shape[0]} weights for {C} classes")
    d = Wt.shape[0] // C
    ntiles = (C + class_tile - 1) // class_tile
    if not (Gt.shape[0] == C * d and db.shape[0] == C and y.shape[0] == n
            and sample_weight.shape[0] in (0, n) and tile_max.shape[0] == ntiles
            and tile_sum.shape[0] == ntiles and tile_sum.shape[1] == block
            and Z_buf.shape[0] >= num_threads and row_buf.shape[0] >= num_threads
            and Z_buf.shape[1] >= class_tile * _rows_padded(block)
            and row_buf.shape[1] >= class_tile and d >= 1 and num_threads >= 1):
        raise ValueError("gradient, weights, labels or scratch of another shape")
    for i in range(n):
        if not 0 <= y[i] < C:
            raise ValueError(f"labels must lie in [0, {C}), got {y[i]}")
    with nogil:
        a = 0
        while a < n:
            m = min(block, n - a)
            for i in range(m):
                rows[i] = a + i
            for t in prange(ntiles, num_threads=num_threads, schedule="dynamic"):
                c0 = t * class_tile
                tc = min(class_tile, C - c0)
                _csr_tile_pass_a(dp, ip, &indptr[0], rows, m, &Wt[c0 * d], &b[0], c0, tc, &y[a],
                                 &row_buf[threadid(), 0], &Z_buf[threadid(), 0], &tile_max[t, 0],
                                 &tile_sum[t, 0], label_logit)
            for i in range(m):  # combine the tiles: the row's log-sum-exp and loss
                lse[i] = fs_tiles_log_sum_exp(&tile_max[0, i], &tile_sum[0, i], ntiles, block)
                loss += (sw[a + i] if sw != NULL else 1) * (lse[i] - label_logit[i])
            for t in prange(ntiles, num_threads=num_threads, schedule="dynamic"):
                c0 = t * class_tile
                tc = min(class_tile, C - c0)
                _csr_tile_pass_b(dp, ip, &indptr[0], rows, m, &Wt[c0 * d], &b[0], c0, tc, &y[a],
                                 sw + a if sw != NULL else NULL, lse, &tile_max[t, 0], skip,
                                 log_threshold, &row_buf[threadid(), 0], &Z_buf[threadid(), 0],
                                 &Gt[c0 * d], &db[0])
            a += m
    return loss
