/* Template body of the two block products of the fused kernels, included by
 * fs_simd_impl.h once per X element type (FS_XT = FS_T or unsigned char,
 * loaded by FS_LOADX, suffix FS_XS).
 *
 * Lanes run over features (the contiguous dimension of X rows and of the
 * transposed weights WT (C, d)), so all lanes are busy whatever the number of
 * classes.  Tiles are register blocks: the forward pass keeps 4 rows x 5
 * classes of partial dot products in registers, the backward pass keeps
 * 4 vectors of features x 5 classes of gradient while it streams the rows of
 * the block.  The tile functions are always inlined with constant R/CB/JB so
 * the compiler fully unrolls them into registers.
 *
 * Both products prefetch into L2 the rows of the next block (the table
 * `next`): the forward pass while it computes its first group of classes,
 * the backward pass again while it streams the block.  Spread over the whole
 * block, the next block's memory traffic hides behind the arithmetic.
 */

#define GN(name) FN(FS_CAT(name, FS_XS))

/* X is given as a table of row pointers (rows[i] -> row i, d entries), so a
 * minibatch of rows in random order is used in place, without a copy. */

/* Left alone, compilers fold the load of a weight vector into each of the R
 * multiply-adds that use it (R loads instead of one), and the load ports,
 * not the FMA units, then bound the forward tile: keep it in a register. */
#ifndef FS_IN_REGISTER
#if FS_X86
#define FS_IN_REGISTER(v) __asm__("" : "+v"(v))
#else
#define FS_IN_REGISTER(v) ((void)0)
#endif
#endif

/* The register tiles of both products, by the classes they cover: for float,
 * groups of 10 classes with 2 rows (or 2 vectors of features) each, so that
 * a row of X is loaded, and for uint8 widened, once for the 10 classes of
 * MNIST; then groups of 5 with 4 rows, then single classes with 4.  About 20
 * accumulators each.  For double the weight rows of 10 classes no longer fit
 * in L1 (62 KB for 784 features), and groups of 5 with 4 rows read them half
 * as often. */
#define FS_WIDE (FS_F32 ? 10 : 0)
#define FS_NARROW 5

FS_DEF void GN(fwd_tile)(const FS_XT *const *rows, Py_ssize_t d, const FS_T *WT, const FS_T *b,
                         FS_T *Z, Py_ssize_t rs, Py_ssize_t cs, const int R, const int CB,
                         const FS_XT *const *pf, const int PR)
{
    const FS_XT *x[4];
    VF acc[4][10];
    for (int r = 0; r < R; r++) x[r] = rows[r];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < CB; c++) acc[r][c] = FN(splat)(0);
    Py_ssize_t j = 0;
    for (; j + FS_V <= d; j += FS_V) {
        VF xv[4];
        for (int r = 0; r < R; r++) xv[r] = FS_LOADX(x[r] + j);
        if (pf && (j * sizeof(FS_XT)) % 64 == 0)
            for (int r = 0; r < PR; r++) __builtin_prefetch(pf[r] + j, 0, 2);
        for (int c = 0; c < CB; c++) {
            VF w = FN(load)(WT + c * d + j);
            FS_IN_REGISTER(w);
            for (int r = 0; r < R; r++) acc[r][c] += xv[r] * w;
        }
    }
    for (int r = 0; r < R; r++) {
        FS_T sums[10];
        FN(hsum_many)(acc[r], CB, sums);
        for (int c = 0; c < CB; c++) {
            FS_T s = sums[c];
            for (Py_ssize_t t = j; t < d; t++) s += (FS_T)x[r][t] * WT[c * d + t];
            Z[r * rs + c * cs] = s + b[c];
        }
    }
}

/* Z = X (n, d) @ WT (C, d)^T + b, where Z[i rs + c cs] is row i, class c
 * (so Z may be row-major or class-major); prefetches the rows next[0..n) (if
 * next is not NULL) meanwhile. */
static FS_TARGET void GN(fwd)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d,
                              const FS_T *WT, const FS_T *b, Py_ssize_t C, FS_T *Z,
                              Py_ssize_t rs, Py_ssize_t cs, const FS_XT *const *next)
{
    /* The forward product prefetches the first half of the next rows, the
     * backward product the second half: spread over the whole block, the
     * prefetches keep memory busy without stalling the loads of this block.
     * Rows i, i + 1 prefetch next row i / 2. */
    Py_ssize_t i = 0, c;
    /* First the first line of every next row: rows in shuffled order (an
     * epoch) are separate streams, and the hardware prefetcher follows a
     * stream only once it has seen its start (harness, PERM=1: 25.5 -> 24
     * ms).  Consecutive rows are one stream, followed already. */
    if (next && n > 1 && next[n - 1] - next[0] != (n - 1) * d)
        for (Py_ssize_t q = 0; q < n; q++) __builtin_prefetch(next[q], 0, 2);
    for (; i + 4 <= n; i += 4) {
        const FS_XT *const *pf = next ? next + i / 2 : NULL;
        FS_T *z = Z + i * rs;
        c = 0;
        if (FS_WIDE)
            for (; c + FS_WIDE <= C; c += FS_WIDE)
                for (int h = 0; h < 4; h += 2)
                    GN(fwd_tile)(rows + i + h, d, WT + c * d, b + c, z + h * rs + c * cs, rs, cs, 2,
                                 FS_WIDE, c || !pf ? NULL : pf + h / 2, 1);
        for (; c + FS_NARROW <= C; c += FS_NARROW)
            GN(fwd_tile)(rows + i, d, WT + c * d, b + c, z + c * cs, rs, cs, 4, FS_NARROW,
                         c ? NULL : pf, 2);
        for (; c < C; c++)
            GN(fwd_tile)(rows + i, d, WT + c * d, b + c, z + c * cs, rs, cs, 4, 1, c ? NULL : pf, 2);
    }
    for (; i < n; i++) {
        FS_T *z = Z + i * rs;
        const FS_XT *const *pf = next && i % 2 == 0 ? next + i / 2 : NULL;
        c = 0;
        if (FS_WIDE)
            for (; c + FS_WIDE <= C; c += FS_WIDE)
                GN(fwd_tile)(rows + i, d, WT + c * d, b + c, z + c * cs, rs, cs, 1, FS_WIDE,
                             c ? NULL : pf, 1);
        for (; c + FS_NARROW <= C; c += FS_NARROW)
            GN(fwd_tile)(rows + i, d, WT + c * d, b + c, z + c * cs, rs, cs, 1, FS_NARROW,
                         c ? NULL : pf, 1);
        for (; c < C; c++)
            GN(fwd_tile)(rows + i, d, WT + c * d, b + c, z + c * cs, rs, cs, 1, 1, c ? NULL : pf, 1);
    }
}

FS_DEF void GN(bwd_tile)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t j, const FS_T *R,
                         FS_T *dWT, Py_ssize_t d, const int JB, const int CB,
                         const FS_XT *const *next)
{
    VF acc[4][10];
    for (int c = 0; c < CB; c++)
        for (int b = 0; b < JB; b++) acc[b][c] = FN(load)(dWT + c * d + b * FS_V);
    for (Py_ssize_t i = 0; i < n; i++) {
        VF xv[4];
        const FS_XT *x = rows[i] + j;
        for (int b = 0; b < JB; b++) xv[b] = FS_LOADX(x + b * FS_V);
        /* While this block is in cache, bring the second half of the next
         * one into L2 (the forward product brought the first), so that the
         * forward product over it does not wait for memory. */
        if (next && i % 2 == 0)
            for (int b = 0; b < JB; b++)
                if ((b * FS_V * sizeof(FS_XT)) % 64 == 0)
                    __builtin_prefetch(next[n / 2 + i / 2] + j + b * FS_V, 0, 2);
        for (int c = 0; c < CB; c++) {
            VF r = FN(splat)(R[c * n + i]);
            for (int b = 0; b < JB; b++) acc[b][c] += xv[b] * r;
        }
    }
    for (int c = 0; c < CB; c++)
        for (int b = 0; b < JB; b++) FN(store)(dWT + c * d + b * FS_V, acc[b][c]);
}

/* the class groups of bwd over the features [j, j + JB FS_V) */
FS_DEF void GN(bwd_cols)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t j, const FS_T *R,
                         Py_ssize_t C, FS_T *dWT, Py_ssize_t d, const int JB,
                         const FS_XT *const *next)
{
    Py_ssize_t c = 0;
    if (FS_WIDE)
        for (; c + FS_WIDE <= C; c += FS_WIDE)
            for (int h = 0; h < JB; h += 2) {
                const Py_ssize_t jh = j + h * FS_V;
                const FS_XT *const *p = c ? NULL : next;
                if (JB - h >= 2)
                    GN(bwd_tile)(rows, n, jh, R + c * n, dWT + c * d + jh, d, 2, FS_WIDE, p);
                else
                    GN(bwd_tile)(rows, n, jh, R + c * n, dWT + c * d + jh, d, 1, FS_WIDE, p);
            }
    for (; c + FS_NARROW <= C; c += FS_NARROW)
        GN(bwd_tile)(rows, n, j, R + c * n, dWT + c * d + j, d, JB, FS_NARROW, c ? NULL : next);
    for (; c < C; c++) GN(bwd_tile)(rows, n, j, R + c * n, dWT + c * d + j, d, JB, 1, c ? NULL : next);
}

/* dWT (C, d) += R^T @ X (n, d), R class-major (R[c n + i] is row i, class
 * c); prefetches the rows next[0..n) (if next is not NULL) meanwhile */
static FS_TARGET void GN(bwd)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d, const FS_T *R,
                              Py_ssize_t C, FS_T *dWT, const FS_XT *const *next)
{
    Py_ssize_t j = 0, c;
    for (; j + 4 * FS_V <= d; j += 4 * FS_V) GN(bwd_cols)(rows, n, j, R, C, dWT, d, 4, next);
    for (; j + FS_V <= d; j += FS_V) GN(bwd_cols)(rows, n, j, R, C, dWT, d, 1, NULL);
    for (; j < d; j++)
        for (c = 0; c < C; c++) {
            FS_T s = 0;
            for (Py_ssize_t i = 0; i < n; i++) s += R[c * n + i] * (FS_T)rows[i][j];
            dWT[c * d + j] += s;
        }
}

#undef FS_WIDE
#undef FS_NARROW

/* Rows rows[0..h) of X, transposed and converted to FS_T, into Xp (d, mp):
 * Xp[j mp + i] = rows[i][j], zero for h <= i < mp.  The packed operand of
 * fs_tiled_impl.h's tile_logits. */
static FS_TARGET void GN(pack_t)(const FS_XT *const *rows, Py_ssize_t h, Py_ssize_t d, FS_T *Xp,
                                 Py_ssize_t mp)
{
    for (Py_ssize_t j = 0; j < d; j++) {
        FS_T *out = Xp + j * mp;
        Py_ssize_t i = 0;
        for (; i < h; i++) out[i] = (FS_T)rows[i][j];
        for (; i < mp; i++) out[i] = 0;
    }
}

#undef GN
