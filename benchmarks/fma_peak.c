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
#define STEPS (200000000 / CHAINS)

static double seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* Times STEPS rounds of CHAINS FMAs on vectors of type VT (LANES floats),
 * prints GFLOP/s, and adds lane 0 of each chain to sink (so none is dead). */
#define MEASURE(label, VT, LANES, SET1, FMADD, STOREU)                                   \
    do {                                                                                \
        VT a[CHAINS], x = SET1(1.0000001f), y = SET1(0.9999999f);                       \
        float lanes[LANES];                                                             \
        for (int i = 0; i < CHAINS; i++) a[i] = SET1((float)i);                         \
        double t0 = seconds();                                                          \
        for (long n = 0; n < STEPS; n++)                                                \
            _Pragma("GCC unroll 12") for (int i = 0; i < CHAINS; i++) a[i] = FMADD(a[i], x, y); \
        double t = seconds() - t0;                                                      \
        for (int i = 0; i < CHAINS; i++) {                                              \
            STOREU(lanes, a[i]);                                                        \
            sink += lanes[0];                                                           \
        }                                                                               \
        printf("%s %.1f GFLOP/s\n", label, 2.0 * LANES * CHAINS * STEPS / t / 1e9);    \
    } while (0)

int main(void)
{
    float sink = 0;
#ifdef __AVX512F__
    MEASURE("AVX-512:", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps);
#endif
    MEASURE("AVX2:   ", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps);
    printf("(checksum %g)\n", sink);
    return 0;
}
