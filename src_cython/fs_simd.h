/* SIMD kernels of the cython backend, with run-time instruction-set dispatch.
 *
 * fs_simd_impl.h is instantiated for float and double, each for three
 * instruction sets on x86-64: the baseline (SSE2, or whatever the compiler
 * flags enable, e.g. -march=native), AVX2+FMA and AVX-512.  fs_init() picks
 * the best one this CPU supports (__builtin_cpu_supports), so the default
 * build runs on any x86-64 and uses AVX-512 where it exists.  Other
 * architectures get the baseline only.  Needs GCC or Clang (vector
 * extensions).
 */
#ifndef FS_SIMD_H
#define FS_SIMD_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FS_X86 1
#include <immintrin.h>
#else
#define FS_X86 0
#endif

/* widest vector the compile flags already allow (the baseline variant) */
#if defined(__AVX512F__)
#define FS_BASE_BYTES 64
#elif defined(__AVX2__)
#define FS_BASE_BYTES 32
#else
#define FS_BASE_BYTES 16
#endif

#define FS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FS_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))

/* ------------------------------------------------------------ float */
#define FS_T float
#define FS_I int32_t
#define FS_F32 1
#define FS_LOG logf

#define FS_VBYTES FS_BASE_BYTES
#define FS_SUF f32_base
#define FS_TARGET
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET

#if FS_X86
#define FS_VBYTES 32
#define FS_SUF f32_avx2
#define FS_TARGET FS_TARGET_AVX2
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET

#define FS_VBYTES 64
#define FS_SUF f32_avx512
#define FS_TARGET FS_TARGET_AVX512
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET
#endif

#undef FS_T
#undef FS_I
#undef FS_F32
#undef FS_LOG

/* ----------------------------------------------------------- double */
#define FS_T double
#define FS_I int64_t
#define FS_F32 0
#define FS_LOG log

#define FS_VBYTES FS_BASE_BYTES
#define FS_SUF f64_base
#define FS_TARGET
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET

#if FS_X86
#define FS_VBYTES 32
#define FS_SUF f64_avx2
#define FS_TARGET FS_TARGET_AVX2
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET

#define FS_VBYTES 64
#define FS_SUF f64_avx512
#define FS_TARGET FS_TARGET_AVX512
#include "fs_simd_impl.h"
#undef FS_VBYTES
#undef FS_SUF
#undef FS_TARGET
#endif

#undef FS_T
#undef FS_I
#undef FS_F32
#undef FS_LOG

/* ------------------------------------------------------ dispatching */

/* Generated names, listed for grep (tests/test_cython_build.py checks the list
 * against FS_OPS).  For every operation NAME of FS_OPS and S in f32, f64:
 * fs_NAME_S is the dispatching wrapper that fs_simd.pxd declares and the
 * Cython code calls, fs_ptr_NAME_S its function pointer (set by fs_set_level),
 * and NAME_S_base, NAME_S_avx2, NAME_S_avx512 its implementations, the
 * "static FS_TARGET ... FN(NAME)" definitions of fs_simd_impl.h (their static
 * helpers are named the same way: FN(vexp) is vexp_f32_avx2, ...).
 *   softmax_rows: fs_softmax_rows_f32 fs_softmax_rows_f64 fs_ptr_softmax_rows_f32 fs_ptr_softmax_rows_f64
 *     softmax_rows_f32_base softmax_rows_f32_avx2 softmax_rows_f32_avx512
 *     softmax_rows_f64_base softmax_rows_f64_avx2 softmax_rows_f64_avx512
 *   log_softmax_rows: fs_log_softmax_rows_f32 fs_log_softmax_rows_f64 fs_ptr_log_softmax_rows_f32 fs_ptr_log_softmax_rows_f64
 *     log_softmax_rows_f32_base log_softmax_rows_f32_avx2 log_softmax_rows_f32_avx512
 *     log_softmax_rows_f64_base log_softmax_rows_f64_avx2 log_softmax_rows_f64_avx512
 *   logsumexp_rows: fs_logsumexp_rows_f32 fs_logsumexp_rows_f64 fs_ptr_logsumexp_rows_f32 fs_ptr_logsumexp_rows_f64
 *     logsumexp_rows_f32_base logsumexp_rows_f32_avx2 logsumexp_rows_f32_avx512
 *     logsumexp_rows_f64_base logsumexp_rows_f64_avx2 logsumexp_rows_f64_avx512
 *   ce_residual_cols: fs_ce_residual_cols_f32 fs_ce_residual_cols_f64 fs_ptr_ce_residual_cols_f32 fs_ptr_ce_residual_cols_f64
 *     ce_residual_cols_f32_base ce_residual_cols_f32_avx2 ce_residual_cols_f32_avx512
 *     ce_residual_cols_f64_base ce_residual_cols_f64_avx2 ce_residual_cols_f64_avx512
 *   cross_entropy_rows: fs_cross_entropy_rows_f32 fs_cross_entropy_rows_f64 fs_ptr_cross_entropy_rows_f32 fs_ptr_cross_entropy_rows_f64
 *     cross_entropy_rows_f32_base cross_entropy_rows_f32_avx2 cross_entropy_rows_f32_avx512
 *     cross_entropy_rows_f64_base cross_entropy_rows_f64_avx2 cross_entropy_rows_f64_avx512
 *   exp_array: fs_exp_array_f32 fs_exp_array_f64 fs_ptr_exp_array_f32 fs_ptr_exp_array_f64
 *     exp_array_f32_base exp_array_f32_avx2 exp_array_f32_avx512
 *     exp_array_f64_base exp_array_f64_avx2 exp_array_f64_avx512
 *   all_finite: fs_all_finite_f32 fs_all_finite_f64 fs_ptr_all_finite_f32 fs_ptr_all_finite_f64
 *     all_finite_f32_base all_finite_f32_avx2 all_finite_f32_avx512
 *     all_finite_f64_base all_finite_f64_avx2 all_finite_f64_avx512
 *   sgd_step: fs_sgd_step_f32 fs_sgd_step_f64 fs_ptr_sgd_step_f32 fs_ptr_sgd_step_f64
 *     sgd_step_f32_base sgd_step_f32_avx2 sgd_step_f32_avx512
 *     sgd_step_f64_base sgd_step_f64_avx2 sgd_step_f64_avx512
 *   pack_weights: fs_pack_weights_f32 fs_pack_weights_f64 fs_ptr_pack_weights_f32 fs_ptr_pack_weights_f64
 *     pack_weights_f32_base pack_weights_f32_avx2 pack_weights_f32_avx512
 *     pack_weights_f64_base pack_weights_f64_avx2 pack_weights_f64_avx512
 *   sgd_step_packed: fs_sgd_step_packed_f32 fs_sgd_step_packed_f64 fs_ptr_sgd_step_packed_f32 fs_ptr_sgd_step_packed_f64
 *     sgd_step_packed_f32_base sgd_step_packed_f32_avx2 sgd_step_packed_f32_avx512
 *     sgd_step_packed_f64_base sgd_step_packed_f64_avx2 sgd_step_packed_f64_avx512
 *   unpack_weights: fs_unpack_weights_f32 fs_unpack_weights_f64 fs_ptr_unpack_weights_f32 fs_ptr_unpack_weights_f64
 *     unpack_weights_f32_base unpack_weights_f32_avx2 unpack_weights_f32_avx512
 *     unpack_weights_f64_base unpack_weights_f64_avx2 unpack_weights_f64_avx512
 *   fwd_f: fs_fwd_f_f32 fs_fwd_f_f64 fs_ptr_fwd_f_f32 fs_ptr_fwd_f_f64
 *     fwd_f_f32_base fwd_f_f32_avx2 fwd_f_f32_avx512
 *     fwd_f_f64_base fwd_f_f64_avx2 fwd_f_f64_avx512
 *   fwd_u8: fs_fwd_u8_f32 fs_fwd_u8_f64 fs_ptr_fwd_u8_f32 fs_ptr_fwd_u8_f64
 *     fwd_u8_f32_base fwd_u8_f32_avx2 fwd_u8_f32_avx512
 *     fwd_u8_f64_base fwd_u8_f64_avx2 fwd_u8_f64_avx512
 *   bwd_f: fs_bwd_f_f32 fs_bwd_f_f64 fs_ptr_bwd_f_f32 fs_ptr_bwd_f_f64
 *     bwd_f_f32_base bwd_f_f32_avx2 bwd_f_f32_avx512
 *     bwd_f_f64_base bwd_f_f64_avx2 bwd_f_f64_avx512
 *   bwd_u8: fs_bwd_u8_f32 fs_bwd_u8_f64 fs_ptr_bwd_u8_f32 fs_ptr_bwd_u8_f64
 *     bwd_u8_f32_base bwd_u8_f32_avx2 bwd_u8_f32_avx512
 *     bwd_u8_f64_base bwd_u8_f64_avx2 bwd_u8_f64_avx512
 *   bwd_set_f: fs_bwd_set_f_f32 fs_bwd_set_f_f64 fs_ptr_bwd_set_f_f32 fs_ptr_bwd_set_f_f64
 *     bwd_set_f_f32_base bwd_set_f_f32_avx2 bwd_set_f_f32_avx512
 *     bwd_set_f_f64_base bwd_set_f_f64_avx2 bwd_set_f_f64_avx512
 *   bwd_set_u8: fs_bwd_set_u8_f32 fs_bwd_set_u8_f64 fs_ptr_bwd_set_u8_f32 fs_ptr_bwd_set_u8_f64
 *     bwd_set_u8_f32_base bwd_set_u8_f32_avx2 bwd_set_u8_f32_avx512
 *     bwd_set_u8_f64_base bwd_set_u8_f64_avx2 bwd_set_u8_f64_avx512
 *   pack_t_f: fs_pack_t_f_f32 fs_pack_t_f_f64 fs_ptr_pack_t_f_f32 fs_ptr_pack_t_f_f64
 *     pack_t_f_f32_base pack_t_f_f32_avx2 pack_t_f_f32_avx512
 *     pack_t_f_f64_base pack_t_f_f64_avx2 pack_t_f_f64_avx512
 *   pack_t_u8: fs_pack_t_u8_f32 fs_pack_t_u8_f64 fs_ptr_pack_t_u8_f32 fs_ptr_pack_t_u8_f64
 *     pack_t_u8_f32_base pack_t_u8_f32_avx2 pack_t_u8_f32_avx512
 *     pack_t_u8_f64_base pack_t_u8_f64_avx2 pack_t_u8_f64_avx512
 *   tile_logits: fs_tile_logits_f32 fs_tile_logits_f64 fs_ptr_tile_logits_f32 fs_ptr_tile_logits_f64
 *     tile_logits_f32_base tile_logits_f32_avx2 tile_logits_f32_avx512
 *     tile_logits_f64_base tile_logits_f64_avx2 tile_logits_f64_avx512
 *   tile_stats: fs_tile_stats_f32 fs_tile_stats_f64 fs_ptr_tile_stats_f32 fs_ptr_tile_stats_f64
 *     tile_stats_f32_base tile_stats_f32_avx2 tile_stats_f32_avx512
 *     tile_stats_f64_base tile_stats_f64_avx2 tile_stats_f64_avx512
 *   tile_scale: fs_tile_scale_f32 fs_tile_scale_f64 fs_ptr_tile_scale_f32 fs_ptr_tile_scale_f64
 *     tile_scale_f32_base tile_scale_f32_avx2 tile_scale_f32_avx512
 *     tile_scale_f64_base tile_scale_f64_avx2 tile_scale_f64_avx512
 *   tile_scale_rows: fs_tile_scale_rows_f32 fs_tile_scale_rows_f64 fs_ptr_tile_scale_rows_f32 fs_ptr_tile_scale_rows_f64
 *     tile_scale_rows_f32_base tile_scale_rows_f32_avx2 tile_scale_rows_f32_avx512
 *     tile_scale_rows_f64_base tile_scale_rows_f64_avx2 tile_scale_rows_f64_avx512
 *   tile_residual: fs_tile_residual_f32 fs_tile_residual_f64 fs_ptr_tile_residual_f32 fs_ptr_tile_residual_f64
 *     tile_residual_f32_base tile_residual_f32_avx2 tile_residual_f32_avx512
 *     tile_residual_f64_base tile_residual_f64_avx2 tile_residual_f64_avx512
 *   pack_panels: fs_pack_panels_f32 fs_pack_panels_f64 fs_ptr_pack_panels_f32 fs_ptr_pack_panels_f64
 *     pack_panels_f32_base pack_panels_f32_avx2 pack_panels_f32_avx512
 *     pack_panels_f64_base pack_panels_f64_avx2 pack_panels_f64_avx512
 *   tile_grad: fs_tile_grad_f32 fs_tile_grad_f64 fs_ptr_tile_grad_f32 fs_ptr_tile_grad_f64
 *     tile_grad_f32_base tile_grad_f32_avx2 tile_grad_f32_avx512
 *     tile_grad_f64_base tile_grad_f64_avx2 tile_grad_f64_avx512
 */
/* One function pointer per kernel and type; FS_OPS(T, S) lists them. */
#define FS_OPS(X, T, S)                                                                   \
    X(softmax_rows, S, void, (const T *x, T *out, Py_ssize_t n, Py_ssize_t k), (x, out, n, k))     \
    X(log_softmax_rows, S, void, (const T *x, T *out, Py_ssize_t n, Py_ssize_t k), (x, out, n, k)) \
    X(logsumexp_rows, S, void, (const T *x, T *out, Py_ssize_t n, Py_ssize_t k), (x, out, n, k))   \
    X(ce_residual_cols, S, double,                                                                 \
      (T *Z, Py_ssize_t n, Py_ssize_t C, const Py_ssize_t *y, const T *sw, double *db),             \
      (Z, n, C, y, sw, db))                                                                        \
    X(cross_entropy_rows, S, void,                                                                 \
      (const T *x, const Py_ssize_t *y, T *out, Py_ssize_t n, Py_ssize_t k), (x, y, out, n, k))     \
    X(exp_array, S, void, (const T *x, T *out, Py_ssize_t n), (x, out, n))                          \
    X(all_finite, S, int, (const T *x, Py_ssize_t n), (x, n))                                       \
    X(sgd_step, S, void, (T *p, const T *G, Py_ssize_t n, T scale, T l2, T lr),                    \
      (p, G, n, scale, l2, lr))                                                                    \
    X(pack_weights, S, void, (const T *WT, Py_ssize_t C, Py_ssize_t d, T *Wp), (WT, C, d, Wp))      \
    X(sgd_step_packed, S, double,                                                                  \
      (T *Wp, const T *G, Py_ssize_t C, Py_ssize_t d, T scale, T l2, T lr, int squares),           \
      (Wp, G, C, d, scale, l2, lr, squares))                                                       \
    X(unpack_weights, S, void, (const T *Wp, Py_ssize_t C, Py_ssize_t d, T *WT), (Wp, C, d, WT))    \
    X(fwd_f, S, void,                                                                              \
      (const T *const *rows, Py_ssize_t n, Py_ssize_t d, const T *Wp, const T *b, Py_ssize_t C,    \
       T *Z, Py_ssize_t rs, Py_ssize_t cs, const T *const *next),                                  \
      (rows, n, d, Wp, b, C, Z, rs, cs, next))                                                     \
    X(fwd_u8, S, void,                                                                             \
      (const unsigned char *const *rows, Py_ssize_t n, Py_ssize_t d, const T *Wp, const T *b,      \
       Py_ssize_t C, T *Z, Py_ssize_t rs, Py_ssize_t cs, const unsigned char *const *next),        \
      (rows, n, d, Wp, b, C, Z, rs, cs, next))                                                     \
    X(bwd_f, S, void,                                                                              \
      (const T *const *rows, Py_ssize_t n, Py_ssize_t d, const T *R, Py_ssize_t C, T *dWT,         \
       const T *const *next),                                                                      \
      (rows, n, d, R, C, dWT, next))                                                               \
    X(bwd_u8, S, void,                                                                             \
      (const unsigned char *const *rows, Py_ssize_t n, Py_ssize_t d, const T *R, Py_ssize_t C,     \
       T *dWT, const unsigned char *const *next),                                                  \
      (rows, n, d, R, C, dWT, next))                                                               \
    X(bwd_set_f, S, void,                                                                          \
      (const T *const *rows, Py_ssize_t n, Py_ssize_t d, const T *R, Py_ssize_t C, T *dWT,         \
       const T *const *next),                                                                      \
      (rows, n, d, R, C, dWT, next))                                                               \
    X(bwd_set_u8, S, void,                                                                         \
      (const unsigned char *const *rows, Py_ssize_t n, Py_ssize_t d, const T *R, Py_ssize_t C,     \
       T *dWT, const unsigned char *const *next),                                                  \
      (rows, n, d, R, C, dWT, next))                                                               \
    X(pack_t_f, S, void, (const T *const *rows, Py_ssize_t h, Py_ssize_t d, T *Xp, Py_ssize_t mp),  \
      (rows, h, d, Xp, mp))                                                                        \
    X(pack_t_u8, S, void,                                                                          \
      (const unsigned char *const *rows, Py_ssize_t h, Py_ssize_t d, T *Xp, Py_ssize_t mp),         \
      (rows, h, d, Xp, mp))                                                                        \
    X(tile_logits, S, void,                                                                        \
      (const T *Xp, Py_ssize_t mp, Py_ssize_t d, const T *W, const T *b, Py_ssize_t tc, T *Z,      \
       const T *next, T *tmax, T *tsum, int keep, const Py_ssize_t *label, T *label_logit),        \
      (Xp, mp, d, W, b, tc, Z, next, tmax, tsum, keep, label, label_logit))                        \
    X(tile_stats, S, void, (const T *Z, Py_ssize_t mp, Py_ssize_t tc, T *tmax, T *tsum),           \
      (Z, mp, tc, tmax, tsum))                                                                     \
    X(tile_scale, S, void,                                                                         \
      (T *R, Py_ssize_t rs, const T *E, Py_ssize_t es, Py_ssize_t tc, Py_ssize_t hp,               \
       const T *scale, double *db),                                                                \
      (R, rs, E, es, tc, hp, scale, db))                                                           \
    X(tile_scale_rows, S, void,                                                                    \
      (T *R, const T *E, Py_ssize_t mp, Py_ssize_t tc, const Py_ssize_t *index, Py_ssize_t h,       \
       const T *scale, double *db),                                                                \
      (R, E, mp, tc, index, h, scale, db))                                                         \
    X(tile_residual, S, void,                                                                      \
      (T *R, Py_ssize_t rs, const T *L, Py_ssize_t ls, Py_ssize_t tc, Py_ssize_t hp, const T *lse, \
       const T *w, double *db),                                                                    \
      (R, rs, L, ls, tc, hp, lse, w, db))                                                          \
    X(pack_panels, S, void,                                                                        \
      (const T *X, Py_ssize_t ldx, Py_ssize_t h, Py_ssize_t d, T *Xp, Py_ssize_t mp),               \
      (X, ldx, h, d, Xp, mp))                                                                      \
    X(tile_grad, S, void,                                                                          \
      (const T *X, Py_ssize_t ldx, Py_ssize_t k, const T *R, Py_ssize_t tc, T *dW, Py_ssize_t d,   \
       const void *pf0, Py_ssize_t n0, const void *pf1, Py_ssize_t n1),                            \
      (X, ldx, k, R, tc, dW, d, pf0, n0, pf1, n1))

#define FS_PTR(name, S, ret, params, args) static ret(*fs_ptr_##name##_##S) params;
#define FS_WRAP(name, S, ret, params, args) \
    static inline ret fs_##name##_##S params { return fs_ptr_##name##_##S args; }
#define FS_SET(name, S, ret, params, args) fs_ptr_##name##_##S = FS_CHOOSE(name, S);

FS_OPS(FS_PTR, float, f32)
FS_OPS(FS_PTR, double, f64)
FS_OPS(FS_WRAP, float, f32)
FS_OPS(FS_WRAP, double, f64)

/* 0: baseline, 1: AVX2 + FMA, 2: AVX-512 */
static int fs_level = -1;

static int fs_cpu_level(void)
{
#if FS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/* Select the kernels of instruction-set level min(level, what the CPU has);
 * level < 0 means the best available.  Returns the level in use. */
static int fs_set_level(int level)
{
    int cpu = fs_cpu_level();
    if (level < 0 || level > cpu) level = cpu;
    fs_level = level;
#if FS_X86
#define FS_CHOOSE(name, S) \
    (level == 2 ? name##_##S##_avx512 : level == 1 ? name##_##S##_avx2 : name##_##S##_base)
#else
#define FS_CHOOSE(name, S) name##_##S##_base
#endif
    FS_OPS(FS_SET, float, f32)
    FS_OPS(FS_SET, double, f64)
#undef FS_CHOOSE
    return level;
}

#endif /* FS_SIMD_H */
