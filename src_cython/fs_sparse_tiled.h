/* The tiled (many-class) regime of the CSR pass softmax_ce_sums_csr, the C
 * parts that are not SIMD loops (those are fs_sparse_rows.h's gather and
 * scatter and fs_tiled_impl.h's tile_stats and tile_residual):
 *
 *   fs_pack_class_tiles_S:   Wt = coef (C, d) split into tiles of class_tile
 *                            classes, each transposed: tile t, classes
 *                            [c0, c1), is the (d, c1 - c0) row-major block at
 *                            Wt + c0 d.  An entry x_ij of a sparse row then
 *                            reads the contiguous row j of its tile's block.
 *   fs_unpack_class_tiles_S: the inverse, for the gradient: coef_grad (C, d)
 *                            from the tiles Gt.
 *   fs_tiles_log_sum_exp:    a row's log-sum-exp from its per-tile maxima
 *                            and sums of exponentials (pass A's results),
 *                            also used by the dense tiled pass.
 *
 * S is f32 or f64.
 */
#ifndef FS_SPARSE_TILED_H
#define FS_SPARSE_TILED_H

#include <math.h>
#include <stddef.h>

#define FS_CLASS_TILES(S, T)                                                                   \
    static void fs_pack_class_tiles_##S(const T *coef, ptrdiff_t C, ptrdiff_t d,               \
                                        ptrdiff_t class_tile, T *Wt)                           \
    {                                                                                          \
        for (ptrdiff_t c0 = 0; c0 < C; c0 += class_tile) {                                     \
            ptrdiff_t tc = C - c0 < class_tile ? C - c0 : class_tile;                          \
            T *tile = Wt + c0 * d;                                                             \
            for (ptrdiff_t c = 0; c < tc; c++)                                                 \
                for (ptrdiff_t j = 0; j < d; j++) tile[j * tc + c] = coef[(c0 + c) * d + j];   \
        }                                                                                      \
    }                                                                                          \
    static void fs_unpack_class_tiles_##S(const T *Gt, ptrdiff_t C, ptrdiff_t d,               \
                                          ptrdiff_t class_tile, T *coef_grad)                  \
    {                                                                                          \
        for (ptrdiff_t c0 = 0; c0 < C; c0 += class_tile) {                                     \
            ptrdiff_t tc = C - c0 < class_tile ? C - c0 : class_tile;                          \
            const T *tile = Gt + c0 * d;                                                       \
            for (ptrdiff_t c = 0; c < tc; c++)                                                 \
                for (ptrdiff_t j = 0; j < d; j++) coef_grad[(c0 + c) * d + j] = tile[j * tc + c]; \
        }                                                                                      \
    }

FS_CLASS_TILES(f32, float)
FS_CLASS_TILES(f64, double)

/* log sum_t tile_sum[t] exp(tile_max[t]), the entries of one row at stride
 * `stride` (tile_max[t stride]); shifted by the largest tile_max, or by 0
 * when that is not finite (so -inf rows give -inf and NaN propagates) */
static double fs_tiles_log_sum_exp(const double *tile_max, const double *tile_sum,
                                   ptrdiff_t ntiles, ptrdiff_t stride)
{
    double row_max = tile_max[0], total = 0;
    for (ptrdiff_t t = 1; t < ntiles; t++)
        if (tile_max[t * stride] > row_max) row_max = tile_max[t * stride];
    double shift = row_max - row_max == 0 ? row_max : 0;
    for (ptrdiff_t t = 0; t < ntiles; t++)
        total += tile_sum[t * stride] * exp(tile_max[t * stride] - shift);
    return shift + log(total);
}

#endif /* FS_SPARSE_TILED_H */
