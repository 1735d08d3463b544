/* The team of threads of the feature-split epoch (train_epoch on two threads
 * or more, _cython_kernels.pyx: _train_epoch_split).
 *
 * One OpenMP parallel region runs the whole epoch; its threads meet once per
 * minibatch at a spin barrier instead of forking and joining a team (twice)
 * per minibatch.  Thread t owns the features [split(t), split(t + 1)) of the
 * weights (C, d): a range of whole cache lines of weights, so that its
 * columns of W, of their learner states and of their packed panels are its
 * alone.  The per-minibatch protocol is in _train_epoch_split's comments.
 */
#ifndef FS_EPOCH_SPLIT_H
#define FS_EPOCH_SPLIT_H

#include <stddef.h>
#include <sched.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FS_SPIN_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define FS_SPIN_PAUSE() __asm__ __volatile__("yield")
#else
#define FS_SPIN_PAUSE() ((void)0)
#endif

/* The barrier of the team: each thread counts the rounds it has reached
 * in a flag on a cache line of its own, and waits until every other
 * thread's flag has reached the round too.  (A central counter with a
 * sense flag costs two cache-line transfers one after the other, about
 * 0.6 us on the 2-core VM; the flags cost one, in parallel: about 0.3.)  A
 * partner is never more than one round ahead: it cannot pass round r + 1
 * before this thread reached it.  A waiter spins for about
 * FS_BARRIER_SPIN_NS, then sleeps (a futex on Linux): on a quiet machine
 * the threads meet within a microsecond or so and never sleep, while on
 * cores shared with other processes a waiter gives its core back to the
 * partner it waits for instead of burning the partner's time slice. */
typedef struct {
    _Alignas(64) int round;  /* the last round this thread reached */
    int sleepers;            /* threads asleep on `round` */
} fs_flag;

#define FS_MAX_TEAM 256

typedef struct {
    fs_flag flags[FS_MAX_TEAM];
    int threads;
} fs_barrier;

static void fs_barrier_init(fs_barrier *bar, int threads)
{
    for (int t = 0; t < threads && t < FS_MAX_TEAM; t++) {
        bar->flags[t].round = 0;
        bar->flags[t].sleepers = 0;
    }
    bar->threads = threads;
}

#ifndef FS_BARRIER_SPIN_NS
#define FS_BARRIER_SPIN_NS 20000
#endif

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
static void fs_futex_wait(int *address, int value)
{
    syscall(SYS_futex, address, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}
static void fs_futex_wake_all(int *address)
{
    syscall(SYS_futex, address, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}
#else
static void fs_futex_wait(int *address, int value)
{
    (void)address;
    (void)value;
    sched_yield();
}
static void fs_futex_wake_all(int *address) { (void)address; }
#endif

#include <time.h>
static long long fs_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* (round - reached, wrapping: rounds count minibatches, and no two threads
 * are more than one apart) */
static int fs_behind(int reached, int round) { return (int)((unsigned)round - (unsigned)reached) > 0; }

/* Thread `me` reaches round `round` (1, 2, ...: one more each call) and
 * waits until every thread of the team has.  The release store of the flag
 * and the acquire loads of the others order every write a thread made
 * before it reached a round before every read another makes after it
 * leaves the round. */
static void fs_barrier_wait(fs_barrier *bar, int me, int round)
{
    fs_flag *mine = &bar->flags[me];
    __atomic_store_n(&mine->round, round, __ATOMIC_SEQ_CST);
    /* (seq_cst: this load cannot pass the store above, nor a sleeper's
     * increment its check of the flag below: one of the two sees the other) */
    if (__atomic_load_n(&mine->sleepers, __ATOMIC_SEQ_CST)) fs_futex_wake_all(&mine->round);
    for (int t = 0; t < bar->threads; t++) {
        fs_flag *other = &bar->flags[t];
        if (t == me) continue;
        long long start = 0;
        for (unsigned spins = 1; fs_behind(__atomic_load_n(&other->round, __ATOMIC_ACQUIRE), round);
             spins++) {
            FS_SPIN_PAUSE();
            if (spins % 64 == 0) { /* (the clock every 64 rounds) */
                const long long now = fs_now_ns();
                if (!start) {
                    start = now;
                } else if (now - start > FS_BARRIER_SPIN_NS) {
                    __atomic_add_fetch(&other->sleepers, 1, __ATOMIC_SEQ_CST);
                    int seen;
                    while (fs_behind(seen = __atomic_load_n(&other->round, __ATOMIC_SEQ_CST), round))
                        fs_futex_wait(&other->round, seen);
                    __atomic_sub_fetch(&other->sleepers, 1, __ATOMIC_RELAXED);
                    break;
                }
            }
        }
    }
}

/* The first feature of part `part` of `parts` of d features, split at
 * multiples of `unit` (the features of a cache line of weights): the parts
 * differ by at most one unit, and split(parts) = d. */
static Py_ssize_t fs_split_point(Py_ssize_t d, int parts, int part, Py_ssize_t unit)
{
    if (part >= parts) return d;
    const Py_ssize_t units = (d + unit - 1) / unit;
    const Py_ssize_t f = (Py_ssize_t)(units * part / parts) * unit;
    return f < d ? f : d;
}

/* body(ctx, thread, threads) on each thread of one parallel region of
 * `threads` threads (or fewer, if the OpenMP runtime gives fewer: each call
 * sees the team's real size).  The barrier is armed for the team before any
 * body starts.  Without OpenMP: one call, thread 0 of 1. */
typedef void (*fs_team_body)(void *ctx, int thread, int threads);

static void fs_run_team(int threads, fs_team_body body, void *ctx, fs_barrier *bar)
{
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
    {
#pragma omp single
        fs_barrier_init(bar, omp_get_num_threads());
        /* (the implicit barrier of `single`: armed before anyone waits) */
        body(ctx, omp_get_thread_num(), omp_get_num_threads());
    }
#else
    (void)threads;
    fs_barrier_init(bar, 1);
    body(ctx, 0, 1);
#endif
}

/* Z[k] = (P_0[k] + P_1[k] + ... + P_{parts-1}[k]) + b[k / n] for the n C
 * class-major logits of a minibatch, the parts' partial logits P_t = P + t
 * stride: the same order on every thread, so that all get the same logits. */
#define FS_SUM_PARTIALS(T, NAME)                                                             \
    static void NAME(T *Z, const T *P, Py_ssize_t stride, int parts, const T *b, Py_ssize_t n, \
                     Py_ssize_t C)                                                           \
    {                                                                                        \
        for (Py_ssize_t c = 0; c < C; c++) {                                                 \
            T *z = Z + c * n;                                                                \
            const T *p = P + c * n;                                                          \
            for (Py_ssize_t i = 0; i < n; i++) z[i] = p[i];                                  \
            for (int t = 1; t < parts; t++)                                                  \
                for (Py_ssize_t i = 0; i < n; i++) z[i] += p[t * stride + i];                \
            for (Py_ssize_t i = 0; i < n; i++) z[i] += b[c];                                 \
        }                                                                                    \
    }
FS_SUM_PARTIALS(float, fs_sum_partials_f32)
FS_SUM_PARTIALS(double, fs_sum_partials_f64)
#undef FS_SUM_PARTIALS

#endif /* FS_EPOCH_SPLIT_H */
