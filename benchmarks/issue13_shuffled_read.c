/* A bare read of a 60000 x 784 float32 X (on huge pages, as NumPy allocates it) row by
 * row, in order and in a shuffled order, with software prefetches of the row `dist` rows
 * ahead (every line / its first line / its first two lines), minimum of thread CPU time
 * over 4 rounds (issue 13, target 2: how much of the shuffled epoch's extra time is the
 * memory system's).
 *
 *   gcc -O3 -mavx512f benchmarks/issue13_shuffled_read.c -o /tmp/shuffled_read && /tmp/shuffled_read
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define N 60000
#define D 784

int main(void)
{
    size_t bytes = sizeof(float) * N * D, huge = 1 << 21;
    float *X = aligned_alloc(huge, (bytes + huge - 1) / huge * huge);
    madvise(X, bytes, MADV_HUGEPAGE);
    for (long i = 0; i < (long)N * D; i++) X[i] = (i % 7) * 0.1f;
    int *shuffled = malloc(sizeof(int) * N), *in_order = malloc(sizeof(int) * N);
    unsigned s = 1;
    for (int i = 0; i < N; i++) shuffled[i] = in_order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        s = s * 1103515245 + 12345;
        int j = (s >> 4) % (i + 1), t = shuffled[i];
        shuffled[i] = shuffled[j];
        shuffled[j] = t;
    }
    const int dists[] = {0, 1, 2, 4, 8, 16, 32};
    const char *modes[] = {"every line", "first line", "first 2 lines"};
    for (int q = 0; q < 2; q++)
        for (int di = 0; di < 7; di++)
            for (int mode = 0; mode < 3; mode++) {
                const int *order = q ? shuffled : in_order, dist = dists[di];
                if (!dist && mode) continue;
                double best = 1e9;
                volatile float sink;
                for (int r = 0; r < 4; r++) {
                    double t = now();
                    __m512 acc = _mm512_setzero_ps();
                    for (int i = 0; i < N; i++) {
                        const float *x = X + (long)order[i] * D;
                        const float *p = X + (long)order[i + dist < N ? i + dist : N - 1] * D;
                        if (dist) {
                            if (mode == 0)
                                for (int j = 0; j < D; j += 16) __builtin_prefetch(p + j, 0, 2);
                            else
                                for (int l = 0; l < mode; l++) __builtin_prefetch(p + 16 * l, 0, 2);
                        }
                        for (int j = 0; j < D; j += 16) acc = _mm512_add_ps(acc, _mm512_load_ps(x + j));
                    }
                    sink = _mm512_reduce_add_ps(acc);
                    t = now() - t;
                    if (t < best) best = t;
                }
                (void)sink;
                printf("%-8s prefetch %2d rows ahead (%-13s): %6.2f ms  %5.1f GB/s\n",
                       q ? "shuffled" : "in order", dist, dist ? modes[mode] : "none", best * 1e3,
                       bytes / best / 1e9);
            }
    return 0;
}
