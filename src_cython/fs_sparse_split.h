/* The feature-split CSR pass on several threads (_sparse_kernels.softmax_ce_sums_csr_split).
 *
 * The rows go in blocks (block rows, at most 256); a thread that takes block k (the next
 * one not taken: dynamic) forms its logits and softmax residual (the arithmetic of the
 * one-thread pass), keeps the residual rows in slot k % nslots of a ring, and partitions
 * the block's entries by the thread that owns their feature block (64 features: owner[j >>
 * 6], fs_csr_partition_S), in their order.  Every thread scatters, for each block in
 * turn, only its own entries: so each gradient row is summed by one thread over the rows
 * in their order, bit for bit the one-thread pass, with no per-thread accumulator and no
 * reduction, and the entries are listed once, not once per thread.
 *
 * No barrier between the two: a thread scatters its entries of the next block as soon as
 * that block is ready, and otherwise takes a block to compute, so the thread with less
 * scattering to do computes more blocks.  A slot is reused once every thread has scattered
 * the block it held; a thread that waits (for a block or a slot) keeps scattering what is
 * ready, so some thread always progresses.  Per thread: cursor[t] (blocks scattered), in
 * one cache line each of `sync`, whose first line holds the next block to take; ready[k]
 * is set once block k's residual and partition are stored.
 */
#ifndef FS_SPARSE_SPLIT_H
#define FS_SPARSE_SPLIT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fs_sparse_rows.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#define FS_YIELD() sched_yield()
#else
#define FS_YIELD() ((void)0)
#endif

/* ptrdiff_t slots per cache line of `sync` */
#define FS_SYNC_LINE 8

static inline void fs_split_wait(int *spins)
{
#if FS_X86
    _mm_pause();
#endif
    if (++*spins >= 64) { /* the thread awaited may be off the CPU: let it run */
        *spins = 0;
        FS_YIELD();
    }
}

/* owner[fb] for nt threads: the blocks of 64 features dealt out in turn (each thread gets
 * frequent and rare features) */
static void fs_split_owners(unsigned char *owner, ptrdiff_t nfb, int nt)
{
    for (ptrdiff_t fb = 0; fb < nfb; fb++) owner[fb] = (unsigned char)(fb % nt);
}

/* 1 if every thread's cursor is past block k - nslots (the last one in k's slot) */
static inline int fs_split_slot_free(const ptrdiff_t *sync, int nt, ptrdiff_t k, ptrdiff_t nslots)
{
    if (k < nslots) return 1;
    for (int u = 0; u < nt; u++)
        if (__atomic_load_n(&sync[(u + 1) * FS_SYNC_LINE], __ATOMIC_ACQUIRE) <= k - nslots)
            return 0;
    return 1;
}

#define FS_SPARSE_SPLIT(S, T, I, RESIDUAL)                                                      \
    static double fs_split_block_##S(const T *data, const I *indices, const I *indptr,          \
                                     ptrdiff_t a, ptrdiff_t nb, const T *W, const T *b,         \
                                     ptrdiff_t C, const ptrdiff_t *y, const T *sw, T *Z, T *R,  \
                                     double *db, const unsigned char *owner, int nt,            \
                                     ptrdiff_t cap, int32_t *off, uint8_t *row,                 \
                                     ptrdiff_t *count)                                          \
    {                                                                                           \
        /* rows a:a+nb: logits class-major in Z, the residual into the rows of R (nb x C), the \
         * entries listed by owner (for two threads on the way) */                             \
        const ptrdiff_t base = (ptrdiff_t)indptr[a];                                            \
        if (nt == 2) count[0] = count[1] = 0;                                                              \
        for (ptrdiff_t i = 0; i < nb; i++) {                                                    \
            T *z = R + i * C;                                                                   \
            for (ptrdiff_t c = 0; c < C; c++) z[c] = b[c];                                      \
            if (nt == 2)                                                                        \
                fs_csr_gather_list2_##S(data, indices, indptr[a + i], indptr[a + i + 1],        \
                                        indptr[a + nb], W, C, z, owner, base, i, cap, off, row, \
                                        count);                                                 \
            else                                                                                \
                fs_csr_gather_##S(data, indices, indptr[a + i], indptr[a + i + 1],              \
                                  indptr[a + nb], W, C, z, NULL);                               \
            for (ptrdiff_t c = 0; c < C; c++) Z[c * nb + i] = z[c];                             \
        }                                                                                       \
        if (nt != 2) fs_csr_partition_##S(indices, indptr + a, nb, owner, nt, cap, off, row, count); \
        const double loss = RESIDUAL(Z, nb, C, y + a, sw ? sw + a : NULL, db);                 \
        for (ptrdiff_t i = 0; i < nb; i++)                                                      \
            for (ptrdiff_t c = 0; c < C; c++) R[i * C + c] = Z[c * nb + i];                     \
        return loss;                                                                            \
    }                                                                                           \
    /* returns the number of threads that ran; loss_acc[t] and db_acc[t] (zeroed) their     \
     * shares of the loss and of the column sums of the residual */                           \
    static int fs_csr_softmax_split_##S(                                                        \
        const T *data, const I *indices, const I *indptr, ptrdiff_t n, ptrdiff_t d,             \
        ptrdiff_t C, const T *W, const T *b, const ptrdiff_t *y, const T *sw, T *G,             \
        double *loss_acc, double *db_acc, T *Z_buf, T *R_buf, int32_t *off_buf,                 \
        uint8_t *row_buf, ptrdiff_t *count_buf, unsigned char *owner, int32_t *ready,           \
        ptrdiff_t *sync, ptrdiff_t block, ptrdiff_t nslots, ptrdiff_t cap, int num_threads)     \
    {                                                                                           \
        const ptrdiff_t nblocks = (n + block - 1) / block, nfb = (d + 63) / 64;                 \
        int team = 1;                                                                           \
        _Pragma("omp parallel num_threads(num_threads)")                                        \
        {                                                                                       \
            int t = 0, nt = 1;                                                                  \
            FS_SPLIT_TEAM(t, nt);                                                               \
            _Pragma("omp single")                                                               \
            {                                                                                   \
                team = nt;                                                                      \
                fs_split_owners(owner, nfb, nt);                                                \
            }                                                                                   \
            /* before its first scatter, a thread zeroes the gradient rows it owns */         \
            for (ptrdiff_t fb = 0; fb < nfb; fb++)                                              \
                if (owner[fb] == t) {                                                           \
                    const ptrdiff_t lo = fb * 64, hi = lo + 64 < d ? lo + 64 : d;               \
                    memset(G + lo * C, 0, (size_t)((hi - lo) * C) * sizeof(T));                 \
                }                                                                               \
            T *Z = Z_buf + (ptrdiff_t)t * block * C;                                            \
            double *db = db_acc + (ptrdiff_t)t * C, loss = 0;                                   \
            ptrdiff_t cursor = 0, taken = -1;                                                   \
            int none_left = 0, spins = 0;                                                       \
            for (;;) {                                                                          \
                if (cursor < nblocks && __atomic_load_n(&ready[cursor], __ATOMIC_ACQUIRE)) {    \
                    /* scatter my entries of the next block */                                \
                    const ptrdiff_t s = cursor % nslots, base = (ptrdiff_t)indptr[cursor * block]; \
                    const ptrdiff_t mine = s * num_threads * cap + t * cap;                     \
                    fs_csr_seg_scatter_##S(count_buf[s * num_threads + t], off_buf + mine,      \
                                           row_buf + mine, data + base, indices + base,         \
                                           R_buf + s * block * C, C, G);                        \
                    cursor++;                                                                   \
                    __atomic_store_n(&sync[(t + 1) * FS_SYNC_LINE], cursor, __ATOMIC_RELEASE);  \
                    spins = 0;                                                                  \
                    continue;                                                                   \
                }                                                                               \
                if (taken < 0 && !none_left) {                                                  \
                    taken = __atomic_fetch_add(&sync[0], 1, __ATOMIC_RELAXED);                  \
                    if (taken >= nblocks) {                                                     \
                        none_left = 1;                                                          \
                        taken = -1;                                                             \
                    }                                                                           \
                }                                                                               \
                if (taken >= 0 && fs_split_slot_free(sync, nt, taken, nslots)) {                \
                    const ptrdiff_t s = taken % nslots, a = taken * block;                      \
                    const ptrdiff_t nb = n - a < block ? n - a : block;                         \
                    loss += fs_split_block_##S(data, indices, indptr, a, nb, W, b, C, y, sw, Z, \
                                               R_buf + s * block * C, db, owner, nt, cap,       \
                                               off_buf + s * num_threads * cap,                 \
                                               row_buf + s * num_threads * cap,                 \
                                               count_buf + s * num_threads);                    \
                    __atomic_store_n(&ready[taken], 1, __ATOMIC_RELEASE);                       \
                    taken = -1;                                                                 \
                    spins = 0;                                                                  \
                    continue;                                                                   \
                }                                                                               \
                if (taken < 0 && cursor >= nblocks) break;                                      \
                fs_split_wait(&spins); /* for a block another thread computes, or a slot */   \
            }                                                                                   \
            loss_acc[t] = loss;                                                                 \
        }                                                                                       \
        return team;                                                                            \
    }

#ifdef _OPENMP
#define FS_SPLIT_TEAM(t, nt)          \
    do {                              \
        t = omp_get_thread_num();     \
        nt = omp_get_num_threads();   \
    } while (0)
#else
#define FS_SPLIT_TEAM(t, nt) ((void)0)
#endif

FS_SPARSE_SPLIT(f32_i32, float, int32_t, fs_ce_residual_cols_f32)
FS_SPARSE_SPLIT(f32_i64, float, int64_t, fs_ce_residual_cols_f32)
FS_SPARSE_SPLIT(f64_i32, double, int32_t, fs_ce_residual_cols_f64)
FS_SPARSE_SPLIT(f64_i64, double, int64_t, fs_ce_residual_cols_f64)

/* the pass for the data type (f64: double, else float) and index type (i64: int64_t, else
 * int32_t) of the arrays given untyped: one call site for the four instances */
static int fs_csr_softmax_split(int f64, int i64, const void *data, const void *indices,
                                const void *indptr, ptrdiff_t n, ptrdiff_t d, ptrdiff_t C,
                                const void *W, const void *b, const ptrdiff_t *y, const void *sw,
                                void *G, double *loss_acc, double *db_acc, void *Z_buf,
                                void *R_buf, int32_t *off_buf, uint8_t *row_buf,
                                ptrdiff_t *count_buf, unsigned char *owner, int32_t *ready,
                                ptrdiff_t *sync, ptrdiff_t block, ptrdiff_t nslots, ptrdiff_t cap,
                                int num_threads)
{
#define FS_SPLIT_CALL(S, T, I)                                                                 \
    fs_csr_softmax_split_##S((const T *)data, (const I *)indices, (const I *)indptr, n, d, C,  \
                             (const T *)W, (const T *)b, y, (const T *)sw, (T *)G, loss_acc,  \
                             db_acc, (T *)Z_buf, (T *)R_buf, off_buf, row_buf, count_buf,     \
                             owner, ready, sync, block, nslots, cap, num_threads)
    if (f64)
        return i64 ? FS_SPLIT_CALL(f64_i64, double, int64_t) : FS_SPLIT_CALL(f64_i32, double, int32_t);
    return i64 ? FS_SPLIT_CALL(f32_i64, float, int64_t) : FS_SPLIT_CALL(f32_i32, float, int32_t);
#undef FS_SPLIT_CALL
}

#endif /* FS_SPARSE_SPLIT_H */
