/* One core's peak float32 FMA rate: 12 independent chains of AVX-512 (and
 * AVX2) fused multiply-adds in registers, no memory traffic.  The reference
 * the gradient benchmarks' GFLOP/s are compared with in README.md.
 *
 *   gcc -O2 -march=native benchmarks/fma_peak.c -o fma_peak && ./fma_peak
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define CHAINS 12 /* > FMA latency x FMA units, so the units never wait */

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void)
{
    const long steps = 200000000 / CHAINS;
    float sink = 0, lanes[16];
#ifdef __AVX512F__
    __m512 a[CHAINS], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    double t0 = seconds();
    for (long n = 0; n < steps; n++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    double t = seconds() - t0;
    for (int i = 0; i < CHAINS; i++) sink += _mm512_reduce_add_ps(a[i]);
    printf("AVX-512: %.1f GFLOP/s\n", 2.0 * 16 * CHAINS * steps / t / 1e9);
#endif
    __m256 b[CHAINS], u = _mm256_set1_ps(1.0000001f), v = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < CHAINS; i++) b[i] = _mm256_set1_ps((float)i);
    double t1 = seconds();
    for (long n = 0; n < steps; n++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) b[i] = _mm256_fmadd_ps(b[i], u, v);
    double tb = seconds() - t1;
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(lanes, b[i]);
        sink += lanes[0];
    }
    printf("AVX2:    %.1f GFLOP/s   (checksum %g)\n", 2.0 * 8 * CHAINS * steps / tb / 1e9, sink);
    return 0;
}
