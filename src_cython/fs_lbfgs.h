/* The vector passes of the wide L-BFGS (fastsoftmax/_lbfgs.py, _lbfgs_kernels.pyx), float64.
 *
 * At millions of parameters an L-BFGS iteration is bound by memory traffic: the
 * history holds 2 m vectors and every pass over it reads them all.  Each function is
 * one pass over a column range [lo, hi) of the vectors, in blocks of FS_LBFGS_BLOCK
 * columns, so that the block of the one or two vectors that every history row meets
 * stays in L1 while the rows stream by; the callers split [0, n) between threads.
 * Dot products use four accumulators (they vectorise without -ffast-math).
 */
#ifndef FS_LBFGS_H
#define FS_LBFGS_H

#include <math.h>
#include <stddef.h>

/* columns of a block (a variable for tuning: _lbfgs_kernels._set_block) */
static ptrdiff_t FS_LBFGS_BLOCK = 8192;

static void fs_lbfgs_set_block(ptrdiff_t block) { FS_LBFGS_BLOCK = block > 8 ? block : 8; }

static inline double fs_lbfgs_dot(const double *restrict a, const double *restrict b,
                                  ptrdiff_t n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    ptrdiff_t j = 0;
    for (; j + 4 <= n; j += 4) {
        s0 += a[j] * b[j];
        s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2];
        s3 += a[j + 3] * b[j + 3];
    }
    for (; j < n; j++) s0 += a[j] * b[j];
    return (s0 + s1) + (s2 + s3);
}

/* With slot >= 0 first writes the new pair s = stp d, y = g - g_old into rows 2 slot and
 * 2 slot + 1; then out[2 r] += rows[r] . g and, with y (want_y), out[2 r + 1] += rows[r] . y
 * for r < nrows. */
static void fs_lbfgs_products(double *rows, ptrdiff_t n, ptrdiff_t nrows, ptrdiff_t slot,
                                double stp, const double *restrict d,
                                const double *restrict g, const double *restrict g_old,
                                int want_y, ptrdiff_t lo, ptrdiff_t hi, double *restrict out)
{
    for (ptrdiff_t a = lo; a < hi; a += FS_LBFGS_BLOCK) {
        const ptrdiff_t len = (hi - a < FS_LBFGS_BLOCK) ? hi - a : FS_LBFGS_BLOCK;
        const double *gb = g + a;
        if (slot >= 0) {
            double *restrict s = rows + 2 * slot * n + a;
            double *restrict y = rows + (2 * slot + 1) * n + a;
            for (ptrdiff_t j = 0; j < len; j++) {
                s[j] = stp * d[a + j];
                y[j] = gb[j] - g_old[a + j];
            }
        }
        const double *yb = want_y ? rows + (2 * slot + 1) * n + a : NULL;
        for (ptrdiff_t r = 0; r < nrows; r++) {
            const double *row = rows + r * n + a;
            out[2 * r] += fs_lbfgs_dot(row, gb, len);
            if (yb) out[2 * r + 1] += fs_lbfgs_dot(row, yb, len);
        }
    }
}

/* out = sum_r coefs[r] rows[r] - gamma g over the range; adds g . out and out . out to
 * dots[0], dots[1]. */
static void fs_lbfgs_combine(const double *rows, ptrdiff_t n, ptrdiff_t nrows,
                             const double *restrict coefs, double gamma,
                             const double *restrict g, ptrdiff_t lo, ptrdiff_t hi,
                             double *restrict out, double *restrict dots)
{
    double gd = 0, dd = 0;
    for (ptrdiff_t a = lo; a < hi; a += FS_LBFGS_BLOCK) {
        const ptrdiff_t len = (hi - a < FS_LBFGS_BLOCK) ? hi - a : FS_LBFGS_BLOCK;
        double *restrict ob = out + a;
        for (ptrdiff_t j = 0; j < len; j++) ob[j] = -gamma * g[a + j];
        for (ptrdiff_t r = 0; r < nrows; r++) {
            const double c = coefs[r];
            const double *restrict row = rows + r * n + a;
            if (c == 0) continue;
            for (ptrdiff_t j = 0; j < len; j++) ob[j] += c * row[j];
        }
        gd += fs_lbfgs_dot(ob, g + a, len);
        dd += fs_lbfgs_dot(ob, ob, len);
    }
    dots[0] += gd;
    dots[1] += dd;
}

/* out = x + stp (scale d) over the range (scale NULL: ones) */
static void fs_lbfgs_axpy(const double *restrict x, double stp, const double *restrict d,
                          const double *restrict scale, ptrdiff_t lo, ptrdiff_t hi,
                          double *restrict out)
{
    if (scale)
        for (ptrdiff_t j = lo; j < hi; j++) out[j] = x[j] + stp * (scale[j] * d[j]);
    else
        for (ptrdiff_t j = lo; j < hi; j++) out[j] = x[j] + stp * d[j];
}

/* out = scale src over the range (scale NULL: ones); dots[0] += out . d and dots[1] =
 * max(dots[1], max |src|) */
static void fs_lbfgs_copy_dot(const double *restrict src, const double *restrict d,
                              const double *restrict scale, ptrdiff_t lo, ptrdiff_t hi,
                              double *restrict out, double *restrict dots)
{
    double gmax = dots[1];
    for (ptrdiff_t j = lo; j < hi; j++) {
        const double v = fabs(src[j]);
        gmax = v > gmax ? v : gmax;
        out[j] = scale ? scale[j] * src[j] : src[j];
    }
    dots[0] += fs_lbfgs_dot(out + lo, d + lo, hi - lo);
    dots[1] = gmax;
}

#endif /* FS_LBFGS_H */
