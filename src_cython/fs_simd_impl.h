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
typedef FS_I FN(v8i) __attribute__((vector_size(8 * sizeof(FS_T))));
typedef FS_I FN(v4i) __attribute__((vector_size(4 * sizeof(FS_T))));

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

/* out[k] = hsum(v[k]) for k < K, bit for bit: the halving steps of hsum done
 * for up to FS_V vectors at once by a transposing tree (the halves of two
 * vectors are shuffled into one before each addition), with a third of the
 * shuffles and additions of K separate sums.  The epilogue of the forward
 * tiles of fs_gemm_impl.h, which sum 10 vectors a row.  K is a constant of
 * the (inlined) caller. */
FS_DEF void FN(hsum_many)(const VF *v, const int K, FS_T *out)
{
#if FS_X86 && FS_VBYTES == 64
    if (K > 1 && K <= FS_V) {
#if FS_F32
        /* u: 8-lane halves of two vectors; w: 4-lane quarters of four (w[q]'s
         * 128-bit lane L is v[4q + L]); x, y: the last two steps within
         * 128-bit lanes, so y's lane 4L + e is hsum(v[4e + L]).  A missing
         * partner is the vector itself (its lanes are never read). */
        __m512 u[8], w[4], x[2];
        const int K1 = (K + 1) / 2, K2 = (K1 + 1) / 2, K3 = (K2 + 1) / 2;
        for (int p = 0; p < K1; p++) {
            __m512 a = (__m512)v[2 * p], b = (__m512)v[2 * p + 1 < K ? 2 * p + 1 : 2 * p];
            u[p] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
        }
        for (int q = 0; q < K2; q++) {
            __m512 a = u[2 * q], b = u[2 * q + 1 < K1 ? 2 * q + 1 : 2 * q];
            w[q] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
        }
        for (int r = 0; r < K3; r++) {
            __m512 a = w[2 * r], b = w[2 * r + 1 < K2 ? 2 * r + 1 : 2 * r];
            x[r] = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x44), _mm512_shuffle_ps(a, b, 0xEE));
        }
        __m512 a = x[0], b = x[K3 > 1 ? 1 : 0];
        __m512 y = _mm512_add_ps(_mm512_shuffle_ps(a, b, 0x88), _mm512_shuffle_ps(a, b, 0xDD));
        /* lane k <- lane 4 (k % 4) + k / 4 */
        const __m512i order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
        union { __m512 v; FS_T a[16]; } sums = {_mm512_permutexvar_ps(order, y)};
#else
        /* hsum of 8 doubles starts at its 4-lane halves: u[p] holds those of
         * v[2p] and v[2p + 1], w[q]'s 128-bit lane L the pair sums of v[4q + L],
         * y's lane 2L + e is hsum(v[4e + L]) */
        __m512d u[4], w[2];
        const int K1 = (K + 1) / 2, K2 = (K1 + 1) / 2;
        for (int p = 0; p < K1; p++) {
            __m512d a = (__m512d)v[2 * p], b = (__m512d)v[2 * p + 1 < K ? 2 * p + 1 : 2 * p];
            u[p] = _mm512_add_pd(_mm512_shuffle_f64x2(a, b, 0x44), _mm512_shuffle_f64x2(a, b, 0xEE));
        }
        for (int q = 0; q < K2; q++) {
            __m512d a = u[2 * q], b = u[2 * q + 1 < K1 ? 2 * q + 1 : 2 * q];
            w[q] = _mm512_add_pd(_mm512_shuffle_f64x2(a, b, 0x88), _mm512_shuffle_f64x2(a, b, 0xDD));
        }
        __m512d a = w[0], b = w[K2 > 1 ? 1 : 0];
        __m512d y = _mm512_add_pd(_mm512_shuffle_pd(a, b, 0x00), _mm512_shuffle_pd(a, b, 0xFF));
        /* lane k <- lane 2 (k % 4) + k / 4 */
        const __m512i order = _mm512_set_epi64(7, 5, 3, 1, 6, 4, 2, 0);
        union { __m512d v; FS_T a[8]; } sums = {_mm512_permutexvar_pd(order, y)};
#endif
        for (int k = 0; k < K; k++) out[k] = sums.a[k];
        return;
    }
#endif
    for (int k = 0; k < K; k++) out[k] = FN(hsum)(v[k]);
}

/* The first k < FS_V lanes of p, the others set to fill (masked loads on
 * AVX2 / AVX-512: no reads past the end of a row, no scalar tail loops). */
FS_DEF VF FN(load_part)(const FS_T *p, Py_ssize_t k, FS_T fill)
{
#if FS_X86 && FS_VBYTES == 64 && FS_F32
    return (VF)_mm512_mask_loadu_ps(_mm512_set1_ps(fill), (__mmask16)((1u << k) - 1), p);
#elif FS_X86 && FS_VBYTES == 64
    return (VF)_mm512_mask_loadu_pd(_mm512_set1_pd(fill), (__mmask8)((1u << k) - 1), p);
#elif FS_X86 && FS_VBYTES == 32 && FS_F32
    __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return (VF)_mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
#elif FS_X86 && FS_VBYTES == 32
    __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
    return (VF)_mm256_blendv_pd(_mm256_set1_pd(fill), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
#else
    union { VF v; FS_T a[FS_V]; } u;
    u.v = FN(splat)(fill);
    for (Py_ssize_t l = 0; l < k; l++) u.a[l] = p[l];
    return u.v;
#endif
}

FS_DEF void FN(store_part)(FS_T *p, VF v, Py_ssize_t k)
{
#if FS_X86 && FS_VBYTES == 64 && FS_F32
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << k) - 1), (__m512)v);
#elif FS_X86 && FS_VBYTES == 64
    _mm512_mask_storeu_pd(p, (__mmask8)((1u << k) - 1), (__m512d)v);
#elif FS_X86 && FS_VBYTES == 32 && FS_F32
    __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(p, m, (__m256)v);
#elif FS_X86 && FS_VBYTES == 32
    __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(k), _mm256_setr_epi64x(0, 1, 2, 3));
    _mm256_maskstore_pd(p, m, (__m256d)v);
#else
    union { VF v; FS_T a[FS_V]; } u;
    u.v = v;
    for (Py_ssize_t l = 0; l < k; l++) p[l] = u.a[l];
#endif
}

/* lane-wise max that ignores NaN in a (the running max never becomes NaN) */
FS_DEF VF FN(vmax)(VF m, VF a) { return FN(blend)(a > m, a, m); }

/* horizontal max by halving (of vmax results, which hold no NaN) */
#define FS_HALFMAX(T, TI, lo, hi) ((T)(((TI)(hi) & ((hi) > (lo))) | ((TI)(lo) & ~((hi) > (lo)))))
FS_DEF FS_T FN(hmax)(VF v)
{
#if FS_V == 16
    union { VF v; FN(v8) h[2]; } a = {v};
    FN(v8) s8 = FS_HALFMAX(FN(v8), FN(v8i), a.h[0], a.h[1]);
#elif FS_V == 8
    FN(v8) s8 = v;
#endif
#if FS_V >= 8
    union { FN(v8) v; FN(v4) h[2]; } b = {s8};
    FN(v4) s4 = FS_HALFMAX(FN(v4), FN(v4i), b.h[0], b.h[1]);
#elif FS_V == 4
    FN(v4) s4 = v;
#endif
#if FS_V >= 4
    FS_T m0 = s4[0] > s4[2] ? s4[0] : s4[2], m1 = s4[1] > s4[3] ? s4[1] : s4[3];
    return m0 > m1 ? m0 : m1;
#else
    return v[0] > v[1] ? v[0] : v[1];
#endif
}

/* Vector exp, accurate to ~1 ulp: Cody-Waite reduction x = n ln2 + r,
 * |r| <= ln2/2, a polynomial for exp(r), and 2^n applied as two factors
 * 2^(n/2) 2^(n - n/2) so that overflow gives +inf and results in the
 * subnormal range are right.  NaN propagates, -inf gives 0. */
/* exp(r) for |r| <= ln2/2, the reduced argument of both vexp versions below:
 * Cephes' minimax polynomial (float) or the Taylor series to degree 13
 * (double: truncation error < 1e-17). */
FS_DEF VF FN(exp_reduced)(VF r)
{
#if FS_F32
    return (((((1.9875691500E-4f * r + 1.3981999507E-3f) * r + 8.3334519073E-3f) * r
              + 4.1665795894E-2f) * r + 1.6666665459E-1f) * r + 5.0000001201E-1f) * (r * r) + r + 1.0f;
#else
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
    return p * (r * r) + r + 1.0;
#endif
}

#if FS_X86 && FS_VBYTES == 64
/* AVX-512: vscalefps applies 2^n in one instruction, with the right
 * overflow (inf) and subnormal results; lanes below the underflow bound
 * (e.g. -inf padding) are masked out so they cost no subnormal assist. */
#if FS_F32
#define FS_PS(name) _mm512_##name##_ps
#define FS_CMP _mm512_cmp_ps_mask
#define FS_VT __m512
#define FS_MASK __mmask16
#else
#define FS_PS(name) _mm512_##name##_pd
#define FS_CMP _mm512_cmp_pd_mask
#define FS_VT __m512d
#define FS_MASK __mmask8
#endif
FS_DEF VF FN(vexp)(VF xv)
{
#if FS_F32
    const FS_T hi = 89.0f, under = -103.98f;
    const FS_T log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
#else
    const FS_T hi = 710.0, under = -745.2;
    const FS_T log2e = 1.4426950408889634074, ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
#endif
    FS_VT x = (FS_VT)xv;
    FS_MASK ok = FS_CMP(x, FS_PS(set1)(under), _CMP_GE_OQ);
    FS_MASK nan = FS_CMP(x, x, _CMP_UNORD_Q);
    FS_VT xc = FS_PS(min)(FS_PS(set1)(hi), x);
    FS_VT n = FS_PS(roundscale)(FS_PS(mul)(xc, FS_PS(set1)(log2e)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    FS_VT r = FS_PS(fnmadd)(n, FS_PS(set1)(ln2_hi), xc);
    r = FS_PS(fnmadd)(n, FS_PS(set1)(ln2_lo), r);
    VF p = FN(exp_reduced)((VF)r);
    FS_VT res = FS_PS(maskz_scalef)(ok, (FS_VT)p, n);
    return (VF)FS_PS(mask_mov)(res, nan, x);
}
#undef FS_PS
#undef FS_CMP
#undef FS_VT
#undef FS_MASK
#else
FS_DEF VF FN(vexp)(VF x)
{
#if FS_F32
    const FS_T hi = 89.0f, under = -103.98f;
    const FS_T magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    const FS_T log2e = 1.44269504088896341f, ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    const int mant = 23, bias = 127;
#else
    const FS_T hi = 710.0, under = -745.2;
    const FS_T magic = 6755399441055744.0; /* 1.5 * 2^52 */
    const FS_T log2e = 1.4426950408889634074, ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
    const int mant = 52, bias = 1023;
#endif
    /* Lanes that underflow to 0 (including -inf, the padding of partial
     * rows) and NaN lanes are computed on 0 and fixed at the end: computing
     * them on the clamp bound would run into slow subnormal arithmetic. */
    VI ok = x >= FN(splat)(under);
    VF xc = FN(blend)(ok, x, FN(splat)(0));
    xc = FN(blend)(xc > FN(splat)(hi), FN(splat)(hi), xc);
    VF t = xc * log2e + magic;
    VF n = t - magic;
    VI ni = (VI)t - (VI)FN(splat)(magic);
    VF r = xc - n * ln2_hi;
    r = r - n * ln2_lo;
    VF p = FN(exp_reduced)(r);
    VI n1 = ni >> 1;
    VI n2 = ni - n1;
    VF s1 = (VF)((n1 + bias) << mant);
    VF s2 = (VF)((n2 + bias) << mant);
    VF res = (p * s1) * s2;
    res = FN(blend)(ok, res, FN(splat)(0));
    return FN(blend)(x == x, res, x);
}
#endif

/* Vector log of a sum of exponentials shifted by their max: x is 0, +inf,
 * NaN or a normal number >= 1 (no subnormal or negative input).  x = 2^e m
 * with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1),
 * |s| <= 0.172, by its odd series (to s^9 in float, s^23 in double: both
 * below half an ulp). */
FS_DEF VF FN(vlog_sum)(VF x)
{
#if FS_F32
    const int mant = 23, bias = 127;
    const FS_I one_bits = 0x3f800000, mant_mask = 0x007fffff;
    const FS_T ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
#else
    const int mant = 52, bias = 1023;
    const FS_I one_bits = 0x3ff0000000000000LL, mant_mask = 0x000fffffffffffffLL;
    const FS_T ln2_hi = 0.693145751953125, ln2_lo = 1.42860682030941723212e-6;
#endif
    VI bits = (VI)x;
    VF m = (VF)((bits & mant_mask) | one_bits); /* [1, 2) */
    VI big = m > FN(splat)((FS_T)1.41421356237309504880);
    m = FN(blend)(big, m * (FS_T)0.5, m);
    VF e = __builtin_convertvector((bits >> mant) - bias - big, VF); /* big is -1 where true */
    VF s = (m - 1) / (m + 1), s2 = s * s;
#if FS_F32
    VF p = (((FS_T)(1.0 / 9) * s2 + (FS_T)(1.0 / 7)) * s2 + (FS_T)(1.0 / 5)) * s2 + (FS_T)(1.0 / 3);
#else
    VF p = FN(splat)(1.0 / 23);
    for (int k = 21; k >= 3; k -= 2) p = p * s2 + 1.0 / k;
#endif
    VF r = e * ln2_hi + (e * ln2_lo + (s + s * (s2 * p)) * 2);
    r = FN(blend)(x == FN(splat)(0), FN(splat)(-(FS_T)INFINITY), r);
    r = FN(blend)(x == FN(splat)((FS_T)INFINITY), x, r);
    return FN(blend)(x == x, r, x);
}

/* ---------------------------------------------------------------- rows */

/* Max of a row, ignoring NaN (a NaN row still gives NaN results because the
 * NaN goes through exp); -inf for an empty row. */
FS_DEF FS_T FN(row_max)(const FS_T *x, Py_ssize_t k)
{
    Py_ssize_t j = 0;
    VF a = FN(splat)(-(FS_T)INFINITY), b = a;
    for (; j + 2 * FS_V <= k; j += 2 * FS_V) {
        a = FN(vmax)(a, FN(load)(x + j));
        b = FN(vmax)(b, FN(load)(x + j + FS_V));
    }
    if (j + FS_V <= k) {
        a = FN(vmax)(a, FN(load)(x + j));
        j += FS_V;
    }
    if (j < k) b = FN(vmax)(b, FN(load_part)(x + j, k - j, -(FS_T)INFINITY));
    return FN(hmax)(FN(vmax)(a, b));
}

/* sum_j exp(x_j - shift); writes the exponentials to out unless out is NULL
 * (out may be x).  Prefetches the next row, px (read) and po (written; either
 * may be NULL), into L2 meanwhile: this pass is the compute-heavy one, so
 * the next row's memory traffic overlaps it.
 * The exponentials are summed in FS_T lanes over blocks of FS_SUM_BLOCK
 * entries and the block sums in double: plain lane sums of a 10^8-entry
 * float32 row were off by 1e-4 and saturated past 2^29 entries.  Rows of at
 * most one block sum exactly as before (one conversion to double and back). */
#define FS_SUM_BLOCK 4096 /* a multiple of 2 FS_V for every FS_V */
FS_DEF FS_T FN(row_expsum)(const FS_T *x, FS_T shift, FS_T *out, Py_ssize_t k,
                           const FS_T *px, FS_T *po)
{
    Py_ssize_t j = 0;
    VF sh = FN(splat)(shift);
    double total = 0;
    for (;;) {
        VF acc0 = {0}, acc1 = {0};
        Py_ssize_t end = k - j > FS_SUM_BLOCK ? j + FS_SUM_BLOCK : k;
        for (; j + 2 * FS_V <= end; j += 2 * FS_V) {
            for (int t = 0; t < 2 * FS_VBYTES; t += 64) {
                if (px) __builtin_prefetch((const char *)(px + j) + t, 0, 2);
                if (po) __builtin_prefetch((const char *)(po + j) + t, 1, 2);
            }
            VF e0 = FN(vexp)(FN(load)(x + j) - sh);
            VF e1 = FN(vexp)(FN(load)(x + j + FS_V) - sh);
            if (out) { FN(store)(out + j, e0); FN(store)(out + j + FS_V, e1); }
            acc0 += e0;
            acc1 += e1;
        }
        if (end < k) { /* a full block (j == end), more follow */
            total += (double)FN(hsum)(acc0 + acc1);
            continue;
        }
        if (j + FS_V <= k) {
            VF e0 = FN(vexp)(FN(load)(x + j) - sh);
            if (out) FN(store)(out + j, e0);
            acc0 += e0;
            j += FS_V;
        }
        if (j < k) { /* tail padded with -inf, whose exp is 0 */
            VF e1 = FN(vexp)(FN(load_part)(x + j, k - j, -(FS_T)INFINITY) - sh);
            if (out) FN(store_part)(out + j, e1, k - j);
            acc1 += e1;
        }
        return (FS_T)(total + (double)FN(hsum)(acc0 + acc1));
    }
}
#undef FS_SUM_BLOCK

/* Non-temporal store of a full vector at an address aligned to FS_VBYTES:
 * large outputs go to memory without first being read into the cache. */
FS_DEF void FN(store_nt)(FS_T *p, VF v)
{
#if FS_X86 && FS_VBYTES == 64 && FS_F32
    _mm512_stream_ps(p, (__m512)v);
#elif FS_X86 && FS_VBYTES == 64
    _mm512_stream_pd(p, (__m512d)v);
#elif FS_X86 && FS_VBYTES == 32 && FS_F32
    _mm256_stream_ps(p, (__m256)v);
#elif FS_X86 && FS_VBYTES == 32
    _mm256_stream_pd(p, (__m256d)v);
#elif FS_X86 && FS_F32
    _mm_stream_ps(p, (__m128)v);
#elif FS_X86
    _mm_stream_pd(p, (__m128d)v);
#else
    FN(store)(p, v);
#endif
}

FS_DEF void FN(stream_fence)(void)
{
#if FS_X86
    _mm_sfence();
#endif
}

/* out = (x - a) OP b lane-wise (OP: 0 multiply, 1 subtract), out may be x;
 * with nt, full vectors are stored non-temporally.  Returns the max of the
 * row xn (ignoring NaN, as row_max) read in the same loop, or -inf if xn is
 * NULL: the streaming row kernels take the next row's max here, where the
 * loop waits on stores anyway, instead of in a pass of its own. */
FS_DEF VF FN(apply)(VF v, VF a, VF b, const int OP) { return OP ? (v - a) - b : (v - a) * b; }

FS_DEF FS_T FN(row_apply)(const FS_T *x, FS_T a, FS_T b, FS_T *out, Py_ssize_t k, int nt,
                          const int OP, const FS_T *xn)
{
    Py_ssize_t j = 0;
    VF va = FN(splat)(a), vb = FN(splat)(b), m = FN(splat)(-(FS_T)INFINITY);
    FS_T ms = -(FS_T)INFINITY;
    if (nt) {
        for (; j < k && ((uintptr_t)(out + j) % FS_VBYTES); j++) {
            out[j] = OP ? (x[j] - a) - b : (x[j] - a) * b;
            if (xn && xn[j] > ms) ms = xn[j];
        }
        for (; j + FS_V <= k; j += FS_V) {
            FN(store_nt)(out + j, FN(apply)(FN(load)(x + j), va, vb, OP));
            if (xn) m = FN(vmax)(m, FN(load)(xn + j));
        }
    }
    for (; j + FS_V <= k; j += FS_V) {
        FN(store)(out + j, FN(apply)(FN(load)(x + j), va, vb, OP));
        if (xn) m = FN(vmax)(m, FN(load)(xn + j));
    }
    if (j < k) {
        FN(store_part)(out + j, FN(apply)(FN(load_part)(x + j, k - j, 0), va, vb, OP), k - j);
        if (xn) m = FN(vmax)(m, FN(load_part)(xn + j, k - j, -(FS_T)INFINITY));
    }
    FS_T mv = FN(hmax)(m);
    return mv > ms ? mv : ms;
}

/* Stream the output of row kernels over arrays this large (long rows only) */
#define FS_STREAM(n, k) ((n) * (k) * (Py_ssize_t)sizeof(FS_T) >= ((Py_ssize_t)8 << 20) && (k) >= 1024)

FS_DEF FS_T FN(finite_or_zero)(FS_T m) { return (m - m == 0) ? m : 0; }

/* 1 / (the exp-sum of a softmax row), or NaN when the sum is NaN or +inf (the
 * row holds a NaN or a +inf): the scaling then turns the whole row NaN, as in
 * scipy.special.softmax, with one scalar test per row and no extra pass. */
FS_DEF FS_T FN(softmax_scale)(FS_T s) { return (s - s == 0) ? (FS_T)1 / s : (FS_T)NAN; }

/* Rows of k <= 2 FS_V entries (e.g. 10 classes) are held in one or two
 * registers from load to store: re-reading a row just written with a masked
 * store would stall on store forwarding. */

/* Loads a row of k <= 2 FS_V into a (and b, unless ONE: k <= FS_V), -inf
 * padded, and returns the shift (the row max, or 0 if it is not finite). */
FS_DEF FS_T FN(short_load)(const FS_T *x, Py_ssize_t k, VF *a, VF *b, const int ONE)
{
    Py_ssize_t k0 = ONE ? k : FS_V;
    VF m = FN(splat)(-(FS_T)INFINITY);
    *a = FN(load_part)(x, k0, -(FS_T)INFINITY);
    m = FN(vmax)(m, *a);
    if (!ONE) {
        *b = FN(load_part)(x + k0, k - k0, -(FS_T)INFINITY);
        m = FN(vmax)(m, *b);
    }
    return FN(finite_or_zero)(FN(hmax)(m));
}

FS_DEF void FN(short_store)(FS_T *out, Py_ssize_t k, VF a, VF b, const int ONE)
{
    if (ONE) {
        FN(store_part)(out, a, k);
    } else {
        FN(store_part)(out, a, FS_V);
        FN(store_part)(out + FS_V, b, k - FS_V);
    }
}

/* Each row is loaded before the previous one is stored: with out == x, a
 * load after an overlapping masked store would wait for the store. */
FS_DEF void FN(softmax_short_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k,
                                   const int ONE)
{
    if (n <= 0) return;
    VF a, b = {0};
    FS_T sh = FN(short_load)(x, k, &a, &b, ONE);
    for (Py_ssize_t i = 0; i < n; i++) {
        VF vsh = FN(splat)(sh);
        VF ea = FN(vexp)(a - vsh), eb = {0};
        if (!ONE) eb = FN(vexp)(b - vsh);
        VF inv = FN(splat)(FN(softmax_scale)(FN(hsum)(ONE ? ea : ea + eb)));
        if (i + 1 < n) sh = FN(short_load)(x + (i + 1) * k, k, &a, &b, ONE);
        FN(short_store)(out + i * k, k, ea * inv, eb * inv, ONE);
    }
}



/* For m <= 64 short rows: the shifts and the log-normalisers
 * log(sum exp(x - sh)), the logs taken after the vector loop (a libm call in
 * it would spill every live vector register). */
FS_DEF void FN(short_lognorms)(const FS_T *x, Py_ssize_t k, Py_ssize_t m, FS_T *shs, FS_T *lss,
                               const int ONE)
{
    for (Py_ssize_t q = 0; q < m; q++) {
        VF a, b = {0};
        shs[q] = FN(short_load)(x + q * k, k, &a, &b, ONE);
        VF vsh = FN(splat)(shs[q]);
        VF e = FN(vexp)(a - vsh);
        if (!ONE) e += FN(vexp)(b - vsh);
        lss[q] = FN(hsum)(e);
    }
    for (Py_ssize_t q = 0; q < m; q++) lss[q] = (FS_T)FS_LOG(lss[q]);
}

FS_DEF void FN(log_softmax_short_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k,
                                       const int ONE)
{
    FS_T shs[64], lss[64];
    Py_ssize_t k0 = ONE ? k : FS_V;
    for (Py_ssize_t i0 = 0; i0 < n; i0 += 64) {
        Py_ssize_t m = n - i0 < 64 ? n - i0 : 64;
        FN(short_lognorms)(x + i0 * k, k, m, shs, lss, ONE);
        const FS_T *r = x + i0 * k;
        VF a = FN(load_part)(r, k0, 0), b = {0};
        if (!ONE) b = FN(load_part)(r + k0, k - k0, 0);
        for (Py_ssize_t q = 0; q < m; q++) {
            VF vsh = FN(splat)(shs[q]), vls = FN(splat)(lss[q]);
            VF oa = (a - vsh) - vls, ob = {0};
            if (!ONE) ob = (b - vsh) - vls;
            if (q + 1 < m) { /* the next row before this one's store (in place) */
                r += k;
                a = FN(load_part)(r, k0, 0);
                if (!ONE) b = FN(load_part)(r + k0, k - k0, 0);
            }
            FN(short_store)(out + (i0 + q) * k, k, oa, ob, ONE);
        }
    }
}

static FS_TARGET void FN(softmax_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    if (k <= 2 * FS_V) {
        if (k <= FS_V) FN(softmax_short_rows)(x, out, n, k, 1);
        else FN(softmax_short_rows)(x, out, n, k, 0);
        return;
    }
    /* Large arrays: the exponentials go to a scratch row that stays in
     * cache, the result is streamed to out once, and the next row's max is
     * taken in that same loop. */
    FS_T *scratch = FS_STREAM(n, k) ? (FS_T *)malloc(k * sizeof(FS_T)) : NULL;
    FS_T mx = scratch ? FN(row_max)(x, k) : 0;
    for (Py_ssize_t i = 0; i < n; i++, x += k, out += k) {
        int more = i + 1 < n;
        FS_T sh = FN(finite_or_zero)(scratch ? mx : FN(row_max)(x, k));
        FS_T *e = scratch ? scratch : out;
        FS_T inv = FN(softmax_scale)(FN(row_expsum)(x, sh, e, k, more ? x + k : NULL,
                                                    more && !scratch ? out + k : NULL));
        mx = FN(row_apply)(e, 0, inv, out, k, scratch != NULL, 0, more && scratch ? x + k : NULL);
    }
    if (scratch) {
        FN(stream_fence)();
        free(scratch);
    }
}

static FS_TARGET void FN(log_softmax_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    if (k <= 2 * FS_V) {
        if (k <= FS_V) FN(log_softmax_short_rows)(x, out, n, k, 1);
        else FN(log_softmax_short_rows)(x, out, n, k, 0);
        return;
    }
    int nt = FS_STREAM(n, k);
    FS_T mx = nt ? FN(row_max)(x, k) : 0;
    for (Py_ssize_t i = 0; i < n; i++, x += k, out += k) {
        int more = i + 1 < n;
        FS_T sh = FN(finite_or_zero)(nt ? mx : FN(row_max)(x, k));
        FS_T ls = (FS_T)FS_LOG(FN(row_expsum)(x, sh, NULL, k, more ? x + k : NULL,
                                               more && !nt ? out + k : NULL));
        mx = FN(row_apply)(x, sh, ls, out, k, nt, 1, more && nt ? x + k : NULL);
    }
    if (nt) FN(stream_fence)();
}

/* logsumexp of a row whose value sh + log(s) is below 1 in magnitude: in
 * s = 1 + (the other terms), those below the rounding of 1 are lost, so take
 * log1p of the sum without the max terms, log(count) + log1p(rest / count)
 * for count maxima, as SciPy does.  Scalar, and only such rows take it; sh
 * is then the row's (finite) max, which occurs in the row. */
FS_DEF FS_T FN(lse_near_zero)(const FS_T *x, Py_ssize_t k, FS_T sh)
{
    double rest = 0, count = 0; /* double: long rows (see row_expsum) */
    for (Py_ssize_t j = 0; j < k; j++) {
        if (x[j] == sh) count += 1;
        else rest += (double)(FS_F32 ? expf((float)(x[j] - sh)) : exp((double)(x[j] - sh)));
    }
    FS_T ratio = (FS_T)(rest / count);
    return (FS_T)FS_LOG(count) + (FS_T)(FS_F32 ? log1pf((float)ratio) : log1p((double)ratio)) + sh;
}

/* The value of the row x (k entries, row i): logsumexp (y NULL), or the
 * cross-entropy (max - z_y) + log(sum exp(z - max)), exact for large equal
 * logits where logsumexp(z) - z_y would lose it in rounding. */
FS_DEF FS_T FN(lse_value)(const FS_T *x, FS_T ls, FS_T sh, const Py_ssize_t *y, Py_ssize_t i)
{
    return y ? ls - (x[y[i]] - sh) : ls + sh;
}

/* logsumexp values out[0..m) of the rows x (k entries each, shifts sh):
 * those near zero are recomputed (lse_near_zero).  A pass of its own, so the
 * loop that computes the values stays branch-free. */
FS_DEF void FN(lse_fix_near_zero)(const FS_T *x, Py_ssize_t k, Py_ssize_t m, const FS_T *sh,
                                  FS_T *out)
{
    int any = 0; /* a branch-free (vectorized) test first: such rows are rare */
    for (Py_ssize_t q = 0; q < m; q++) any |= (out[q] > -1) & (out[q] < 1);
    if (!any) return;
    for (Py_ssize_t q = 0; q < m; q++)
        if (out[q] > -1 && out[q] < 1) out[q] = FN(lse_near_zero)(x + q * k, k, sh[q]);
}

FS_DEF void FN(lse_short_rows)(const FS_T *x, const Py_ssize_t *y, FS_T *out, Py_ssize_t n,
                               Py_ssize_t k, const int ONE)
{
    FS_T shs[64], lss[64];
    for (Py_ssize_t i0 = 0; i0 < n; i0 += 64) {
        Py_ssize_t m = n - i0 < 64 ? n - i0 : 64;
        FN(short_lognorms)(x + i0 * k, k, m, shs, lss, ONE);
        for (Py_ssize_t q = 0; q < m; q++)
            out[i0 + q] = FN(lse_value)(x + (i0 + q) * k, lss[q], shs[q], y, i0 + q);
        if (!y) FN(lse_fix_near_zero)(x + i0 * k, k, m, shs, out + i0);
    }
}

FS_DEF void FN(lse_rows)(const FS_T *x, const Py_ssize_t *y, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    if (k <= 2 * FS_V) {
        if (k <= FS_V) FN(lse_short_rows)(x, y, out, n, k, 1);
        else FN(lse_short_rows)(x, y, out, n, k, 0);
        return;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        const FS_T *r = x + i * k;
        FS_T sh = FN(finite_or_zero)(FN(row_max)(r, k));
        FS_T ls = (FS_T)FS_LOG(FN(row_expsum)(r, sh, NULL, k, i + 1 < n ? r + k : NULL, NULL));
        out[i] = FN(lse_value)(r, ls, sh, y, i);
        if (!y) FN(lse_fix_near_zero)(r, k, 1, &sh, out + i);
    }
}

static FS_TARGET void FN(logsumexp_rows)(const FS_T *x, FS_T *out, Py_ssize_t n, Py_ssize_t k)
{
    FN(lse_rows)(x, NULL, out, n, k);
}

static FS_TARGET void FN(cross_entropy_rows)(const FS_T *x, const Py_ssize_t *y, FS_T *out,
                                             Py_ssize_t n, Py_ssize_t k)
{
    FN(lse_rows)(x, y, out, n, k);
}

/* The k <= FS_V entries of a group of rows: a whole vector, or a masked
 * part (fill in the other lanes) for the last, short group. */
FS_DEF VF FN(load_group)(const FS_T *p, Py_ssize_t k, FS_T fill)
{
    return k == FS_V ? FN(load)(p) : FN(load_part)(p, k, fill);
}

FS_DEF void FN(store_group)(FS_T *p, VF v, Py_ssize_t k)
{
    if (k == FS_V) FN(store)(p, v);
    else FN(store_part)(p, v, k);
}

/* Softmax cross-entropy on a block of logits stored class-major: Z[c n + i]
 * is the logit of row i, class c.  In place, row i becomes
 * s_i (softmax(z_i) - e_{y_i}) (s_i = sw[i], or 1 if sw is NULL), the class
 * sums of the result are added to db, and sum_i s_i CE_i is returned.
 * Lanes run over rows, so the max, the exponentials, their sum and the
 * scaling are plain vector operations with no horizontal step, whatever C. */
static FS_TARGET double FN(ce_residual_cols)(FS_T *Z, Py_ssize_t n, Py_ssize_t C,
                                             const Py_ssize_t *y, const FS_T *sw, double *db)
{
    double loss = 0;
    const VF ninf = FN(splat)(-(FS_T)INFINITY), zero = FN(splat)(0);
    for (Py_ssize_t i = 0; i < n; i += FS_V) {
        const Py_ssize_t k = n - i < FS_V ? n - i : FS_V; /* rows in this group */
        FS_T *z = Z + i;
        VI yv;
        for (int l = 0; l < FS_V; l++) yv[l] = l < k ? (FS_I)y[i + l] : -1;
        /* shift: the row max (ignoring NaN), 0 if it is not finite */
        VF m = ninf, zy = zero;
        for (Py_ssize_t c = 0; c < C; c++) {
            VF v = FN(load_group)(z + c * n, k, -(FS_T)INFINITY);
            m = FN(vmax)(m, v);
            zy = FN(blend)(yv == (FS_I)c, v, zy);
        }
        m = FN(blend)(m - m == zero, m, zero);
        VF sum = zero;
        for (Py_ssize_t c = 0; c < C; c++) {
            VF v = FN(load_group)(z + c * n, k, -(FS_T)INFINITY);
            VF e = FN(vexp)(v - m);
            sum += e;
            FN(store_group)(z + c * n, e, k);
        }
        VF w = sw ? FN(load_group)(sw + i, k, 0) : FN(splat)(1);
        VF scale = w / sum;
        for (Py_ssize_t c = 0; c < C; c++) {
            VF e = FN(load_group)(z + c * n, k, 0);
            VF r = e * scale - (VF)((VI)w & (yv == (FS_I)c));
            FN(store_group)(z + c * n, r, k);
        }
        /* CE_i = log(sum_i) - (z_{i, y_i} - shift_i), as the row kernels do */
        union { VF v; FS_T a[FS_V]; } ce = {FN(vlog_sum)(sum) - (zy - m)}, uw = {w};
        for (Py_ssize_t l = 0; l < k; l++) loss += (double)uw.a[l] * (double)ce.a[l];
    }
    for (Py_ssize_t c = 0; c < C; c++) {
        const FS_T *r = Z + c * n;
        Py_ssize_t i = 0;
        VF acc = zero;
        for (; i + FS_V <= n; i += FS_V) acc += FN(load)(r + i);
        FS_T t = FN(hsum)(acc);
        for (; i < n; i++) t += r[i];
        db[c] += t;
    }
    return loss;
}

/* 1 if the n values x hold no NaN and no infinity, else 0: the input screen
 * of the estimators, at memory bandwidth.  A value is NaN or infinite when
 * its magnitude bits (the sign cleared), read as an integer, are at least
 * those of +inf; the running integer max of the magnitudes costs two
 * operations a vector, and no floating-point mode or flag can change the
 * answer.  Blocks of FS_FINITE_BLOCK values end early once one is found. */
#define FS_FINITE_BLOCK 65536 /* a multiple of 4 FS_V for every FS_V */
FS_DEF VI FN(imax)(VI a, VI b)
{
#if FS_X86 && FS_VBYTES == 64 && FS_F32
    return (VI)_mm512_max_epi32((__m512i)a, (__m512i)b);
#elif FS_X86 && FS_VBYTES == 64
    return (VI)_mm512_max_epi64((__m512i)a, (__m512i)b);
#elif FS_X86 && FS_VBYTES == 32 && FS_F32
    return (VI)_mm256_max_epi32((__m256i)a, (__m256i)b);
#else /* compare and blend (AVX2 has no 64-bit max, SSE2 none at all) */
    VI more = a > b;
    return (a & more) | (b & ~more);
#endif
}

static FS_TARGET int FN(all_finite)(const FS_T *x, Py_ssize_t n)
{
#if FS_F32
    const FS_I magnitude = 0x7fffffff, inf_bits = 0x7f800000;
#else
    const FS_I magnitude = 0x7fffffffffffffffLL, inf_bits = 0x7ff0000000000000LL;
#endif
    const VI mag = (VI){0} + magnitude;
    Py_ssize_t j = 0;
    while (j < n) {
        Py_ssize_t end = n - j > FS_FINITE_BLOCK ? j + FS_FINITE_BLOCK : n;
        VI m0 = {0}, m1 = {0}, m2 = {0}, m3 = {0};
        for (; j + 4 * FS_V <= end; j += 4 * FS_V) {
            m0 = FN(imax)(m0, (VI)FN(load)(x + j) & mag);
            m1 = FN(imax)(m1, (VI)FN(load)(x + j + FS_V) & mag);
            m2 = FN(imax)(m2, (VI)FN(load)(x + j + 2 * FS_V) & mag);
            m3 = FN(imax)(m3, (VI)FN(load)(x + j + 3 * FS_V) & mag);
        }
        for (; j + FS_V <= end; j += FS_V) m0 = FN(imax)(m0, (VI)FN(load)(x + j) & mag);
        if (j < end) { /* the tail of the last block, padded with 0 */
            m1 = FN(imax)(m1, (VI)FN(load_part)(x + j, end - j, 0) & mag);
            j = end;
        }
        union { VI v; FS_I l[FS_V]; } top = {FN(imax)(FN(imax)(m0, m1), FN(imax)(m2, m3))};
        FS_I any = 0;
        for (int l = 0; l < FS_V; l++) any |= top.l[l] >= inf_bits;
        if (any) return 0;
    }
    return 1;
}
#undef FS_FINITE_BLOCK

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

/* train_epoch's SGD step on the weights in one pass (no separate scaling
 * pass): g = G scale + l2 p, rounded to FS_T, then p -= g lr. */
static FS_TARGET void FN(sgd_step)(FS_T *p, const FS_T *G, Py_ssize_t n, FS_T scale, FS_T l2,
                                   FS_T lr)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        FS_T g = G[i] * scale + l2 * p[i];
        p[i] -= g * lr;
    }
}

/* ----------------------------------------------- block matrix products */
/* The register tiles of both products of fs_gemm_impl.h, by the classes they
 * cover: for float, groups of 10 classes with 2 rows (or 2 vectors of
 * features) each, so that a row of X is loaded, and for uint8 widened, once
 * for the 10 classes of MNIST; then groups of 5 with 4 rows, then single
 * classes with 4.  About 20 accumulators each.  For double the weight rows
 * of 10 classes no longer fit in L1 (62 KB for 784 features), and groups of
 * 5 with 4 rows read them half as often. */
#define FS_WIDE (FS_F32 ? 10 : 0)
#define FS_NARROW 5
#define FS_MAX_GROUP (FS_WIDE > FS_NARROW ? FS_WIDE : FS_NARROW)

/* the classes of the group of tiles that starts at class c */
FS_DEF Py_ssize_t FN(class_group)(Py_ssize_t C, Py_ssize_t c)
{
    return FS_WIDE && c + FS_WIDE <= C ? FS_WIDE : c + FS_NARROW <= C ? FS_NARROW : 1;
}

/* The weights WT (C, d) in the panels the forward tiles read: for each class
 * group [c, c + g) (class_group), at Wp + c ceil(d / FS_V) FS_V, the g
 * vectors of the group's classes for each vector of features in turn,
 * zero-padded past d.  The forward tile then reads its weights from one
 * pointer at constant offsets, in order: with the classes' rows of WT it
 * needed a register for each of the 10 (their distance, d, is known at run
 * time only), and the spilled pointers cost it a fifth of its speed. */
static FS_TARGET void FN(pack_weights)(const FS_T *WT, Py_ssize_t C, Py_ssize_t d, FS_T *Wp)
{
    const Py_ssize_t nv = (d + FS_V - 1) / FS_V;
    for (Py_ssize_t c = 0; c < C;) {
        const Py_ssize_t g = FN(class_group)(C, c);
        FS_T *out = Wp + c * nv * FS_V;
        for (Py_ssize_t v = 0; v < nv; v++)
            for (Py_ssize_t k = 0; k < g; k++, out += FS_V) {
                const FS_T *w = WT + (c + k) * d + v * FS_V;
                const Py_ssize_t left = d - v * FS_V;
                if (left >= FS_V) FN(store)(out, FN(load)(w));
                else for (Py_ssize_t l = 0; l < FS_V; l++) out[l] = l < left ? w[l] : 0;
            }
        c += g;
    }
}

/* train_epoch's plain SGD step on the weights kept in their panels (Wp, as
 * pack_weights lays them out) while an epoch runs, G the gradient (C, d):
 * the same arithmetic per weight as sgd_step, so the same weights bit for
 * bit, without packing them again after each step.  With squares, returns
 * the sum of the squares of the weights before the step, in double, in a
 * fixed order (one partial sum per lane): the l2 term of the minibatch loss
 * without a scalar pass over the weights. */
typedef double FN(vd) __attribute__((vector_size(FS_V * sizeof(double))));
static FS_TARGET double FN(sgd_step_packed)(FS_T *Wp, const FS_T *G, Py_ssize_t C, Py_ssize_t d,
                                            FS_T scale, FS_T l2, FS_T lr, int squares)
{
    const Py_ssize_t nv = (d + FS_V - 1) / FS_V;
    const VF vs = FN(splat)(scale), vl2 = FN(splat)(l2), vlr = FN(splat)(lr);
    FN(vd) sq = {0};
    for (Py_ssize_t c = 0; c < C;) {
        const Py_ssize_t g = FN(class_group)(C, c);
        FS_T *w = Wp + c * nv * FS_V;
        for (Py_ssize_t v = 0; v < nv; v++)
            for (Py_ssize_t k = 0; k < g; k++, w += FS_V) {
                const FS_T *q = G + (c + k) * d + v * FS_V;
                const Py_ssize_t left = d - v * FS_V;
                if (squares) { /* (the padding past d is 0) */
                    FN(vd) wd = __builtin_convertvector(FN(load)(w), FN(vd));
                    sq += wd * wd;
                }
                if (left >= FS_V) {
                    /* sgd_step's expression, vectorized (w and q may not
                     * be told apart by the compiler) */
                    VF wv = FN(load)(w);
                    VF u = FN(load)(q) * vs + vl2 * wv;
                    FN(store)(w, wv - u * vlr);
                } else
                    for (Py_ssize_t l = 0; l < left; l++) {
                        FS_T u = q[l] * scale + l2 * w[l];
                        w[l] -= u * lr;
                    }
            }
        c += g;
    }
    double total = 0;
    for (int l = 0; l < FS_V; l++) total += sq[l];
    return total;
}

/* WT (C, d) from its panels Wp (pack_weights' inverse) */
static FS_TARGET void FN(unpack_weights)(const FS_T *Wp, Py_ssize_t C, Py_ssize_t d, FS_T *WT)
{
    const Py_ssize_t nv = (d + FS_V - 1) / FS_V;
    for (Py_ssize_t c = 0; c < C;) {
        const Py_ssize_t g = FN(class_group)(C, c);
        const FS_T *w = Wp + c * nv * FS_V;
        for (Py_ssize_t v = 0; v < nv; v++)
            for (Py_ssize_t k = 0; k < g; k++, w += FS_V) {
                const Py_ssize_t left = d - v * FS_V;
                memcpy(WT + (c + k) * d + v * FS_V, w,
                       (left < FS_V ? left : FS_V) * sizeof(FS_T));
            }
        c += g;
    }
}

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

/* the logit tiles of the tiled (many-class) regime of softmax_ce_sums */
#include "fs_tiled_impl.h"

#undef FS_WIDE
#undef FS_NARROW
#undef FS_MAX_GROUP
#undef FN
#undef VF
#undef VI
#undef VFU
#undef FS_DEF
#undef FS_V
