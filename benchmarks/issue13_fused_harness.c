/* The fused small-C pass of the cython backend (fs_fwd / fs_ce_residual_cols / fs_bwd, the
 * loop of _softmax_ce_block) on a 60000 x 784 random problem with 10 classes, float32,
 * uint8 and float64 X, against the compiled NaN/inf screen (all_finite: one read of the
 * float32 X, the memory floor), minimum of thread CPU time over rounds (issue 13).
 *
 *   gcc -O3 -fno-math-errno -fno-trapping-math -I src_cython benchmarks/issue13_fused_harness.c \
 *       -o /tmp/fused -lm && /tmp/fused [rows f32=40] [rows u8=164] [rows f64=20] [rounds=9]
 *
 * Environment: PF=0..3 (which product prefetches the next block: 1 forward, 2 backward),
 * SAME=1 (every block reads the first block: no memory traffic, the compute bound),
 * SAMEPF=1 (the prefetches aim at the first block too: their cost without memory traffic),
 * PERM=1 (rows in a shuffled order, as in an epoch), HUGE=1 (float32 X on huge pages, as
 * NumPy allocates large arrays), PH=1 (time of each phase).  A/B: build against two
 * copies of src_cython and run alternately.
 */
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <sys/mman.h>
typedef ptrdiff_t Py_ssize_t;
#include "fs_simd.h"
static double now(void) /* thread CPU time: the machine is shared */{struct timespec t;clock_gettime(CLOCK_THREAD_CPUTIME_ID,&t);return t.tv_sec+1e-9*t.tv_nsec;}
#define N 60000
#define D 784
#define C 10
#define MB 512
static int pf=1, same=0, samepf=0, *perm, ahead=1; static double ph[3]; static float *X32; static unsigned char *X8; static double *X64; static Py_ssize_t y[N];
#define AL __attribute__((aligned(64))) /* as softmax_ce_sums reads them (_aligned_weights) */
static float WT[C*D] AL, WP[C*D] AL, b[C], dW[C*D] AL, Z[MB*C] AL; static double WT64[C*D] AL, WP64[C*D] AL, b64[C], dW64[C*D] AL, Z64[MB*C] AL;
#define PASS(NAME, XT, T, S, XS, X, W, B, DW, ZZ) \
static double NAME(int blk){ const XT *rows[MB], *next[MB]; double db[C]={0}, loss=0; \
  for (Py_ssize_t a=0;a<N;a+=blk){ Py_ssize_t n = N-a<blk?N-a:blk, after=N-a-n; \
    for (Py_ssize_t i=0;i<n;i++){rows[i]=X+(same?i:perm[a+i])*(long)D; { long q = a + (long)ahead*n + i; if (q > N-1) q = N-1; next[i]=after>0? X+(samepf?i:perm[q])*(long)D : X; }} \
    double t0=now(); fs_fwd_##XS##_##S(rows,n,D,W,B,C,ZZ,1,n,((pf&1) && after>0)?next:NULL); \
    double t1=now(); loss += fs_ce_residual_cols_##S(ZZ,n,C,y+a,NULL,db); \
    double t2=now(); fs_bwd_##XS##_##S(rows,n,D,ZZ,C,DW,((pf&2) && after>0)?next:NULL); ph[0]+=t1-t0; ph[1]+=t2-t1; ph[2]+=now()-t2;} return loss; }
PASS(p32, float, float, f32, f, X32, WP, b, dW, Z)
PASS(p8, unsigned char, float, f32, u8, X8, WP, b, dW, Z)
PASS(p64, double, double, f64, f, X64, WP64, b64, dW64, Z64)
int main(int argc, char **argv){ pf = getenv("PF")?atoi(getenv("PF")):3; same = getenv("SAME")?1:0; samepf = getenv("SAMEPF")?1:0; ahead = getenv("AHEAD")?atoi(getenv("AHEAD")):1;
  fs_set_level(-1);
  X32=aligned_alloc(64,sizeof(float)*N*D); X8=aligned_alloc(64,N*D); X64=aligned_alloc(64,sizeof(double)*N*D);
  if(getenv("HUGE")){ size_t z=sizeof(float)*N*D; free(X32); X32=aligned_alloc(1<<21,(z+(1<<21)-1)/(1<<21)*(1<<21)); madvise(X32,z,MADV_HUGEPAGE);}
  unsigned s=1; for(long i=0;i<(long)N*D;i++){s=s*1103515245+12345; X8[i]=(s>>16)&255; if ((s>>8)%3==0) X8[i]=0; X32[i]=X8[i]/255.f; X64[i]=X32[i];}
  for(int i=0;i<N;i++) y[i]=i%C;
  perm=malloc(sizeof(int)*N); for(int i=0;i<N;i++) perm[i]=i; if(getenv("PERM")) for(int i=N-1;i>0;i--){s=s*1103515245+12345; int j=(s>>4)%(i+1); int t=perm[i]; perm[i]=perm[j]; perm[j]=t;}
  for(int i=0;i<C*D;i++){WT[i]=((i*7)%13-6)*0.001f; WT64[i]=WT[i];}
  fs_pack_weights_f32(WT,C,D,WP); fs_pack_weights_f64(WT64,C,D,WP64); /* the forward products read the weights' panels */
  int b32 = argc>1?atoi(argv[1]):40, b8 = argc>2?atoi(argv[2]):164, b64b = argc>3?atoi(argv[3]):20, R = argc>4?atoi(argv[4]):9;
  double tmin[4]={1e9,1e9,1e9,1e9}; volatile double sink=0;
  for(int r=0;r<R;r++){ double t;
    t=now(); sink+=fs_all_finite_f32(X32,(Py_ssize_t)N*D); t=now()-t; if(t<tmin[0])tmin[0]=t;
    t=now(); sink+=p32(b32); t=now()-t; if(t<tmin[1])tmin[1]=t;
    if(getenv("PH")&&r==R-1){ph[0]=ph[1]=ph[2]=0; p32(b32); printf("f32 phases fwd %.2f res %.2f bwd %.2f\n",ph[0]*1e3,ph[1]*1e3,ph[2]*1e3); ph[0]=ph[1]=ph[2]=0; p8(b8); printf("u8 phases fwd %.2f res %.2f bwd %.2f\n",ph[0]*1e3,ph[1]*1e3,ph[2]*1e3);ph[0]=ph[1]=ph[2]=0; p64(b64b); printf("f64 phases fwd %.2f res %.2f bwd %.2f\n",ph[0]*1e3,ph[1]*1e3,ph[2]*1e3);}
    t=now(); sink+=p8(b8); t=now()-t; if(t<tmin[2])tmin[2]=t;
    t=now(); sink+=p64(b64b); t=now()-t; if(t<tmin[3])tmin[3]=t; }
  double fl=4.0*N*D*C;
  printf("all_finite f32 %.2f ms | f32 %.2f ms %.0f GF | u8 %.2f ms %.0f GF | f64 %.2f ms %.0f GF  (check %g %g)\n", tmin[0]*1e3, tmin[1]*1e3, fl/tmin[1]/1e9, tmin[2]*1e3, fl/tmin[2]/1e9, tmin[3]*1e3, fl/tmin[3]/1e9, dW[5], dW64[5]);
}
