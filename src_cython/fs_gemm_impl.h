/* Template body of the two block products of the fused kernels, included by
 * fs_simd_impl.h once per X element type (FS_XT = FS_T or unsigned char,
 * loaded by FS_LOADX, suffix FS_XS).
 *
 * Lanes run over features (the contiguous dimension of X rows and of the
 * transposed weights WT (C, d)), so all lanes are busy whatever the number of
 * classes.  Tiles are register blocks (the class groups of fs_simd_impl.h):
 * the forward pass keeps e.g. 2 rows x 10 classes of partial dot products in
 * registers, reading the weights from their panels (pack_weights), the
 * backward pass 2 vectors of features x 10 classes of gradient while it
 * streams the rows of the block, reading a row-major copy of the residual.
 * The tile functions are always inlined with constant R/CB/JB so the
 * compiler fully unrolls them into registers.
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

FS_DEF void GN(fwd_tile)(const FS_XT *const *rows, Py_ssize_t d, const FS_T *Wg, const FS_T *b,
                         FS_T *Z, Py_ssize_t rs, Py_ssize_t cs, const int R, const int CB,
                         const FS_XT *const *pf, const int PR)
{
    /* Wg: the panels of this tile's class group (pack_weights), whose
     * vector of features j, class k is at Wg + (j / FS_V) CB FS_V + k FS_V */
    const FS_XT *x[4];
    VF acc[4][10];
    for (int r = 0; r < R; r++) x[r] = rows[r];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < CB; c++) acc[r][c] = FN(splat)(0);
    Py_ssize_t j = 0;
    const FS_T *w = Wg;
    for (; j + FS_V <= d; j += FS_V, w += CB * FS_V) {
        VF xv[4];
        for (int r = 0; r < R; r++) xv[r] = FS_LOADX(x[r] + j);
        if (pf && (j * sizeof(FS_XT)) % 64 == 0)
            for (int r = 0; r < PR; r++) __builtin_prefetch(pf[r] + j, 0, 2);
        for (int c = 0; c < CB; c++) {
            VF wv = FN(load)(w + c * FS_V);
            FS_IN_REGISTER(wv);
            for (int r = 0; r < R; r++) acc[r][c] += xv[r] * wv;
        }
    }
    for (int r = 0; r < R; r++) {
        FS_T sums[10];
        FN(hsum_many)(acc[r], CB, sums);
        for (int c = 0; c < CB; c++) {
            FS_T s = sums[c];
            for (Py_ssize_t t = j; t < d; t++) s += (FS_T)x[r][t] * w[c * FS_V + (t - j)];
            Z[r * rs + c * cs] = s + b[c];
        }
    }
}

/* Z = X (n, d) @ WT (C, d)^T + b, where Z[i rs + c cs] is row i, class c
 * (so Z may be row-major or class-major), from the weights packed by
 * pack_weights; prefetches the rows next[0..n) (if next is not NULL)
 * meanwhile. */
static FS_TARGET void GN(fwd)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d,
                              const FS_T *Wp, const FS_T *b, Py_ssize_t C, FS_T *Z,
                              Py_ssize_t rs, Py_ssize_t cs, const FS_XT *const *next)
{
    /* The forward product prefetches the first half of the next rows, the
     * backward product the second half: spread over the whole block, the
     * prefetches keep memory busy without stalling the loads of this block.
     * Rows i, i + 1 prefetch next row i / 2. */
    const Py_ssize_t panel = (d + FS_V - 1) / FS_V * FS_V; /* entries of a class's panels */
    Py_ssize_t i = 0, c, g;
    /* First the first line of every next row: rows in shuffled order (an
     * epoch) are separate streams, and the hardware prefetcher follows a
     * stream only once it has seen its start (harness, PERM=1: 25.5 -> 24
     * ms).  Consecutive rows are one stream, followed already. */
    if (next && n > 1 && next[n - 1] - next[0] != (n - 1) * d)
        for (Py_ssize_t q = 0; q < n; q++) __builtin_prefetch(next[q], 0, 2);
    for (; i + 4 <= n; i += 4) {
        const FS_XT *const *pf = next ? next + i / 2 : NULL;
        FS_T *z = Z + i * rs;
        for (c = 0; c < C; c += g) {
            g = FN(class_group)(C, c);
            const FS_T *Wg = Wp + c * panel;
            if (FS_WIDE && g == FS_WIDE)
                for (int h = 0; h < 4; h += 2)
                    GN(fwd_tile)(rows + i + h, d, Wg, b + c, z + h * rs + c * cs, rs, cs, 2,
                                 FS_WIDE, c || !pf ? NULL : pf + h / 2, 1);
            else if (g == FS_NARROW)
                GN(fwd_tile)(rows + i, d, Wg, b + c, z + c * cs, rs, cs, 4, FS_NARROW,
                             c ? NULL : pf, 2);
            else
                GN(fwd_tile)(rows + i, d, Wg, b + c, z + c * cs, rs, cs, 4, 1, c ? NULL : pf, 2);
        }
    }
    for (; i < n; i++) {
        FS_T *z = Z + i * rs;
        const FS_XT *const *pf = next && i % 2 == 0 ? next + i / 2 : NULL;
        for (c = 0; c < C; c += g) {
            g = FN(class_group)(C, c);
            const FS_T *Wg = Wp + c * panel;
            if (FS_WIDE && g == FS_WIDE)
                GN(fwd_tile)(rows + i, d, Wg, b + c, z + c * cs, rs, cs, 1, FS_WIDE,
                             c ? NULL : pf, 1);
            else if (g == FS_NARROW)
                GN(fwd_tile)(rows + i, d, Wg, b + c, z + c * cs, rs, cs, 1, FS_NARROW,
                             c ? NULL : pf, 1);
            else
                GN(fwd_tile)(rows + i, d, Wg, b + c, z + c * cs, rs, cs, 1, 1, c ? NULL : pf, 1);
        }
    }
}

FS_DEF void GN(bwd_tile)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t j, const FS_T *Rt,
                         FS_T *dWT, Py_ssize_t d, const int JB, const int CB,
                         const FS_XT *const *next, const int set)
{
    /* Rt: the residual of this tile's classes row-major (Rt[i CB + k]), so
     * that a row's CB broadcasts come from one pointer at constant offsets.
     * With set, dWT is overwritten (its old entries are not read). */
    VF acc[4][10];
    for (int c = 0; c < CB; c++)
        for (int b = 0; b < JB; b++)
            acc[b][c] = set ? FN(splat)(0) : FN(load)(dWT + c * d + b * FS_V);
    const FS_T *r = Rt;
    for (Py_ssize_t i = 0; i < n; i++, r += CB) {
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
            VF rv = FN(splat)(r[c]);
            for (int b = 0; b < JB; b++) acc[b][c] += xv[b] * rv;
        }
    }
    for (int c = 0; c < CB; c++)
        for (int b = 0; b < JB; b++) FN(store)(dWT + c * d + b * FS_V, acc[b][c]);
}

/* the tiles of one class group (CB classes) over the features [j, j + JB FS_V) */
FS_DEF void GN(bwd_cols)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t j, const FS_T *Rt,
                         Py_ssize_t CB, FS_T *dWT, Py_ssize_t d, const int JB,
                         const FS_XT *const *next, const int set)
{
    if (FS_WIDE && CB == FS_WIDE)
        for (int h = 0; h < JB; h += 2) {
            const Py_ssize_t jh = j + h * FS_V;
            if (JB - h >= 2)
                GN(bwd_tile)(rows, n, jh, Rt, dWT + jh, d, 2, FS_WIDE, next, set);
            else
                GN(bwd_tile)(rows, n, jh, Rt, dWT + jh, d, 1, FS_WIDE, next, set);
        }
    else if (CB == FS_NARROW)
        GN(bwd_tile)(rows, n, j, Rt, dWT + j, d, JB, FS_NARROW, next, set);
    else
        GN(bwd_tile)(rows, n, j, Rt, dWT + j, d, JB, 1, next, set);
}

/* dWT (C, d) += R^T @ X (n, d), R class-major (R[c n + i] is row i, class
 * c); prefetches the rows next[0..n) (if next is not NULL) meanwhile.  The residual is first copied row-major per class group
 * (Rt: a few hundred entries a block, against thousands of multiply-adds
 * each).  When all of it fits in Rt, each range of features goes through
 * every class group while its part of the rows is in L1, as before;
 * otherwise the class groups go in turn, each over groups of at most
 * FS_BWD_ROWS rows.  The sums over rows run in the same order either way. */
#define FS_BWD_ROWS 512
#define FS_BWD_ENTRIES (FS_BWD_ROWS * FS_MAX_GROUP)
FS_DEF void GN(bwd_body)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d, const FS_T *R,
                         Py_ssize_t C, FS_T *dWT, const FS_XT *const *next, const int set)
{
    FS_T Rt[FS_BWD_ENTRIES] __attribute__((aligned(64)));
    Py_ssize_t c, g, i0, m, j;
    if (n * C <= FS_BWD_ENTRIES) {
        for (c = 0; c < C; c += g) { /* group c at Rt + c n */
            g = FN(class_group)(C, c);
            for (Py_ssize_t i = 0; i < n; i++)
                for (Py_ssize_t k = 0; k < g; k++) Rt[c * n + i * g + k] = R[(c + k) * n + i];
        }
        for (j = 0; j + 4 * FS_V <= d; j += 4 * FS_V)
            for (c = 0; c < C; c += g) {
                g = FN(class_group)(C, c);
                GN(bwd_cols)(rows, n, j, Rt + c * n, g, dWT + c * d, d, 4, c ? NULL : next, set);
            }
        for (; j + FS_V <= d; j += FS_V)
            for (c = 0; c < C; c += g) {
                g = FN(class_group)(C, c);
                GN(bwd_cols)(rows, n, j, Rt + c * n, g, dWT + c * d, d, 1, NULL, set);
            }
    } else {
        for (i0 = 0; i0 < n; i0 += m) {
            m = n - i0 < FS_BWD_ROWS ? n - i0 : FS_BWD_ROWS;
            /* (prefetching only when the rows are one group, as the kernels call it) */
            const FS_XT *const *pf = m == n ? next : NULL;
            for (c = 0; c < C; c += g) {
                g = FN(class_group)(C, c);
                for (Py_ssize_t i = 0; i < m; i++)
                    for (Py_ssize_t k = 0; k < g; k++) Rt[i * g + k] = R[(c + k) * n + i0 + i];
                FS_T *dW = dWT + c * d;
                const FS_XT *const *p = c ? NULL : pf;
                for (j = 0; j + 4 * FS_V <= d; j += 4 * FS_V)
                    GN(bwd_cols)(rows + i0, m, j, Rt, g, dW, d, 4, p, set && i0 == 0);
                for (; j + FS_V <= d; j += FS_V)
                    GN(bwd_cols)(rows + i0, m, j, Rt, g, dW, d, 1, NULL, set && i0 == 0);
            }
        }
    }
    for (j = d / FS_V * FS_V; j < d; j++)
        for (c = 0; c < C; c++) {
            FS_T s = 0;
            for (Py_ssize_t i = 0; i < n; i++) s += R[c * n + i] * (FS_T)rows[i][j];
            dWT[c * d + j] = (set ? (FS_T)0 : dWT[c * d + j]) + s;
        }
}

static FS_TARGET void GN(bwd)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d, const FS_T *R,
                              Py_ssize_t C, FS_T *dWT, const FS_XT *const *next)
{
    GN(bwd_body)(rows, n, d, R, C, dWT, next, 0);
}

/* dWT (C, d) = R^T @ X (n, d): bwd without reading dWT (train_epoch's first
 * chunk of a minibatch: no zeroing pass over the gradient beforehand) */
static FS_TARGET void GN(bwd_set)(const FS_XT *const *rows, Py_ssize_t n, Py_ssize_t d,
                                  const FS_T *R, Py_ssize_t C, FS_T *dWT,
                                  const FS_XT *const *next)
{
    GN(bwd_body)(rows, n, d, R, C, dWT, next, 1);
}
#undef FS_BWD_ROWS
#undef FS_BWD_ENTRIES

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
