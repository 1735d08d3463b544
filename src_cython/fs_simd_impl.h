/* Template body of the SIMD kernels: included by fs_simd.h once per
 * (element type, instruction set).  Before including, define:
 *   FS_T       element type (float or double)
 *   FS_I       signed integer of the same width (int32_t or int64_t)
 *   FS_VBYTES  bytes per vector (16, 32 or 64)
 *   FS_SUF     name suffix, e.g. f32_avx512
 *   FS_TARGET  function attribute selecting the instruction set (may be empty)
 *   FS_F32     1 for float, 0 for double
 * Everything is written with GCC/Clang vector extensions, so one body gives
 * SSE2, AVX2 and AVX-512 code depending on FS_TARGET and FS_V.
 */

#define FS_CAT_(a, b) a##_##b
#define FS_CAT(a, b) FS_CAT_(a, b)
#define FN(name) FS_CAT(name, FS_SUF)
#define VF FN(vf)
#define VI FN(vi)
#define VFU FN(vfu)
#define FS_V (FS_VBYTES / (FS_F32 ? 4 : 8))
#define FS_DEF static inline __attribute__((always_inline, unused)) FS_TARGET

typedef FS_T VF __attribute__((vector_size(FS_V * sizeof(FS_T))));
typedef FS_I VI __attribute__((vector_size(FS_V * sizeof(FS_T))));
/* unaligned, aliasing views of T and uint8 memory */
typedef FS_T VFU __attribute__((vector_size(FS_V * sizeof(FS_T)), aligned(1), may_alias));

FS_DEF VF FN(load)(const FS_T *p) { return *(const VFU *)p; }
FS_DEF void FN(store)(FS_T *p, VF v) { *(VFU *)p = v; }
/* a - 0 folds to a broadcast, unlike 0 + a (which must turn -0 into +0) */
FS_DEF VF FN(splat)(FS_T a) { return a - (VF){0}; }
FS_DEF VF FN(blend)(VI mask, VF a, VF b) { return (VF)(((VI)a & mask) | ((VI)b & ~mask)); }

/* uint8 pixels widened to T in registers: a quarter of the memory traffic.
 * Intrinsics, because compilers scalarise a generic u8 -> float conversion. */
FS_DEF VF FN(load_u8)(const unsigned char *p)
{
#if FS_X86 && FS_VBYTES == 64 && FS_F32
    return (VF)_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)));
#elif FS_X86 && FS_VBYTES == 64
    return (VF)_mm512_cvtepi32_pd(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
#elif FS_X86 && FS_VBYTES == 32 && FS_F32
    return (VF)_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p)));
#elif FS_X86 && FS_VBYTES == 32
    int32_t b4;
    memcpy(&b4, p, 4);
    return (VF)_mm256_cvtepi32_pd(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(b4)));
#elif FS_X86 && FS_VBYTES == 16 && FS_F32
    int32_t b4;
    memcpy(&b4, p, 4);
    __m128i z = _mm_setzero_si128();
    return (VF)_mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(b4), z), z));
#elif FS_X86 && FS_VBYTES == 16
    __m128i z = _mm_setzero_si128();
    __m128i v = _mm_cvtsi32_si128((int)p[0] | ((int)p[1] << 16));
    return (VF)_mm_cvtepi32_pd(_mm_unpacklo_epi16(v, z));
#else
    VF v;
    for (int l = 0; l < FS_V; l++) v[l] = (FS_T)p[l];
    return v;
#endif
}

typedef FS_T FN(v8) __attribute__((vector_size(8 * sizeof(FS_T))));
typedef FS_T FN(v4) __attribute__((vector_size(4 * sizeof(FS_T))));

/* horizontal sum by halving in registers */
FS_DEF FS_T FN(hsum)(VF v)
{
#if FS_V == 16
    union { VF v; FN(v8) h[2]; } a = {v};
    FN(v8) s8 = a.h[0] + a.h[1];
#elif FS_V == 8
    FN(v8) s8 = v;
#endif
#if FS_V >= 8
    union { FN(v8) v; FN(v4) h[2]; } b = {s8};
    FN(v4) s4 = b.h[0] + b.h[1];
#elif FS_V == 4
    FN(v4) s4 = v;
#endif
#if FS_V >= 4
    return (s4[0] + s4[2]) + (s4[1] + s4[3]);
#else
    return v[0] + v[1];
#endif
}

/* Vector exp, accurate to ~1 ulp: Cody-Waite reduction x = n ln2 + r,
 * |r| <= ln2/2, a polynomial for exp(r), and 2^n applied as two factors
 * 2^(n/2) 2^(n - n/2) so that overflow gives +inf and results in the
 * subnormal range are right.  NaN propagates, -inf gives 0. */
FS_DEF VF FN(vexp)(VF x)
{
#if FS_F32
    const FS_T hi = 89.0f, lo = -104.0f, under = -103.98f;
    const FS_T magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const FS_T log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const int mant = 23, bias = 127;
#else
    const FS_T hi = 710.0, lo = -746.0, under = -745.2;
    const FS_T magic = 6755399441055744.0; /* 1.5 * 2^52 */
    const FS_T log2e = 1.4426950408889634074, ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
    const int mant = 52, bias = 1023;
#endif
    VF xc = FN(blend)(x > FN(splat)(hi), FN(splat)(hi), x);
    xc = FN(blend)(xc < FN(splat)(lo), FN(splat)(lo), xc);
    xc = FN(blend)(xc == xc, xc, FN(splat)(0)); /* NaN: computed on 0, fixed below */
    VF t = xc * log2e + magic;
    VF n = t - magic;
    VI ni = (VI)t - (VI)FN(splat)(magic);
    VF r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
#if FS_F32
    VF z = r * r;
    VF p = (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r
              + 4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * z + r + 1.0f;
#else
    /* Taylor series to degree 13: truncation error < 1e-17 on |r| <= ln2/2 */
    VF p = FN(splat)(1.0 / 6227020800.0);
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * (r * r) + r + 1.0;
#endif
    VI n1 = ni >> 1;
    VI n2 = ni - n1;
    VF s1 = (VF)((n1 + bias) << mant);
    VF s2 = (VF)((n2 + bias) << mant);
    VF res = (p * s1) * s2;
    res = FN(blend)(x < FN(splat)(under), FN(splat)(0), res);
    return FN(blend)(x == x, res, x);
}

/* ---------------------------------------------------------------- rows */

/* Max of a row, ignoring NaN (a NaN row still gives NaN results because the
 * NaN goes through exp); -inf for an empty row. */
static FS_TARGET FS_T FN(row_max)(const FS_T *x, Py_ssize_t k)
{
    Py_ssize_t j = 0;
    FS_T m = -(FS_T)INFINITY;
    if (k >= FS_V) {
        VF a = FN(splat)(-(FS_T)INFINITY), b = a;
        for (; j + 2 * FS_V <= k; j += 2 * FS_V) {
            VF u = FN(load)(x + j), w = FN(load)(x + j + FS_V);
            a = FN(blend)(u > a, u, a);
            b = FN(blend)(w > b, w, b);
        }
        for (; j + FS_V <= k; j += FS_V) {
            VF u = FN(load)(x + j);
            a = FN(blend)(u > a, u, a);
        }
        a = FN(blend)(b > a, b, a);
        for (int l = 0; l < FS_V; l++) m = a[l] > m ? a[l] : m;
    }
    for (; j < k; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* sum_j exp(x_j - shift); writes the exponentials to out unless out is NULL.
 * out may be x. */
static FS_TARGET FS_T FN(row_expsum)(const FS_T *x, FS_T shift, FS_T *out, Py_ssize_t k)
{
    Py_ssize_t j = 0;
    VF sh = FN(splat)(shift), acc0 = {0}, acc1 = {0};
    for (; j + 2 * FS_V <= k; j += 2 * FS_V) {
        VF e0 = FN(vexp)(FN(load)(x + j) - sh);
        VF e1 = FN(vexp)(FN(load)(x + j + FS_V) - sh);
        if (out) { FN(store)(out + j, e0); FN(store)(out + j + FS_V, e1); }
        acc0 += e0;
        acc1 += e1;
    }
    if (j + FS_V <= k) {
        VF e0 = FN(vexp)(FN(load)(x + j) - sh);
        if (out) FN(store)(out + j, e0);
        acc0 += e0;
        j += FS_V;
    }
    if (j < k) { /* tail: pad with -inf, whose exp is 0 */
        union { VF v; FS_T a[FS_V]; } u;
        u.v = FN(splat)(-(FS_T)INFINITY);
        for (Py_ssize_t t = j; t < k; t++) u.a[t - j] = x[t];
        u.v = FN(vexp)(u.v - sh);
        if (out) for (Py_ssize_t t = j; t < k; t++) out[t] = u.a[t - j];
        acc1 += u.v;
    }
    return FN(hsum)(acc0 + acc1);
}

FS_DEF FS_T FN(finite_or_zero)(FS_T m) { return (m - m == 0) ? m : 0; }

static FS_TARGET void FN(softmax_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    for (Py_ssize_t i = 0; i < n; i++, x += k, out += k) {
        FS_T sh = FN(finite_or_zero)(FN(row_max)(x, k));
        FS_T inv = (FS_T)1 / FN(row_expsum)(x, sh, out, k);
        Py_ssize_t j = 0;
        VF vinv = FN(splat)(inv);
        for (; j + FS_V <= k; j += FS_V) FN(store)(out + j, FN(load)(out + j) * vinv);
        for (; j < k; j++) out[j] *= inv;
    }
}

static FS_TARGET void FN(log_softmax_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    for (Py_ssize_t i = 0; i < n; i++, x += k, out += k) {
        FS_T sh = FN(finite_or_zero)(FN(row_max)(x, k));
        FS_T ls = (FS_T)FS_LOG(FN(row_expsum)(x, sh, NULL, k));
        Py_ssize_t j = 0;
        VF vsh = FN(splat)(sh), vls = FN(splat)(ls);
        for (; j + FS_V <= k; j += FS_V) FN(store)(out + j, (FN(load)(x + j) - vsh) - vls);
        for (; j < k; j++) out[j] = (x[j] - sh) - ls;
    }
}

static FS_TARGET void FN(logsumexp_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    for (Py_ssize_t i = 0; i < n; i++, x += k) {
        FS_T sh = FN(finite_or_zero)(FN(row_max)(x, k));
        out[i] = (FS_T)FS_LOG(FN(row_expsum)(x, sh, NULL, k)) + sh;
    }
}

/* Softmax cross-entropy on a block of logits Z (n, C), in place: row i
 * becomes s_i (softmax(z_i) - e_{y_i}) (s_i = sw[i], or 1 if sw is NULL),
 * its columns are added to db, and sum_i s_i CE_i is returned. */
static FS_TARGET double FN(ce_residual_rows)(FS_T *Z, Py_ssize_t n, Py_ssize_t C,
                                             const Py_ssize_t *y, const FS_T *sw, double *db)
{
    double loss = 0;
    for (Py_ssize_t i = 0; i < n; i++, Z += C) {
        FS_T s = sw ? sw[i] : (FS_T)1;
        FS_T sh = FN(finite_or_zero)(FN(row_max)(Z, C));
        FS_T zy = Z[y[i]];
        FS_T sum = FN(row_expsum)(Z, sh, Z, C);
        FS_T lse = (FS_T)FS_LOG(sum) + sh;
        loss += (double)s * (double)(lse - zy);
        FS_T scale = s / sum;
        for (Py_ssize_t c = 0; c < C; c++) Z[c] *= scale;
        Z[y[i]] -= s;
        for (Py_ssize_t c = 0; c < C; c++) db[c] += Z[c];
    }
    return loss;
}

/* exp of a flat array, for tests of the vector exp against numpy */
static FS_TARGET void FN(exp_array)(const FS_T *x, FS_T *out, Py_ssize_t n)
{
    Py_ssize_t j = 0;
    for (; j + FS_V <= n; j += FS_V) FN(store)(out + j, FN(vexp)(FN(load)(x + j)));
    if (j < n) {
        union { VF v; FS_T a[FS_V]; } u;
        u.v = FN(splat)(0);
        for (Py_ssize_t t = j; t < n; t++) u.a[t - j] = x[t];
        u.v = FN(vexp)(u.v);
        for (Py_ssize_t t = j; t < n; t++) out[t] = u.a[t - j];
    }
}

/* ----------------------------------------------- block matrix products */
#define FS_XT FS_T
#define FS_XS f
#define FS_LOADX FN(load)
#include "fs_gemm_impl.h"
#undef FS_XT
#undef FS_XS
#undef FS_LOADX

#define FS_XT unsigned char
#define FS_XS u8
#define FS_LOADX FN(load_u8)
#include "fs_gemm_impl.h"
#undef FS_XT
#undef FS_XS
#undef FS_LOADX

#undef FN
#undef VF
#undef VI
#undef VFU
#undef FS_DEF
#undef FS_V
