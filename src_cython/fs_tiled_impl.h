/* Template body of the logit-tile product of the tiled regime of
 * softmax_ce_sums (many classes), included by fs_simd_impl.h once per float
 * type and instruction set.
 *
 * Z (tc, mp), class-major, = W (tc, d) @ Xp (d, mp) + b, where Xp is a block
 * of rows packed transposed (pack_t of fs_gemm_impl.h) and mp a multiple of
 * the vector width.  An outer-product register block: lanes run over rows,
 * each step broadcasts CR weights and loads IV vectors of packed rows, CR x IV
 * fused multiply-adds into accumulators that never need a horizontal sum
 * (unlike fs_gemm_impl.h's fwd, whose lanes run over features).
 */

#if FS_VBYTES == 64
#define FS_TILE_CR 8 /* 8 classes x 3 vectors: 24 of the 32 vector registers */
#else
#define FS_TILE_CR 4 /* 16 registers: 12 accumulators */
#endif
#define FS_TILE_IV 3

FS_DEF void FN(logit_tile)(const FS_T *Xp, Py_ssize_t mp, Py_ssize_t d, const FS_T *W,
                           const FS_T *b, FS_T *Z, const int CR, const int IV)
{
    VF acc[FS_TILE_CR][FS_TILE_IV];
    for (int c = 0; c < CR; c++)
        for (int v = 0; v < IV; v++) acc[c][v] = FN(splat)(b[c]);
    for (Py_ssize_t j = 0; j < d; j++) {
        VF x[FS_TILE_IV];
        for (int v = 0; v < IV; v++) x[v] = FN(load)(Xp + j * mp + v * FS_V);
        for (int c = 0; c < CR; c++) {
            VF w = FN(splat)(W[c * d + j]);
            for (int v = 0; v < IV; v++) acc[c][v] += w * x[v];
        }
    }
    for (int c = 0; c < CR; c++)
        for (int v = 0; v < IV; v++) FN(store)(Z + c * mp + v * FS_V, acc[c][v]);
}

FS_DEF void FN(logit_tile_rows)(const FS_T *Xp, Py_ssize_t mp, Py_ssize_t d, const FS_T *W,
                                const FS_T *b, FS_T *Z, const int CR)
{
    Py_ssize_t i = 0;
    for (; i + FS_TILE_IV * FS_V <= mp; i += FS_TILE_IV * FS_V)
        FN(logit_tile)(Xp + i, mp, d, W, b, Z + i, CR, FS_TILE_IV);
    for (; i + FS_V <= mp; i += FS_V) FN(logit_tile)(Xp + i, mp, d, W, b, Z + i, CR, 1);
}

static FS_TARGET void FN(tile_logits)(const FS_T *Xp, Py_ssize_t mp, Py_ssize_t d, const FS_T *W,
                                      const FS_T *b, Py_ssize_t tc, FS_T *Z)
{
    Py_ssize_t c = 0;
    for (; c + FS_TILE_CR <= tc; c += FS_TILE_CR)
        FN(logit_tile_rows)(Xp, mp, d, W + c * d, b + c, Z + c * mp, FS_TILE_CR);
#if FS_TILE_CR > 4
    if (c + 4 <= tc) { FN(logit_tile_rows)(Xp, mp, d, W + c * d, b + c, Z + c * mp, 4); c += 4; }
#endif
    if (c + 2 <= tc) { FN(logit_tile_rows)(Xp, mp, d, W + c * d, b + c, Z + c * mp, 2); c += 2; }
    if (c < tc) FN(logit_tile_rows)(Xp, mp, d, W + c * d, b + c, Z + c * mp, 1);
}

#undef FS_TILE_CR
#undef FS_TILE_IV
