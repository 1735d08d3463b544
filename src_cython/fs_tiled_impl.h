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


/* Per row of a logit tile Z (tc, mp), class-major: tmax[i] = max_c z_ic and
 * tsum[i] = sum_c exp(z_ic - tmax[i]) (the shift is 0 for a row whose max is
 * not finite), for all mp rows (lanes run over rows: no horizontal step).
 * Pass A of the tiled regime; four vectors of rows at a time, so that the
 * exponentials of independent rows overlap. */
FS_DEF void FN(tile_stats_rows)(const FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax,
                                FS_T *tsum, const int IV)
{
    VF m[4], s[4];
    const VF zero = FN(splat)(0);
    for (int v = 0; v < IV; v++) m[v] = FN(load)(Z + v * FS_V);
    for (Py_ssize_t c = 1; c < tc; c++)
        for (int v = 0; v < IV; v++) m[v] = FN(vmax)(m[v], FN(load)(Z + c * mp + v * FS_V));
    for (int v = 0; v < IV; v++) {
        FN(store)(tmax + v * FS_V, m[v]);
        m[v] = FN(blend)(m[v] - m[v] == zero, m[v], zero);
        s[v] = zero;
    }
    for (Py_ssize_t c = 0; c < tc; c++)
        for (int v = 0; v < IV; v++) s[v] += FN(vexp)(FN(load)(Z + c * mp + v * FS_V) - m[v]);
    for (int v = 0; v < IV; v++) FN(store)(tsum + v * FS_V, s[v]);
}

static FS_TARGET void FN(tile_stats)(const FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax,
                                     FS_T *tsum)
{
    Py_ssize_t i = 0;
    for (; i + 4 * FS_V <= mp; i += 4 * FS_V)
        FN(tile_stats_rows)(Z + i, mp, tc, tmax + i, tsum + i, 4);
    for (; i + FS_V <= mp; i += FS_V) FN(tile_stats_rows)(Z + i, mp, tc, tmax + i, tsum + i, 1);
}

/* The residual of pass B before the label's -1: R[c rs + i] =
 * w[i] exp(L[c ls + i] - lse[i]) for classes c < tc and rows i < hp (a
 * multiple of the vector width; padding rows have lse = +inf, w = 0, which
 * gives 0), and db[c] += sum_i R[c rs + i].  R may be L (rs = ls). */
static FS_TARGET void FN(tile_residual)(FS_T *R, Py_ssize_t rs, const FS_T *L, Py_ssize_t ls,
                                        Py_ssize_t tc, Py_ssize_t hp, const FS_T *lse,
                                        const FS_T *w, double *db)
{
    for (Py_ssize_t c = 0; c < tc; c++) {
        VF acc = FN(splat)(0);
        for (Py_ssize_t i = 0; i < hp; i += FS_V) {
            VF r = FN(vexp)(FN(load)(L + c * ls + i) - FN(load)(lse + i)) * FN(load)(w + i);
            FN(store)(R + c * rs + i, r);
            acc += r;
        }
        db[c] += (double)FN(hsum)(acc);
    }
}

/* The weight gradient of a tile over a chunk of rows: dW (tc, d) += R^T X,
 * R class-major at the constant stride FS_GRAD_K (R[c FS_GRAD_K + i], the
 * residual chunks of pass B) and X (k, d) rows at stride ldx, k <= FS_GRAD_K.
 * Lanes run over features; a register block of FS_GRAD_CB classes x
 * FS_GRAD_JB vectors: per row JB loads of X and CB broadcasts of R feed
 * CB x JB fused multiply-adds.  The stride being a constant, the CB
 * broadcasts are one pointer plus immediate offsets (fs_gemm_impl.h's bwd,
 * whose stride is the run-time chunk length, needs CB pointers and spills
 * them).  Column blocks outside, classes inside: the chunk's slice of X
 * (k x JB vectors) stays in L1 for all class groups. */
#ifndef FS_TILE_GRAD_CHUNK
#define FS_TILE_GRAD_CHUNK 64 /* rows per residual chunk; a multiple of 16 */
#endif
#define FS_GRAD_K FS_TILE_GRAD_CHUNK
#if FS_VBYTES == 64
#define FS_GRAD_CB 6 /* 24 accumulators of the 32 vector registers */
#define FS_GRAD_JB 4
#else
#define FS_GRAD_CB 4 /* 8 of 16 */
#define FS_GRAD_JB 2
#endif

FS_DEF void FN(grad_block)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R, FS_T *dW,
                           Py_ssize_t d, const int CB, const int JB)
{
    VF acc[FS_GRAD_CB][FS_GRAD_JB];
    for (int c = 0; c < CB; c++)
        for (int v = 0; v < JB; v++) acc[c][v] = FN(load)(dW + c * d + v * FS_V);
    for (Py_ssize_t i = 0; i < k; i++) {
        VF x[FS_GRAD_JB];
        for (int v = 0; v < JB; v++) x[v] = FN(load)(X + i * ldx + v * FS_V);
        for (int c = 0; c < CB; c++) {
            VF r = FN(splat)(R[c * FS_GRAD_K + i]);
            for (int v = 0; v < JB; v++) acc[c][v] += r * x[v];
        }
    }
    for (int c = 0; c < CB; c++)
        for (int v = 0; v < JB; v++) FN(store)(dW + c * d + v * FS_V, acc[c][v]);
}

FS_DEF void FN(grad_cols)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R,
                          Py_ssize_t tc, FS_T *dW, Py_ssize_t d, const int JB)
{
    Py_ssize_t c = 0;
    for (; c + FS_GRAD_CB <= tc; c += FS_GRAD_CB)
        FN(grad_block)(X, ldx, k, R + c * FS_GRAD_K, dW + c * d, d, FS_GRAD_CB, JB);
    for (; c + 2 <= tc; c += 2) FN(grad_block)(X, ldx, k, R + c * FS_GRAD_K, dW + c * d, d, 2, JB);
    if (c < tc) FN(grad_block)(X, ldx, k, R + c * FS_GRAD_K, dW + c * d, d, 1, JB);
}

static FS_TARGET void FN(tile_grad)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R,
                                    Py_ssize_t tc, FS_T *dW, Py_ssize_t d)
{
    Py_ssize_t j = 0;
    for (; j + FS_GRAD_JB * FS_V <= d; j += FS_GRAD_JB * FS_V)
        FN(grad_cols)(X + j, ldx, k, R, tc, dW + j, d, FS_GRAD_JB);
    for (; j + FS_V <= d; j += FS_V) FN(grad_cols)(X + j, ldx, k, R, tc, dW + j, d, 1);
    for (; j < d; j++)
        for (Py_ssize_t c = 0; c < tc; c++) {
            FS_T s = 0;
            for (Py_ssize_t i = 0; i < k; i++) s += R[c * FS_GRAD_K + i] * X[i * ldx + j];
            dW[c * d + j] += s;
        }
}

#undef FS_GRAD_K
#undef FS_GRAD_CB
#undef FS_GRAD_JB
#undef FS_TILE_CR
#undef FS_TILE_IV
