/* Template body of the logit-tile product of the tiled regime of
 * softmax_ce_sums (many classes), included by fs_simd_impl.h once per float
 * type and instruction set.
 *
 * Z (tc, mp), class-major, = W (tc, d) @ X^T + b for a block of mp rows of X
 * packed in panels (pack_panels): lanes run over rows, each step broadcasts
 * CR weights and loads IV vectors of packed rows, CR x IV fused
 * multiply-adds into accumulators that never need a horizontal sum (unlike
 * fs_gemm_impl.h's fwd, whose lanes run over features).
 */

#ifndef MAX_BLOCK_ROWS
#define MAX_BLOCK_ROWS 512 /* rows per block at most (the kernels' MAX_BLOCK) */
#endif
#ifndef FS_TILE_GRAD_CHUNK
#define FS_TILE_GRAD_CHUNK 128 /* rows per residual chunk; a multiple of 16 (128: the dW rows of
                                  * a tile go through the registers half as often as with 64) */
#endif

#if FS_VBYTES == 64
#define FS_TILE_CR 8 /* 8 classes x 3 vectors: 24 of the 32 vector registers */
#else
#define FS_TILE_CR 4 /* 16 registers: 12 accumulators */
#endif
#define FS_TILE_IV 3
/* Depth (features) of one sweep over the class groups: a panel's slice of
 * FS_TILE_KC features x 3 vectors of rows (24 KB for float32 AVX-512) stays
 * in L1 for all class groups of the tile; the partial logits go through Z. */
#define FS_TILE_KC 128

#if FS_X86 && FS_VBYTES == 64 && FS_F32
/* t[k] = column k of the 16 x 16 block of floats whose rows are r[0..16) */
FS_DEF void FN(transpose16)(const __m512 r[16], __m512 t[16])
{
    __m512 a[16], b[16];
    for (int q = 0; q < 16; q += 2) { /* pairs of rows, interleaved within 128-bit lanes */
        a[q] = _mm512_unpacklo_ps(r[q], r[q + 1]);
        a[q + 1] = _mm512_unpackhi_ps(r[q], r[q + 1]);
    }
    for (int q = 0; q < 16; q += 4) { /* b[q + e], lane L: rows q..q+3 of column 4 L + e */
        b[q] = (__m512)_mm512_unpacklo_pd((__m512d)a[q], (__m512d)a[q + 2]);
        b[q + 1] = (__m512)_mm512_unpackhi_pd((__m512d)a[q], (__m512d)a[q + 2]);
        b[q + 2] = (__m512)_mm512_unpacklo_pd((__m512d)a[q + 1], (__m512d)a[q + 3]);
        b[q + 3] = (__m512)_mm512_unpackhi_pd((__m512d)a[q + 1], (__m512d)a[q + 3]);
    }
    for (int e = 0; e < 4; e++) { /* gather lane L of b[e], b[4 + e], b[8 + e], b[12 + e] */
        __m512 lo = _mm512_shuffle_f32x4(b[e], b[4 + e], 0x44), hi = _mm512_shuffle_f32x4(b[e], b[4 + e], 0xEE);
        __m512 lo2 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0x44);
        __m512 hi2 = _mm512_shuffle_f32x4(b[8 + e], b[12 + e], 0xEE);
        t[e] = _mm512_shuffle_f32x4(lo, lo2, 0x88);
        t[4 + e] = _mm512_shuffle_f32x4(lo, lo2, 0xDD);
        t[8 + e] = _mm512_shuffle_f32x4(hi, hi2, 0x88);
        t[12 + e] = _mm512_shuffle_f32x4(hi, hi2, 0xDD);
    }
}
#endif

/* Panels of X rows for tile_logits: Xp[i0 d + j w + r] = X[i0 + r][j] for
 * panels of w = min(3 FS_V, mp - i0) rows starting at i0 (a multiple of
 * 3 FS_V), each panel contiguous, rows h <= i < mp zero.  X given as h rows
 * at stride ldx; mp a multiple of FS_V.  (float AVX-512: 16 x 16 blocks
 * transposed in registers, a tenth of the scalar copy's time.) */
static FS_TARGET void FN(pack_panels)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t h, Py_ssize_t d,
                                      FS_T *Xp, Py_ssize_t mp)
{
    for (Py_ssize_t i0 = 0; i0 < mp; i0 += FS_TILE_IV * FS_V) {
        const Py_ssize_t w = mp - i0 < FS_TILE_IV * FS_V ? mp - i0 : FS_TILE_IV * FS_V;
        FS_T *panel = Xp + i0 * d;
        Py_ssize_t j0 = 0;
#if FS_X86 && FS_VBYTES == 64 && FS_F32
        for (; j0 + 16 <= d; j0 += 16)
            for (Py_ssize_t g = 0; g < w; g += 16) {
                __m512 rows[16], cols[16];
                for (int q = 0; q < 16; q++)
                    rows[q] = i0 + g + q < h ? _mm512_loadu_ps(X + (i0 + g + q) * ldx + j0)
                                             : _mm512_setzero_ps();
                FN(transpose16)(rows, cols);
                for (int k = 0; k < 16; k++) _mm512_storeu_ps(panel + (j0 + k) * w + g, cols[k]);
            }
#endif
        for (Py_ssize_t r = 0; r < w; r++) {
            const FS_T *x = X + (i0 + r) * ldx;
            if (i0 + r < h)
                for (Py_ssize_t j = j0; j < d; j++) panel[j * w + r] = x[j];
            else
                for (Py_ssize_t j = j0; j < d; j++) panel[j * w + r] = 0;
        }
    }
}

/* Z[c mp + r] (c < CR, r < IV FS_V) = (or +=, unless first) W[c d + j] Xp[j w + r]
 * over j < kd, plus b[c] when first; meanwhile prefetches into L2 the cache
 * lines pf[0..npf) (npf <= kd / 4) */
FS_DEF void FN(logit_tile)(const FS_T *Xp, Py_ssize_t w, Py_ssize_t kd, const FS_T *W,
                           Py_ssize_t d, const FS_T *b, int first, FS_T *Z, Py_ssize_t mp,
                           const char *pf, Py_ssize_t npf, const int CR, const int IV)
{
    VF acc[FS_TILE_CR][FS_TILE_IV];
    for (int c = 0; c < CR; c++)
        for (int v = 0; v < IV; v++)
            acc[c][v] = first ? FN(splat)(b[c]) : FN(load)(Z + c * mp + v * FS_V);
    for (Py_ssize_t j = 0; j < kd; j++) {
        VF x[FS_TILE_IV];
        if (j % 4 == 0 && j < 4 * npf) __builtin_prefetch(pf + j * 16, 0, 2);
        for (int v = 0; v < IV; v++) x[v] = FN(load)(Xp + j * w + v * FS_V);
        for (int c = 0; c < CR; c++) {
            VF wv = FN(splat)(W[c * d + j]);
            for (int v = 0; v < IV; v++) acc[c][v] += wv * x[v];
        }
    }
    for (int c = 0; c < CR; c++)
        for (int v = 0; v < IV; v++) FN(store)(Z + c * mp + v * FS_V, acc[c][v]);
}

/* the class groups of logit_tile; prefetches the lines pf[0..) meanwhile
 * (kd / 4 a group), returns how many */
FS_DEF Py_ssize_t FN(logit_groups)(const FS_T *Xp, Py_ssize_t w, Py_ssize_t kd, const FS_T *W,
                                   Py_ssize_t d, const FS_T *b, int first, Py_ssize_t tc,
                                   FS_T *Z, Py_ssize_t mp, const char *pf, Py_ssize_t npf,
                                   const int IV)
{
    Py_ssize_t c = 0, done = 0, k = 0;
#define FS_LOGIT_GROUP(CR)                                                                       \
    k = npf - done < kd / 4 ? npf - done : kd / 4;                                              \
    FN(logit_tile)(Xp, w, kd, W + c * d, d, b + c, first, Z + c * mp, mp, pf + done * 64, k, CR, \
                   IV);                                                                          \
    done += k;                                                                                   \
    c += CR
    while (c + FS_TILE_CR <= tc) { FS_LOGIT_GROUP(FS_TILE_CR); }
#if FS_TILE_CR > 4
    if (c + 4 <= tc) { FS_LOGIT_GROUP(4); }
#endif
    if (c + 2 <= tc) { FS_LOGIT_GROUP(2); }
    if (c < tc) { FS_LOGIT_GROUP(1); }
#undef FS_LOGIT_GROUP
    return done;
}

FS_DEF void FN(tile_stats_rows)(FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax,
                                FS_T *tsum, const int IV, const int KEEP);

/* Z (tc, mp), class-major, = W (tc, d) @ X^T + b, X's mp rows packed by
 * pack_panels.  Meanwhile brings the next tile's weights, next (tc, d), into
 * L2 (unless next is NULL): the first panel then finds them there.  Unless
 * tmax is NULL, also pass A's statistics of each row (tile_stats; with keep,
 * each logit replaced by exp(z - shift)) and, for the rows i whose label is
 * in the tile (label[i] = its class in the tile, else < 0), label_logit[i] =
 * its logit: panel by panel, while the panel's logits are still in L1/L2. */
static FS_TARGET void FN(tile_logits)(const FS_T *Xp, Py_ssize_t mp, Py_ssize_t d, const FS_T *W,
                                      const FS_T *b, Py_ssize_t tc, FS_T *Z, const FS_T *next,
                                      FS_T *tmax, FS_T *tsum, int keep, const Py_ssize_t *label,
                                      FS_T *label_logit)
{
    const char *pf = (const char *)next;
    Py_ssize_t npf = next ? (Py_ssize_t)(tc * d * sizeof(FS_T) + 63) / 64 : 0;
    for (Py_ssize_t i0 = 0; i0 < mp; i0 += FS_TILE_IV * FS_V) {
        const Py_ssize_t w = mp - i0 < FS_TILE_IV * FS_V ? mp - i0 : FS_TILE_IV * FS_V;
        const FS_T *panel = Xp + i0 * d;
        for (Py_ssize_t j0 = 0; j0 < d; j0 += FS_TILE_KC) {
            const Py_ssize_t kd = d - j0 < FS_TILE_KC ? d - j0 : FS_TILE_KC;
            const FS_T *p = panel + j0 * w;
            Py_ssize_t done;
            if (w == 3 * FS_V)
                done = FN(logit_groups)(p, w, kd, W + j0, d, b, j0 == 0, tc, Z + i0, mp, pf, npf, 3);
            else if (w == 2 * FS_V)
                done = FN(logit_groups)(p, w, kd, W + j0, d, b, j0 == 0, tc, Z + i0, mp, pf, npf, 2);
            else
                done = FN(logit_groups)(p, w, kd, W + j0, d, b, j0 == 0, tc, Z + i0, mp, pf, npf, 1);
            pf += 64 * done;
            npf -= done;
        }
        if (tmax == NULL) continue;
        for (Py_ssize_t i = i0; i < i0 + w; i++)
            if (label[i] >= 0) label_logit[i] = Z[label[i] * mp + i];
#define FS_PANEL_STATS(IV)                                                                 \
    if (keep) FN(tile_stats_rows)(Z + i0, mp, tc, tmax + i0, tsum + i0, IV, 1);           \
    else FN(tile_stats_rows)(Z + i0, mp, tc, tmax + i0, tsum + i0, IV, 0)
        if (w == 3 * FS_V) { FS_PANEL_STATS(3); }
        else if (w == 2 * FS_V) { FS_PANEL_STATS(2); }
        else { FS_PANEL_STATS(1); }
#undef FS_PANEL_STATS
    }
}


/* Per row of a logit tile Z (tc, mp), class-major: tmax[i] = max_c z_ic and
 * tsum[i] = sum_c exp(z_ic - tmax[i]) (the shift is 0 for a row whose max is
 * not finite), for all mp rows (lanes run over rows: no horizontal step);
 * with KEEP, each z_ic is replaced by its exp(z_ic - shift) (pass A keeping
 * a block's tiles for pass B, whose residual is then a product, tile_scale,
 * not an exponential).  Pass A of the tiled regime; several vectors of rows
 * at a time, so that the exponentials of independent rows overlap. */
FS_DEF void FN(tile_stats_rows)(FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax,
                                FS_T *tsum, const int IV, const int KEEP)
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
        for (int v = 0; v < IV; v++) {
            VF e = FN(vexp)(FN(load)(Z + c * mp + v * FS_V) - m[v]);
            if (KEEP) FN(store)(Z + c * mp + v * FS_V, e);
            s[v] += e;
        }
    for (int v = 0; v < IV; v++) FN(store)(tsum + v * FS_V, s[v]);
}

FS_DEF void FN(tile_stats_all)(FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax, FS_T *tsum,
                               const int KEEP)
{
    Py_ssize_t i = 0;
    for (; i + 4 * FS_V <= mp; i += 4 * FS_V)
        FN(tile_stats_rows)(Z + i, mp, tc, tmax + i, tsum + i, 4, KEEP);
    for (; i + FS_V <= mp; i += FS_V) FN(tile_stats_rows)(Z + i, mp, tc, tmax + i, tsum + i, 1, KEEP);
}

static FS_TARGET void FN(tile_stats)(const FS_T *Z, Py_ssize_t mp, Py_ssize_t tc, FS_T *tmax,
                                     FS_T *tsum)
{
    FN(tile_stats_all)((FS_T *)Z, mp, tc, tmax, tsum, 0);
}

/* R[c rs + i] = E[c es + i] scale[i] for classes c < tc and rows i < hp (a
 * multiple of the vector width), and db[c] += sum_i R[c rs + i]: pass B's
 * residual from the exponentials kept by tile_logits, scale[i] = w[i]
 * exp(tmax[i] - lse[i]).  R may be E (rs = es). */
static FS_TARGET void FN(tile_scale)(FS_T *R, Py_ssize_t rs, const FS_T *E, Py_ssize_t es,
                                     Py_ssize_t tc, Py_ssize_t hp, const FS_T *scale, double *db)
{
    for (Py_ssize_t c = 0; c < tc; c++) {
        VF acc = FN(splat)(0);
        for (Py_ssize_t i = 0; i < hp; i += FS_V) {
            VF r = FN(load)(E + c * es + i) * FN(load)(scale + i);
            FN(store)(R + c * rs + i, r);
            acc += r;
        }
        db[c] += (double)FN(hsum)(acc);
    }
}

/* tile_scale for a subset of the block's rows: the h rows index[0..h)
 * (increasing, < mp) of the kept exponentials E (tc, mp), compacted:
 * compacted row k of class c goes to R[(k - k % K) tc + c K + k % K] with K
 * = FS_TILE_GRAD_CHUNK (pass B's residual chunks), times scale[k]; rows h <=
 * k < hp (hp = h rounded up to the vector width) get 0; db[c] += the class
 * sums.  With AVX-512, a class's rows are compacted by vcompressps under the
 * hot rows' lane masks instead of gathered one by one. */
static FS_TARGET void FN(tile_scale_rows)(FS_T *R, const FS_T *E, Py_ssize_t mp, Py_ssize_t tc,
                                          const Py_ssize_t *index, Py_ssize_t h,
                                          const FS_T *scale, double *db)
{
    const Py_ssize_t K = FS_TILE_GRAD_CHUNK, hp = (h + FS_V - 1) / FS_V * FS_V;
    FS_T row[MAX_BLOCK_ROWS + 2 * FS_V];
#if FS_X86 && FS_VBYTES == 64
    unsigned int mask[MAX_BLOCK_ROWS / FS_V + 1] = {0};
    for (Py_ssize_t k = 0; k < h; k++) mask[index[k] / FS_V] |= 1u << (index[k] % FS_V);
#endif
    for (Py_ssize_t c = 0; c < tc; c++) {
        const FS_T *e = E + c * mp;
#if FS_X86 && FS_VBYTES == 64
        Py_ssize_t p = 0;
        for (Py_ssize_t v = 0; v * FS_V < mp; v++) {
            if (!mask[v]) continue;
#if FS_F32
            FN(store)(row + p, (VF)_mm512_maskz_compress_ps((__mmask16)mask[v], (__m512)FN(load)(e + v * FS_V)));
#else
            FN(store)(row + p, (VF)_mm512_maskz_compress_pd((__mmask8)mask[v], (__m512d)FN(load)(e + v * FS_V)));
#endif
            p += __builtin_popcount(mask[v]);
        }
#else
        for (Py_ssize_t k = 0; k < h; k++) row[k] = e[index[k]];
#endif
        for (Py_ssize_t k = h; k < hp; k++) row[k] = 0;
        VF acc = FN(splat)(0);
        for (Py_ssize_t k = 0; k < hp; k += FS_V) {
            VF r = FN(load)(row + k) * FN(load)(scale + k);
            FN(store)(R + (k - k % K) * tc + c * K + k % K, r);
            acc += r;
        }
        db[c] += (double)FN(hsum)(acc);
    }
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
#define FS_GRAD_K FS_TILE_GRAD_CHUNK
#if FS_VBYTES == 64
#define FS_GRAD_CB 6 /* 24 accumulators of the 32 vector registers */
#define FS_GRAD_JB 4
#else
#define FS_GRAD_CB 4 /* 8 of 16 */
#define FS_GRAD_JB 2
#endif

FS_DEF void FN(grad_block)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R, FS_T *dW,
                           Py_ssize_t d, const char *pf, Py_ssize_t npf, const int CB,
                           const int JB)
{
    VF acc[FS_GRAD_CB][FS_GRAD_JB];
    for (int c = 0; c < CB; c++)
        for (int v = 0; v < JB; v++) acc[c][v] = FN(load)(dW + c * d + v * FS_V);
    for (Py_ssize_t i = 0; i < k; i++) {
        VF x[FS_GRAD_JB];
        if (i < npf) __builtin_prefetch(pf + i * 64, 1, 2);
        for (int v = 0; v < JB; v++) x[v] = FN(load)(X + i * ldx + v * FS_V);
        for (int c = 0; c < CB; c++) {
            VF r = FN(splat)(R[c * FS_GRAD_K + i]);
            for (int v = 0; v < JB; v++) acc[c][v] += r * x[v];
        }
    }
    for (int c = 0; c < CB; c++)
        for (int v = 0; v < JB; v++) FN(store)(dW + c * d + v * FS_V, acc[c][v]);
}

/* Lines to prefetch: n0 from pf0, then n1 from pf1 (NULL: none). */
typedef struct {
    const char *pf0, *pf1;
    Py_ssize_t n0, n1;
} FN(prefetch_plan);

/* the class groups of grad_block over one column block; each prefetches the
 * next `per` lines of the plan from line `*done` on */
FS_DEF void FN(grad_cols)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R,
                          Py_ssize_t tc, FS_T *dW, Py_ssize_t d, const FN(prefetch_plan) *plan,
                          Py_ssize_t per, Py_ssize_t *done, const int JB)
{
    Py_ssize_t c = 0, n;
    const char *p;
#define FS_GRAD_GROUP(CB)                                                                   \
    if (*done < plan->n0) {                                                                \
        p = plan->pf0 + 64 * *done;                                                        \
        n = plan->n0 - *done < per ? plan->n0 - *done : per;                               \
    } else {                                                                               \
        p = plan->pf1 + 64 * (*done - plan->n0);                                           \
        n = plan->n0 + plan->n1 - *done < per ? plan->n0 + plan->n1 - *done : per;         \
    }                                                                                      \
    FN(grad_block)(X, ldx, k, R + c * FS_GRAD_K, dW + c * d, d, p, n, CB, JB);             \
    *done += n;                                                                            \
    c += CB
    while (c + FS_GRAD_CB <= tc) { FS_GRAD_GROUP(FS_GRAD_CB); }
    while (c + 2 <= tc) { FS_GRAD_GROUP(2); }
    if (c < tc) { FS_GRAD_GROUP(1); }
#undef FS_GRAD_GROUP
}

/* Meanwhile brings n0 cache lines from pf0 and n1 from pf1 into L2 (for
 * pass B: parts of the next tile's gradient rows and kept logits), spread
 * over the products. */
static FS_TARGET void FN(tile_grad)(const FS_T *X, Py_ssize_t ldx, Py_ssize_t k, const FS_T *R,
                                    Py_ssize_t tc, FS_T *dW, Py_ssize_t d, const void *pf0,
                                    Py_ssize_t n0, const void *pf1, Py_ssize_t n1)
{
    FN(prefetch_plan) plan = {(const char *)pf0, (const char *)pf1, pf0 ? n0 : 0, pf1 ? n1 : 0};
    FN(prefetch_plan) none = {NULL, NULL, 0, 0};
    Py_ssize_t j = 0, done = 0;
    /* calls of grad_block: d / (JB FS_V) column blocks of tc / CB groups (rounded up) */
    const Py_ssize_t calls = (d / (FS_GRAD_JB * FS_V) + 1) * (tc / FS_GRAD_CB + 1);
    const Py_ssize_t per = (plan.n0 + plan.n1 + calls - 1) / calls;
    for (; j + FS_GRAD_JB * FS_V <= d; j += FS_GRAD_JB * FS_V)
        FN(grad_cols)(X + j, ldx, k, R, tc, dW + j, d, &plan, per, &done, FS_GRAD_JB);
    for (; j + FS_V <= d; j += FS_V) FN(grad_cols)(X + j, ldx, k, R, tc, dW + j, d, &none, 0, &done, 1);
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
#undef FS_TILE_KC
