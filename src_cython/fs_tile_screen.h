/* Screening of pass A of the tiled regime of softmax_ce_sums (float32, many
 * classes): an exact upper and lower bound of every logit of a (row, class
 * tile), from a bfloat16 product on the AMX tiles (Intel Sapphire Rapids and
 * later: about 14x the float32 FMA rate of a core), so that pass A computes
 * in float32 only the (row, tile) pairs that can matter.
 *
 * The bound.  With x~ and w~ the bfloat16 roundings (to nearest) of x and w,
 * dx = x~ - x and dw = w~ - w: x~ . w~ - x . w = dx . w~ + x . dw, at most
 * ||dx|| ||w~|| + ||x|| ||dw|| (Cauchy-Schwarz; the norms are computed in
 * double from the bfloat16 values themselves).  The tiles add the exact
 * products in float32 (unit roundoff 2^-24) with at most 2 d' + 2 roundings
 * on each path (d' = d rounded up to 32): within gamma sum |x~_j w~_j| <=
 * gamma ||x~|| ||w~||, gamma = (2 d' + 2) 2^-24 / (1 - (2 d' + 2) 2^-24).  So
 *     |z^ - x . w| <= (1 + 1e-4) (||dx|| ||w~|| + ||x|| ||dw|| + gamma ||x~|| ||w~||) + a,
 * with a = 2^-124 (d' + sqrt(d') (||w~|| + ||x~||)) for the denormals the
 * tiles treat as zero (inputs and outputs), 1e-4 for the rounding of the
 * norms and of the bound itself.  Rows or weights whose norms exceed 1e30
 * (where bfloat16 could overflow) or are not finite are not screened.
 *
 * Layouts: the block's rows, Xs, in the pairs layout of the tiles' second
 * operand: group g of 16 rows, chunk k of 32 features, pair p, row q:
 * Xs[((g nk + k) 16 + p) 32 + 2 q + e] = bf16(X[16 g + q][32 k + 2 p + e]);
 * a tile's weights, Wb (classes rounded up to 16, d'), row-major, zero-padded.
 */
#ifndef FS_TILE_SCREEN_H
#define FS_TILE_SCREEN_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && \
    (__GNUC__ >= 11 || (defined(__clang__) && __clang_major__ >= 12))
#define FS_SCREEN_AMX 1
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FS_SCREEN_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw")))
#define FS_SCREEN_NORM_TARGET __attribute__((target("avx512f")))
#else
#define FS_SCREEN_NORM_TARGET
#define FS_SCREEN_AMX 0
#define FS_SCREEN_TARGET
#endif

#define FS_SCREEN_LIMIT 1e30 /* norms beyond this are not screened */

static int fs_screen_state = -1;

/* 1 when this CPU has the AMX bfloat16 tiles and the kernel lets the process
 * use them (Linux asks for the permission once, ARCH_REQ_XCOMP_PERM); else 0.
 * Call it once before the threads use the tiles. */
static int fs_screen_available(void)
{
#if FS_SCREEN_AMX
    if (fs_screen_state < 0) {
        unsigned int a, b, c, d;
        int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24));
        /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 */
        if (ok) ok = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
        fs_screen_state = ok;
    }
    return fs_screen_state;
#else
    return 0;
#endif
}

static inline Py_ssize_t fs_screen_dpad(Py_ssize_t d) { return (d + 31) / 32 * 32; }

/* gamma of the bound above for d features */
static double fs_screen_gamma(Py_ssize_t d)
{
    const double r = (double)(2 * fs_screen_dpad(d) + 2) * ldexp(1.0, -24);
    return r / (1 - r);
}

static inline uint16_t fs_bf16(float x);

/* For each row i of A (rows at stride ld, d entries): out[3 i] = ||a_i||,
 * out[3 i + 1] = ||a~_i||, out[3 i + 2] = ||a~_i - a_i|| (a~ its bfloat16
 * rounding), summed in double */
static FS_SCREEN_NORM_TARGET void fs_screen_norms(const float *A, Py_ssize_t n, Py_ssize_t d,
                                                  Py_ssize_t ld, double *out)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *a = A + i * ld;
        Py_ssize_t j = 0;
        double s = 0, st = 0, sd = 0;
#if FS_SCREEN_AMX
        const __m256i half = _mm256_set1_epi32(0x7FFF), one = _mm256_set1_epi32(1);
        const __m256i high = _mm256_set1_epi32((int)0xFFFF0000u);
        __m512d s0 = _mm512_setzero_pd(), t0 = _mm512_setzero_pd(), d0 = _mm512_setzero_pd();
        for (; j + 8 <= d; j += 8) {
            const __m256 x = _mm256_loadu_ps(a + j);
            __m256i u = _mm256_castps_si256(x);
            u = _mm256_and_si256(_mm256_add_epi32(_mm256_add_epi32(u, half),
                                                  _mm256_and_si256(_mm256_srli_epi32(u, 16), one)),
                                 high); /* fs_bf16, back as a float */
            const __m512d xd = _mm512_cvtps_pd(x), td = _mm512_cvtps_pd(_mm256_castsi256_ps(u));
            const __m512d dd = _mm512_sub_pd(td, xd);
            s0 = _mm512_fmadd_pd(xd, xd, s0);
            t0 = _mm512_fmadd_pd(td, td, t0);
            d0 = _mm512_fmadd_pd(dd, dd, d0);
        }
        s = _mm512_reduce_add_pd(s0);
        st = _mm512_reduce_add_pd(t0);
        sd = _mm512_reduce_add_pd(d0);
#endif
        for (; j < d; j++) {
            uint32_t u = (uint32_t)fs_bf16(a[j]) << 16;
            float t;
            memcpy(&t, &u, 4);
            s += (double)a[j] * a[j];
            st += (double)t * t;
            sd += ((double)t - a[j]) * ((double)t - a[j]);
        }
        out[3 * i] = sqrt(s);
        out[3 * i + 1] = sqrt(st);
        out[3 * i + 2] = sqrt(sd);
    }
}

static inline uint16_t fs_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* to nearest, ties to even */
}

#if FS_SCREEN_AMX
/* Xs (see the layout above) from h rows of X (stride ldx), zero rows up to mp (a
 * multiple of 16) and zero features up to d' */
static FS_SCREEN_TARGET void fs_screen_pack_rows(const float *X, Py_ssize_t ldx, Py_ssize_t h,
                                                 Py_ssize_t d, Py_ssize_t mp, uint16_t *Xs)
{
    const Py_ssize_t nk = fs_screen_dpad(d) / 32;
    for (Py_ssize_t g = 0; g < mp / 16; g++)
        for (Py_ssize_t k = 0; k < nk; k++) {
            uint16_t *out = Xs + (g * nk + k) * 512;
            for (Py_ssize_t p = 0; p < 16; p++)
                for (Py_ssize_t q = 0; q < 16; q++)
                    for (Py_ssize_t e = 0; e < 2; e++) {
                        const Py_ssize_t i = 16 * g + q, j = 32 * k + 2 * p + e;
                        out[p * 32 + 2 * q + e] = i < h && j < d ? fs_bf16(X[i * ldx + j]) : 0;
                    }
        }
}

typedef struct {
    uint8_t palette, start;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fs_screen_config;

/* W's rows c < tc (stride d) in bfloat16 into Wb (tcp x d', row-major), zero-padded */
static FS_SCREEN_TARGET void fs_screen_pack_weights(const float *W, Py_ssize_t tc, Py_ssize_t d,
                                                    uint16_t *Wb)
{
    const Py_ssize_t dp = fs_screen_dpad(d), tcp = (tc + 15) / 16 * 16;
    const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    for (Py_ssize_t c = 0; c < tcp; c++)
        for (Py_ssize_t j = 0; j < dp; j += 16) {
            __m512i u = _mm512_setzero_si512();
            if (c < tc && j < d) {
                const __mmask16 k = d - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (d - j)) - 1);
                u = _mm512_castps_si512(_mm512_maskz_loadu_ps(k, W + c * d + j));
                /* to nearest, ties to even (fs_bf16) */
                u = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, half),
                                                       _mm512_and_si512(_mm512_srli_epi32(u, 16), one)),
                                      16);
            }
            _mm256_storeu_si256((__m256i *)(Wb + c * dp + j), _mm512_cvtepi32_epi16(u));
        }
}

/* For the mp rows of Xs (norms rn, 3 a row as fs_screen_norms gives them;
 * rn[3 i] < 0: not screened) and the tc classes of W (rows at stride d),
 * intercepts b, norms cn (3 a class): ub[i] >= max_c x_i . w_c + b_c
 * >= lb[i] (+inf / -inf for the rows not screened), from, for each group of 16
 * classes, m_i = max_c (z^_ic + b_c) (float: within 2^-24 |m_i| of the exact
 * max) and the bound above with the group's largest norm; chunks of 64 rows.
 * Scratch: Wb (tc rounded up to 16) x d' bfloat16, Zs (same classes) x 64
 * floats, both aligned to 64 bytes. */
static FS_SCREEN_TARGET void fs_screen_tile(const uint16_t *Xs, Py_ssize_t mp, Py_ssize_t d,
                                            const float *W, const float *b, Py_ssize_t tc,
                                            const double *cn, const double *rn, double gamma,
                                            uint16_t *Wb, float *Zs, double *ub, double *lb)
{
    const Py_ssize_t dp = fs_screen_dpad(d), nk = dp / 32, tcp = (tc + 15) / 16 * 16;
    const Py_ssize_t ng = tcp / 16;
    fs_screen_pack_weights(W, tc, d, Wb);
    fs_screen_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) {
        cfg.colsb[t] = 64;
        cfg.rows[t] = 16;
    }
    _tile_loadconfig(&cfg);
    /* every float operation below rounds within 2^-24: covered by the bound's 1e-4
     * and by `lost` (2^-21 |m|, for the rounding of z^ + b and of m + e) */
    const float lost = ldexp(1.0f, -21), up1 = 1 + ldexp(1.0f, -22), margin = 1 + 1e-4f;
    const double root = sqrt((double)dp);
    for (Py_ssize_t i0 = 0; i0 < mp; i0 += 64) { /* chunks of 64 rows: Zs (tcp, 64) */
        const Py_ssize_t rg = (mp - i0 >= 64 ? 64 : mp - i0) / 16, g0 = i0 / 16;
        for (Py_ssize_t n = 0; n < ng; n += 2)
            for (Py_ssize_t g = 0; g < rg; g += 2) {
                const int two_n = n + 1 < ng, two_g = g + 1 < rg;
                _tile_zero(0);
                _tile_zero(1);
                _tile_zero(2);
                _tile_zero(3);
                for (Py_ssize_t k = 0; k < nk; k++) {
                    _tile_loadd(4, Wb + n * 16 * dp + k * 32, dp * 2);
                    _tile_loadd(6, Xs + ((g0 + g) * nk + k) * 512, 64);
                    _tile_dpbf16ps(0, 4, 6);
                    if (two_g) {
                        _tile_loadd(7, Xs + ((g0 + g + 1) * nk + k) * 512, 64);
                        _tile_dpbf16ps(1, 4, 7);
                    }
                    if (two_n) {
                        _tile_loadd(5, Wb + (n + 1) * 16 * dp + k * 32, dp * 2);
                        _tile_dpbf16ps(2, 5, 6);
                        if (two_g) _tile_dpbf16ps(3, 5, 7);
                    }
                }
                _tile_stored(0, Zs + n * 16 * 64 + g * 16, 64 * 4);
                if (two_g) _tile_stored(1, Zs + n * 16 * 64 + (g + 1) * 16, 64 * 4);
                if (two_n) _tile_stored(2, Zs + (n + 1) * 16 * 64 + g * 16, 64 * 4);
                if (two_n && two_g) _tile_stored(3, Zs + (n + 1) * 16 * 64 + (g + 1) * 16, 64 * 4);
            }
        __m512 xn[4], xt[4], dx[4], up[4], lo[4], m[4]; /* 4 vectors of rows in registers */
        const int nv = (int)rg;
        for (int v = 0; v < nv; v++) {
            float f[3][16];
            for (int q = 0; q < 16; q++)
                for (int k = 0; k < 3; k++) {
                    const double x = rn[3 * (i0 + 16 * v + q) + k];
                    f[k][q] = x > 0 ? (float)x * up1 : 0; /* rounded up */
                }
            xn[v] = _mm512_loadu_ps(f[0]);
            xt[v] = _mm512_loadu_ps(f[1]);
            dx[v] = _mm512_loadu_ps(f[2]);
            up[v] = lo[v] = _mm512_set1_ps(-INFINITY);
        }
        for (Py_ssize_t c0 = 0; c0 < tc; c0 += 16) {
            const Py_ssize_t c1 = tc - c0 < 16 ? tc : c0 + 16;
            double wt = 0, dw = 0;
            for (int v = 0; v < nv; v++) m[v] = _mm512_set1_ps(-INFINITY);
            for (Py_ssize_t c = c0; c < c1; c++) {
                const __m512 bc = _mm512_set1_ps(b[c]);
                wt = cn[3 * c + 1] > wt ? cn[3 * c + 1] : wt;
                dw = cn[3 * c + 2] > dw ? cn[3 * c + 2] : dw;
                for (int v = 0; v < nv; v++)
                    m[v] = _mm512_max_ps(m[v], _mm512_add_ps(_mm512_load_ps(Zs + c * 64 + 16 * v), bc));
            }
            /* (1 + 1e-4) (dx wt + xn dw + gamma xt wt) + a, with the group's largest norms */
            const __m512 kw = _mm512_set1_ps((float)wt * up1 * margin);
            const __m512 kd = _mm512_set1_ps((float)dw * up1 * margin);
            const __m512 kg = _mm512_set1_ps((float)(gamma * wt) * up1 * margin);
            const __m512 ka = _mm512_set1_ps((float)(ldexp(1.0, -124) * root) * 2);
            const __m512 a = _mm512_set1_ps((float)(ldexp(1.0, -124) * ((double)dp + root * wt)) * 2);
            for (int v = 0; v < nv; v++) {
                __m512 e = _mm512_fmadd_ps(dx[v], kw, _mm512_fmadd_ps(xn[v], kd, _mm512_fmadd_ps(xt[v], kg, a)));
                e = _mm512_fmadd_ps(ka, xt[v], e);
                e = _mm512_fmadd_ps(_mm512_set1_ps(lost), _mm512_abs_ps(m[v]), e);
                up[v] = _mm512_max_ps(up[v], _mm512_add_ps(m[v], e));
                lo[v] = _mm512_max_ps(lo[v], _mm512_sub_ps(m[v], e));
            }
        }
        for (int v = 0; v < nv; v++) {
            float u16[16], l16[16];
            _mm512_storeu_ps(u16, up[v]);
            _mm512_storeu_ps(l16, lo[v]);
            for (int q = 0; q < 16; q++) {
                const Py_ssize_t i = i0 + 16 * v + q;
                ub[i] = rn[3 * i] < 0 ? INFINITY : u16[q];
                lb[i] = rn[3 * i] < 0 ? -INFINITY : l16[q];
            }
        }
    }
    _tile_release();
}
#else
static void fs_screen_pack_rows(const float *X, Py_ssize_t ldx, Py_ssize_t h, Py_ssize_t d,
                                Py_ssize_t mp, uint16_t *Xs) {}
static void fs_screen_tile(const uint16_t *Xs, Py_ssize_t mp, Py_ssize_t d, const float *W,
                           const float *b, Py_ssize_t tc, const double *cn, const double *rn,
                           double gamma, uint16_t *Wb, float *Zs, double *ub, double *lb)
{
    for (Py_ssize_t i = 0; i < mp; i++) {
        ub[i] = INFINITY;
        lb[i] = -INFINITY;
    }
}
#endif

#endif
