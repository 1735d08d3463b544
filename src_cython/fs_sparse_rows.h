/* The inner loops of the CSR kernels (_sparse_kernels.pyx), compiled for each
 * instruction-set level of fs_simd.h and chosen by its fs_level.
 *
 *   fs_csr_gather_S:  z[0:C] += sum_k data[k] W[indices[k], 0:C]   (k in lo:hi;
 *                     G: the gradient rows the scatter will update, or NULL)
 *   fs_csr_scatter_S: G[indices[k], 0:C] += data[k] r[0:C]        (k in lo:hi)
 *
 * W and G are (d, C) row-major: an entry reads or updates one contiguous row,
 * so the loop over the classes vectorises (16 float32 lanes with AVX-512).
 * The rows of the entries PREFETCH_AHEAD ahead (up to `end`, the end of the
 * block) are prefetched: the rows of rare features miss every cache.  Each
 * class sums over the entries in their order, as the scalar loop did.
 * S is f32_i32, f32_i64, f64_i32 or f64_i64; each has the implementations
 * fs_csr_gather_S_base, _S_avx2, _S_avx512 (and fs_csr_scatter_S_...) by token
 * pasting in FS_SPARSE_ROWS.
 */
#ifndef FS_SPARSE_ROWS_H
#define FS_SPARSE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "fs_simd.h"

/* entries ahead whose rows are prefetched (a variable for tuning: _sparse_kernels'
 * _set_prefetch); with grad_ahead the gather prefetches the gradient rows of the
 * entries too, for the scatter that follows, which then prefetches nothing */
static ptrdiff_t fs_sparse_ahead = 24;
static int fs_sparse_grad_ahead = 0;

#define FS_SPARSE_PREFETCH(row, nbytes, rw)                          \
    do {                                                             \
        const char *p_ = (const char *)(row);                        \
        for (ptrdiff_t off_ = 0; off_ < (ptrdiff_t)(nbytes); off_ += 64) \
            __builtin_prefetch(p_ + off_, rw, 3);                    \
    } while (0)

#define FS_SPARSE_ROWS(S, TARGET, T, I)                                                        \
    TARGET static void fs_csr_gather_##S(const T *restrict data, const I *restrict indices,    \
                                         ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t end,            \
                                         const T *restrict W, ptrdiff_t C, T *restrict z,      \
                                         const T *G)                                           \
    {                                                                                          \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            if (k + fs_sparse_ahead < end) {                                                   \
                FS_SPARSE_PREFETCH(W + (ptrdiff_t)indices[k + fs_sparse_ahead] * C,            \
                                   C * sizeof(T), 0);                                          \
                if (G && fs_sparse_grad_ahead)                                                 \
                    FS_SPARSE_PREFETCH(G + (ptrdiff_t)indices[k + fs_sparse_ahead] * C,        \
                                       C * sizeof(T), 1);                                      \
            }                                                                                  \
            const T x = data[k];                                                               \
            const T *restrict w = W + (ptrdiff_t)indices[k] * C;                               \
            for (ptrdiff_t c = 0; c < C; c++) z[c] += x * w[c];                                \
        }                                                                                      \
    }                                                                                          \
    TARGET static void fs_csr_scatter_##S(const T *restrict data, const I *restrict indices,   \
                                          ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t end,           \
                                          const T *restrict r, ptrdiff_t C, T *G)              \
    {                                                                                          \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            if (!fs_sparse_grad_ahead && k + fs_sparse_ahead < end)                            \
                FS_SPARSE_PREFETCH(G + (ptrdiff_t)indices[k + fs_sparse_ahead] * C,            \
                                   C * sizeof(T), 1);                                          \
            const T x = data[k];                                                               \
            T *restrict g = G + (ptrdiff_t)indices[k] * C;                                     \
            for (ptrdiff_t c = 0; c < C; c++) g[c] += x * r[c];                                \
        }                                                                                      \
    }

#define FS_SPARSE_LEVELS(S, T, I)                              \
    FS_SPARSE_ROWS(S##_base, , T, I)                           \
    FS_SPARSE_LEVELS_X86(S, T, I)                              \
    static void fs_csr_gather_##S(const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, \
                                  ptrdiff_t end, const T *W, ptrdiff_t C, T *z, const T *G)   \
    {                                                                                          \
        FS_SPARSE_CHOOSE(gather, S)(data, indices, lo, hi, end, W, C, z, G);                   \
    }                                                                                          \
    static void fs_csr_scatter_##S(const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, \
                                   ptrdiff_t end, const T *r, ptrdiff_t C, T *G)               \
    {                                                                                          \
        FS_SPARSE_CHOOSE(scatter, S)(data, indices, lo, hi, end, r, C, G);                     \
    }

#if FS_X86
#define FS_SPARSE_LEVELS_X86(S, T, I)                 \
    FS_SPARSE_ROWS(S##_avx2, FS_TARGET_AVX2, T, I)    \
    FS_SPARSE_ROWS(S##_avx512, FS_TARGET_AVX512, T, I)
/* fs_level: the module's level, set by fs_set_level (2 AVX-512, 1 AVX2, 0 base) */
#define FS_SPARSE_CHOOSE(name, S) \
    (fs_level == 2 ? fs_csr_##name##_##S##_avx512 \
                   : fs_level == 1 ? fs_csr_##name##_##S##_avx2 : fs_csr_##name##_##S##_base)
#else
#define FS_SPARSE_LEVELS_X86(S, T, I)
#define FS_SPARSE_CHOOSE(name, S) fs_csr_##name##_##S##_base
#endif

FS_SPARSE_LEVELS(f32_i32, float, int32_t)
FS_SPARSE_LEVELS(f32_i64, float, int64_t)
FS_SPARSE_LEVELS(f64_i32, double, int32_t)
FS_SPARSE_LEVELS(f64_i64, double, int64_t)

static void fs_sparse_set_prefetch(ptrdiff_t ahead, int grad_ahead)
{
    fs_sparse_ahead = ahead;
    fs_sparse_grad_ahead = grad_ahead;
}

#endif /* FS_SPARSE_ROWS_H */
