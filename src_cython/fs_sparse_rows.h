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
 *   fs_csr_partition_S: the entries of a block of rows listed by the thread that owns
 *                     their feature block (64 features: owner[j >> 6]), in their order,
 *                     as offsets into the block's entries and rows in the block;
 *   fs_csr_gather_list2_S: fs_csr_gather_S (its plain loop) listing the entries as
 *                     fs_csr_partition_S on the way, for two threads;
 *   fs_csr_seg_scatter_S: the scatter of such a list (R the block's residual rows): the
 *                     threads of the feature-split pass (fs_sparse_split.h) each update
 *                     only the gradient rows they own.
 * S is f32_i32, f32_i64, f64_i32 or f64_i64; each has the implementations
 * fs_csr_gather_S_base, _S_avx2, _S_avx512 (and fs_csr_scatter_S_...) by token
 * pasting in FS_SPARSE_ROWS.  With AVX-512 and rows of at most four vectors
 * (C <= 64 float32, C <= 32 float64), FS_SPARSE_REG512 keeps the row's logits
 * (gather) or residual (scatter) in registers: the same FMAs in the same order
 * (bit for bit the loops above), without the loads and stores of z or r at
 * every entry, whose store-to-load chain bound the gather.
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
/* where the register-held rows apply, use them in the gather (bit 1), the scatter (bit 2),
 * the scatter of a thread's list of entries (bit 4); else the plain loops (for A/B timings).
 * By default only in the list scatter: the one-thread pass gained nothing measurable from
 * the others (see benchmarks/README.md, session 7) */
static int fs_sparse_registers = 4;

#define FS_SPARSE_PREFETCH(row, nbytes, rw)                          \
    do {                                                             \
        const char *p_ = (const char *)(row);                        \
        for (ptrdiff_t off_ = 0; off_ < (ptrdiff_t)(nbytes); off_ += 64) \
            __builtin_prefetch(p_ + off_, rw, 3);                    \
    } while (0)

/* the rows of the entry fs_sparse_ahead ahead: W's (and G's when asked) in a gather, G's in
 * a scatter when the gather did not prefetch them */
#define FS_GATHER_PREFETCH_AHEAD(W, G, indices, k, end, C, T)                              \
    do {                                                                                  \
        if ((k) + fs_sparse_ahead < (end)) {                                              \
            const ptrdiff_t j_ = (ptrdiff_t)(indices)[(k) + fs_sparse_ahead];             \
            FS_SPARSE_PREFETCH((W) + j_ * (C), (C) * sizeof(T), 0);                       \
            if ((G) && fs_sparse_grad_ahead)                                              \
                FS_SPARSE_PREFETCH((G) + j_ * (C), (C) * sizeof(T), 1);                   \
        }                                                                                 \
    } while (0)
#define FS_SCATTER_PREFETCH_AHEAD(G, indices, k, end, C, T)                                \
    do {                                                                                  \
        if (!fs_sparse_grad_ahead && (k) + fs_sparse_ahead < (end))                       \
            FS_SPARSE_PREFETCH((G) + (ptrdiff_t)(indices)[(k) + fs_sparse_ahead] * (C),   \
                               (C) * sizeof(T), 1);                                       \
    } while (0)

#define FS_SPARSE_ROWS(S, TARGET, T, I)                                                        \
    TARGET static void fs_csr_gather_##S(const T *restrict data, const I *restrict indices,    \
                                         ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t end,            \
                                         const T *restrict W, ptrdiff_t C, T *restrict z,      \
                                         const T *G)                                           \
    {                                                                                          \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            FS_GATHER_PREFETCH_AHEAD(W, G, indices, k, end, C, T);                             \
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
            FS_SCATTER_PREFETCH_AHEAD(G, indices, k, end, C, T);                               \
            const T x = data[k];                                                               \
            T *restrict g = G + (ptrdiff_t)indices[k] * C;                                     \
            for (ptrdiff_t c = 0; c < C; c++) g[c] += x * r[c];                                \
        }                                                                                      \
    }                                                                                          \
    /* fs_csr_gather_S (the plain loop) that also lists the entries for two threads, as    \
     * fs_csr_partition_S (n01: the two counts so far; i: the row in its block) */           \
    TARGET static void fs_csr_gather_list2_##S(                                                \
        const T *restrict data, const I *restrict indices, ptrdiff_t lo, ptrdiff_t hi,         \
        ptrdiff_t end, const T *restrict W, ptrdiff_t C, T *restrict z,                        \
        const unsigned char *restrict owner, ptrdiff_t base, ptrdiff_t i, ptrdiff_t cap,       \
        int32_t *restrict off, uint8_t *restrict row, ptrdiff_t *restrict n01)                 \
    {                                                                                          \
        ptrdiff_t n0 = n01[0], n1 = n01[1];                                                    \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            FS_GATHER_PREFETCH_AHEAD(W, (const T *)NULL, indices, k, end, C, T);               \
            const T x = data[k];                                                               \
            const ptrdiff_t j = (ptrdiff_t)indices[k];                                         \
            const T *restrict w = W + j * C;                                                   \
            for (ptrdiff_t c = 0; c < C; c++) z[c] += x * w[c];                                \
            const ptrdiff_t o = owner[j >> 6];                                                 \
            const ptrdiff_t e = o ? cap + n1 : n0;                                             \
            off[e] = (int32_t)(k - base);                                                      \
            row[e] = (uint8_t)i;                                                               \
            n0 += 1 - o;                                                                       \
            n1 += o;                                                                           \
        }                                                                                      \
        n01[0] = n0;                                                                           \
        n01[1] = n1;                                                                           \
    }                                                                                          \
    TARGET static void fs_csr_seg_scatter_##S(ptrdiff_t count, const int32_t *restrict off,     \
                                              const uint8_t *restrict row,                     \
                                              const T *restrict data, const I *restrict indices, \
                                              const T *restrict R, ptrdiff_t C, T *G)          \
    {                                                                                          \
        for (ptrdiff_t e = 0; e < count; e++) {                                                \
            if (e + fs_sparse_ahead < count)                                                   \
                FS_SPARSE_PREFETCH(G + (ptrdiff_t)indices[off[e + fs_sparse_ahead]] * C,       \
                                   C * sizeof(T), 1);                                          \
            const T x = data[off[e]];                                                          \
            const T *restrict r = R + (ptrdiff_t)row[e] * C;                                   \
            T *restrict g = G + (ptrdiff_t)indices[off[e]] * C;                                \
            for (ptrdiff_t c = 0; c < C; c++) g[c] += x * r[c];                                \
        }                                                                                      \
    }

#if FS_X86
/* the scalar FMA of the partial last vector (as the vector lanes: one rounding) */
#define FS_FMA_ps(a, b, c) __builtin_fmaf(a, b, c)
#define FS_FMA_pd(a, b, c) __builtin_fma(a, b, c)
/* Rows of at most four vectors of V lanes (VT, the mask type M, intrinsic suffix SFX),
 * held in registers; NV (1 to 4) is a constant in each case of the dispatching switch */
#define FS_SPARSE_REG512(S, T, I, VT, M, V, SFX)                                               \
    FS_TARGET_AVX512 static inline __attribute__((always_inline)) void fs_reg_masks_##S(       \
        ptrdiff_t C, M *m)                                                                     \
    {                                                                                          \
        for (int v = 0; v < 4; v++) {                                                          \
            const ptrdiff_t rem = C - (ptrdiff_t)v * V;                                        \
            m[v] = rem >= V ? (M)~0u : rem > 0 ? (M)((1u << rem) - 1) : (M)0;                  \
        }                                                                                      \
    }                                                                                          \
    FS_TARGET_AVX512 static inline __attribute__((always_inline)) void fs_gather_reg_##S(      \
        const T *restrict data, const I *restrict indices, ptrdiff_t lo, ptrdiff_t hi,         \
        ptrdiff_t end, const T *restrict W, ptrdiff_t C, T *restrict z, const T *G,            \
        const int NV)                                                                          \
    {                                                                                          \
        M m[4];                                                                                \
        VT acc[4];                                                                             \
        fs_reg_masks_##S(C, m);                                                                \
        for (int v = 0; v < NV; v++) acc[v] = _mm512_maskz_loadu_##SFX(m[v], z + v * V);     \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            FS_GATHER_PREFETCH_AHEAD(W, G, indices, k, end, C, T);                             \
            const VT x = _mm512_set1_##SFX(data[k]);                                           \
            const T *restrict w = W + (ptrdiff_t)indices[k] * C;                               \
            for (int v = 0; v < NV - 1; v++)                                                   \
                acc[v] = _mm512_fmadd_##SFX(x, _mm512_loadu_##SFX(w + v * V), acc[v]);         \
            acc[NV - 1] = _mm512_fmadd_##SFX(                                                  \
                x, _mm512_maskz_loadu_##SFX(m[NV - 1], w + (NV - 1) * V), acc[NV - 1]);        \
        }                                                                                      \
        /* plain stores (a masked one does not forward to the caller's reads of z) */       \
        T out[4 * V];                                                                          \
        for (int v = 0; v < NV; v++) _mm512_storeu_##SFX(out + v * V, acc[v]);                \
        for (ptrdiff_t c = 0; c < C; c++) z[c] = out[c];                                       \
    }                                                                                          \
    FS_TARGET_AVX512 static inline __attribute__((always_inline)) void fs_scatter_reg_##S(     \
        const T *restrict data, const I *restrict indices, ptrdiff_t lo, ptrdiff_t hi,         \
        ptrdiff_t end, const T *restrict r, ptrdiff_t C, T *G, const int NV)                   \
    {                                                                                          \
        M m[4];                                                                                \
        VT rv[4];                                                                              \
        const int full = (int)(C / V) < NV ? (int)(C / V) : NV;                               \
        fs_reg_masks_##S(C, m);                                                                \
        for (int v = 0; v < NV; v++) rv[v] = _mm512_maskz_loadu_##SFX(m[v], r + v * V);       \
        for (ptrdiff_t k = lo; k < hi; k++) {                                                  \
            FS_SCATTER_PREFETCH_AHEAD(G, indices, k, end, C, T);                               \
            const VT x = _mm512_set1_##SFX(data[k]);                                           \
            T *g = G + (ptrdiff_t)indices[k] * C;                                              \
            /* no masked store: it does not forward to a later load of the same row (a     \
             * frequent feature's), which then waits for the stores ahead of it, misses of   \
             * rare rows among them; the partial last vector in scalar FMAs */               \
            for (int v = 0; v < full; v++)                                                     \
                _mm512_storeu_##SFX(g + v * V, _mm512_fmadd_##SFX(x, rv[v],                    \
                                                                  _mm512_loadu_##SFX(g + v * V))); \
            for (ptrdiff_t c = full * V; c < C; c++) g[c] = FS_FMA_##SFX(data[k], r[c], g[c]);  \
        }                                                                                      \
    }                                                                                          \
    FS_TARGET_AVX512 static inline __attribute__((always_inline)) void fs_seg_scatter_reg_##S(  \
        ptrdiff_t count, const int32_t *restrict off, const uint8_t *restrict row,             \
        const T *restrict data, const I *restrict indices, const T *restrict R, ptrdiff_t C,   \
        T *G, const int NV)                                                                    \
    {                                                                                          \
        const int full = (int)(C / V) < NV ? (int)(C / V) : NV;                               \
        for (ptrdiff_t e = 0; e < count; e++) {                                                \
            if (e + fs_sparse_ahead < count)                                                   \
                FS_SPARSE_PREFETCH(G + (ptrdiff_t)indices[off[e + fs_sparse_ahead]] * C,       \
                                   C * sizeof(T), 1);                                          \
            const T xs = data[off[e]];                                                         \
            const VT x = _mm512_set1_##SFX(xs);                                                \
            const T *restrict r = R + (ptrdiff_t)row[e] * C;                                   \
            T *g = G + (ptrdiff_t)indices[off[e]] * C;                                         \
            for (int v = 0; v < full; v++)                                                     \
                _mm512_storeu_##SFX(g + v * V,                                                 \
                                    _mm512_fmadd_##SFX(x, _mm512_loadu_##SFX(r + v * V),      \
                                                       _mm512_loadu_##SFX(g + v * V)));        \
            for (ptrdiff_t c = full * V; c < C; c++) g[c] = FS_FMA_##SFX(xs, r[c], g[c]);       \
        }                                                                                      \
    }                                                                                          \
    FS_TARGET_AVX512 static void fs_csr_seg_scatter_##S##_reg(                                 \
        ptrdiff_t count, const int32_t *off, const uint8_t *row, const T *data,                \
        const I *indices, const T *R, ptrdiff_t C, T *G)                                       \
    {                                                                                          \
        switch ((C + V - 1) / V) {                                                             \
        case 1: fs_seg_scatter_reg_##S(count, off, row, data, indices, R, C, G, 1); break;     \
        case 2: fs_seg_scatter_reg_##S(count, off, row, data, indices, R, C, G, 2); break;     \
        case 3: fs_seg_scatter_reg_##S(count, off, row, data, indices, R, C, G, 3); break;     \
        default: fs_seg_scatter_reg_##S(count, off, row, data, indices, R, C, G, 4); break;    \
        }                                                                                      \
    }                                                                                          \
    FS_TARGET_AVX512 static void fs_csr_gather_##S##_reg(                                      \
        const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t end,            \
        const T *W, ptrdiff_t C, T *z, const T *G)                                             \
    {                                                                                          \
        switch ((C + V - 1) / V) {                                                             \
        case 1: fs_gather_reg_##S(data, indices, lo, hi, end, W, C, z, G, 1); break;           \
        case 2: fs_gather_reg_##S(data, indices, lo, hi, end, W, C, z, G, 2); break;           \
        case 3: fs_gather_reg_##S(data, indices, lo, hi, end, W, C, z, G, 3); break;           \
        default: fs_gather_reg_##S(data, indices, lo, hi, end, W, C, z, G, 4); break;          \
        }                                                                                      \
    }                                                                                          \
    FS_TARGET_AVX512 static void fs_csr_scatter_##S##_reg(                                     \
        const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, ptrdiff_t end,            \
        const T *r, ptrdiff_t C, T *G)                                                         \
    {                                                                                          \
        switch ((C + V - 1) / V) {                                                             \
        case 1: fs_scatter_reg_##S(data, indices, lo, hi, end, r, C, G, 1); break;             \
        case 2: fs_scatter_reg_##S(data, indices, lo, hi, end, r, C, G, 2); break;             \
        case 3: fs_scatter_reg_##S(data, indices, lo, hi, end, r, C, G, 3); break;             \
        default: fs_scatter_reg_##S(data, indices, lo, hi, end, r, C, G, 4); break;            \
        }                                                                                      \
    }
#endif

#define FS_SPARSE_LEVELS(S, T, I, V)                           \
    FS_SPARSE_ROWS(S##_base, , T, I)                           \
    FS_SPARSE_LEVELS_X86(S, T, I)                              \
    static void fs_csr_gather_##S(const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, \
                                  ptrdiff_t end, const T *W, ptrdiff_t C, T *z, const T *G)   \
    {                                                                                          \
        if (FS_SPARSE_IN_REGISTERS(C, V, 1)) {                                                    \
            FS_SPARSE_REG_CALL(fs_csr_gather_##S##_reg(data, indices, lo, hi, end, W, C, z, G)); \
        }                                                                                      \
        FS_SPARSE_CHOOSE(gather, S)(data, indices, lo, hi, end, W, C, z, G);                   \
    }                                                                                          \
    static void fs_csr_scatter_##S(const T *data, const I *indices, ptrdiff_t lo, ptrdiff_t hi, \
                                   ptrdiff_t end, const T *r, ptrdiff_t C, T *G)               \
    {                                                                                          \
        if (FS_SPARSE_IN_REGISTERS(C, V, 2)) {                                                    \
            FS_SPARSE_REG_CALL(fs_csr_scatter_##S##_reg(data, indices, lo, hi, end, r, C, G));  \
        }                                                                                      \
        FS_SPARSE_CHOOSE(scatter, S)(data, indices, lo, hi, end, r, C, G);                     \
    }                                                                                          \
    static void fs_csr_seg_scatter_##S(ptrdiff_t count, const int32_t *off, const uint8_t *row, \
                                       const T *data, const I *indices, const T *R, ptrdiff_t C, \
                                       T *G)                                                   \
    {                                                                                          \
        if (FS_SPARSE_IN_REGISTERS(C, V, 4)) {                                                 \
            FS_SPARSE_REG_CALL(fs_csr_seg_scatter_##S##_reg(count, off, row, data, indices, R, \
                                                            C, G));                            \
        }                                                                                      \
        FS_SPARSE_CHOOSE(seg_scatter, S)(count, off, row, data, indices, R, C, G);             \
    }                                                                                          \
    static void fs_csr_gather_list2_##S(const T *data, const I *indices, ptrdiff_t lo,         \
                                        ptrdiff_t hi, ptrdiff_t end, const T *W, ptrdiff_t C,  \
                                        T *z, const unsigned char *owner, ptrdiff_t base,      \
                                        ptrdiff_t i, ptrdiff_t cap, int32_t *off, uint8_t *row, \
                                        ptrdiff_t *n01)                                        \
    {                                                                                          \
        FS_SPARSE_CHOOSE(gather_list2, S)(data, indices, lo, hi, end, W, C, z, owner, base, i,  \
                                          cap, off, row, n01);                                 \
    }                                                                                          \
    /* (threads but two) the entries of the rows indptr[0..m] (a block) listed by the owner \
     * of their feature block, in their order: owner o's count[o] entries at off[o cap ..] (offsets from       \
     * indptr[0]) and row[o cap ..] (their rows in the block, m <= 256) */                    \
    static void fs_csr_partition_##S(const I *restrict indices, const I *restrict indptr,       \
                                     ptrdiff_t m, const unsigned char *restrict owner, int nt, \
                                     ptrdiff_t cap, int32_t *restrict off,                     \
                                     uint8_t *restrict row, ptrdiff_t *restrict count)         \
    {                                                                                          \
        const ptrdiff_t base = (ptrdiff_t)indptr[0];                                           \
        for (int o = 0; o < nt; o++) count[o] = 0;                                             \
        for (ptrdiff_t i = 0, k = base; i < m; i++) {                                          \
            const ptrdiff_t end = (ptrdiff_t)indptr[i + 1];                                    \
            for (; k < end; k++) {                                                             \
                const ptrdiff_t o = owner[(ptrdiff_t)indices[k] >> 6];                         \
                const ptrdiff_t e = o * cap + count[o]++;                                      \
                off[e] = (int32_t)(k - base);                                                  \
                row[e] = (uint8_t)i;                                                           \
            }                                                                                  \
        }                                                                                      \
    }

#if FS_X86
#define FS_SPARSE_LEVELS_X86(S, T, I)                 \
    FS_SPARSE_ROWS(S##_avx2, FS_TARGET_AVX2, T, I)    \
    FS_SPARSE_ROWS(S##_avx512, FS_TARGET_AVX512, T, I)
/* AVX-512 and a row of at most four vectors of V lanes: the register-held loops */
#define FS_SPARSE_IN_REGISTERS(C, V, which) \
    (fs_level == 2 && (fs_sparse_registers & (which)) && (C) >= 1 && (C) <= 4 * (V))
#define FS_SPARSE_REG_CALL(call) \
    do {                         \
        call;                    \
        return;                  \
    } while (0)
/* fs_level: the module's level, set by fs_set_level (2 AVX-512, 1 AVX2, 0 base) */
#define FS_SPARSE_CHOOSE(name, S) \
    (fs_level == 2 ? fs_csr_##name##_##S##_avx512 \
                   : fs_level == 1 ? fs_csr_##name##_##S##_avx2 : fs_csr_##name##_##S##_base)
#else
#define FS_SPARSE_LEVELS_X86(S, T, I)
#define FS_SPARSE_CHOOSE(name, S) fs_csr_##name##_##S##_base
#define FS_SPARSE_IN_REGISTERS(C, V, which) 0
#define FS_SPARSE_REG_CALL(call) \
    do {                         \
    } while (0)
#endif

#if FS_X86
FS_SPARSE_REG512(f32_i32, float, int32_t, __m512, __mmask16, 16, ps)
FS_SPARSE_REG512(f32_i64, float, int64_t, __m512, __mmask16, 16, ps)
FS_SPARSE_REG512(f64_i32, double, int32_t, __m512d, __mmask8, 8, pd)
FS_SPARSE_REG512(f64_i64, double, int64_t, __m512d, __mmask8, 8, pd)
#endif

FS_SPARSE_LEVELS(f32_i32, float, int32_t, 16)
FS_SPARSE_LEVELS(f32_i64, float, int64_t, 16)
FS_SPARSE_LEVELS(f64_i32, double, int32_t, 8)
FS_SPARSE_LEVELS(f64_i64, double, int64_t, 8)

static int fs_sparse_set_registers(int which)
{
    const int before = fs_sparse_registers;
    fs_sparse_registers = which;
    return before;
}

static void fs_sparse_set_prefetch(ptrdiff_t ahead, int grad_ahead)
{
    fs_sparse_ahead = ahead;
    fs_sparse_grad_ahead = grad_ahead;
}

#endif /* FS_SPARSE_ROWS_H */
