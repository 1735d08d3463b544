"""Numba backend: ``@njit`` kernels with one shared configuration.

See :mod:`fastsoftmax._backends` for the kernel protocol.  The exported names
are thin Python wrappers that pick the thread count and call the compiled
kernels of this module; the compiled code is cached on disk
(:mod:`fastsoftmax._backends._numba_config`), so only the first call of a kernel
for a new dtype combination ever compiles.

Design of the hot kernels (``softmax_ce_sums``, ``train_epoch``, ``linear``):
the design of the cython backend's ``src_cython/fs_gemm_impl.h``.  With 10
classes the class axis is a poor SIMD dimension, so the weights are used in
the layout of ``coef_`` (``WT``, shape (C, d)) and the vector lanes run over
the contiguous feature axis.  Blocks of rows small enough to stay in L2 are
read in place (X that is not C-contiguous converted into a scratch block
first): their logits in register tiles of 2 rows x 10 classes (4 x 5, 4 x 1
for other class counts; uint8 pixels widened in registers), the softmax
residual ``s (P - Y)`` vectorised over the rows, then ``X^T (P - Y)`` in
tiles of 2 vectors of features x 10 classes from the rows still in cache,
while the next block is prefetched.  The tiles hold explicit
LLVM vectors of the host's widest width (see "Explicit SIMD vectors" below:
LLVM's own vectoriser keeps to 256-bit vectors on AVX-512 cores).  Rows are
split in contiguous chunks across threads (``prange``), each thread owning
its gradient accumulator, reduced once at the end.  Row-wise kernels use a
branch-free exp that LLVM vectorises (no SVML needed); they and ``linear``
are serial loops over a range of rows, split over Python threads (they
release the GIL), so that a cold start compiles no parallel kernel for them
(see ``_split_rows``).  The whole-epoch minibatch trainer built on the same
blocks is ``train_epoch`` at the end of this module (its update rules live
in :mod:`fastsoftmax._backends.numba_epoch`).

Measured on the 2-vCPU AVX-512 Xeon of issue 13 (one thread, MNIST 60000 x
784, 10 classes, CPU-time medians, ``benchmarks/issue13_numba_ratio.py``):
the fused loss and gradient and the shuffled epoch within 1.2x of the cython
backend for float32, float64 and uint8 X.
"""

from __future__ import annotations

import concurrent.futures
import os

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, models, overload, register_model

from .._threads import get_num_threads
from . import KERNEL_NAMES, _numba_tiles, _tiling, weight_total
from ._numba_config import njit, set_threads_for_call

# Below this many elements a kernel runs on one thread: waking the pool costs more.
_PARALLEL_MIN_WORK = 1 << 16


def _threads(work):
    """Thread count for a parallel kernel call of ``work`` elements (sets numba's)."""
    if work < _PARALLEL_MIN_WORK:
        numba.set_num_threads(1)
        return 1
    return set_threads_for_call()


# ---------------------------------------------------------------------------
# A vectorisable exp
# ---------------------------------------------------------------------------
# LLVM turns calls to libm's expf into one scalar call per element (no SVML
# here), which made long-row softmax twice slower than NumPy's SIMD exp.  The
# float32 exp below is branch-free arithmetic, so LLVM vectorises the loops
# that call it; it is within 1.4 ulp of the exact value (measured over
# [-110, 95]), with the exact limits at +-inf, NaN propagated, and gradual
# underflow to the denormals.  The float64 one is built the same way (a
# degree-13 Taylor polynomial on |r| <= ln(2)/2, within a few ulp).


@intrinsic
def _float32_from_bits(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (a bitcast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        elif bits.bitwidth < 32:
            value = builder.zext(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret a 64-bit integer as a float64 (a bitcast)."""
    if not isinstance(bits, types.Integer) or bits.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(bits), codegen


@njit
def _expd(x):
    """exp of a float64: exp(r) 2**n with r = x - n ln 2, |r| <= ln(2)/2."""
    xc = min(max(x, -746.0), 710.0)
    z = np.floor(xc * 1.4426950408889634 + 0.5)
    r = (xc - z * 6.93145751953125e-1) - z * 1.42860682030941723212e-6  # ln 2 in two parts
    p = 1.0 / 6227020800.0  # 1/13!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    y = (p * r) * r + r + 1.0
    n = np.int64(z)
    n1 = n >> 1
    y = y * _float64_from_bits((n1 + 1023) << 52) * _float64_from_bits((n - n1 + 1023) << 52)
    if x > 709.782712893384:  # log(DBL_MAX)
        y = np.inf
    if x < -745.1332191019412:  # below half the smallest denormal
        y = 0.0
    if x != x:
        y = x
    return y


@njit
def _expf(x):
    """exp of a float32 (Cephes' polynomial, range reduction by ln 2)."""
    F = np.float32
    xc = min(max(x, F(-104.0)), F(89.0))
    z = np.floor(xc * F(1.4426950408889634) + F(0.5))
    r = (xc - z * F(0.693359375)) - z * F(-2.12194440e-4)  # ln 2 in two parts
    p = F(1.9875691500e-4)
    p = p * r + F(1.3981999507e-3)
    p = p * r + F(8.3334519073e-3)
    p = p * r + F(4.1665795894e-2)
    p = p * r + F(1.6666665459e-1)
    p = p * r + F(5.0000001201e-1)
    y = p * (r * r) + r + F(1.0)
    # y * 2**n in two factors, so that results in the denormal range stay exact
    n = np.int32(z)
    n1 = n >> 1
    y = y * _float32_from_bits((n1 + 127) << 23) * _float32_from_bits((n - n1 + 127) << 23)
    if x > F(88.72283935546875):  # log(FLT_MAX)
        y = F(np.inf)
    if x < F(-103.97208404541016):  # below half the smallest denormal
        y = F(0.0)
    if x != x:
        y = x
    return y


def _exp(x):  # pragma: no cover - typing stub, see the overload below
    return np.exp(x)


@overload(_exp, jit_options={"fastmath": {"contract", "reassoc", "arcp"}})
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _expf(x)
    if x == types.float64:
        return lambda x: _expd(x)
    return lambda x: np.exp(x)


# ---------------------------------------------------------------------------
# Row-wise softmax family
# ---------------------------------------------------------------------------


@njit
def _max_ignoring_nan(x):
    """Max of a 1-D array, skipping NaN (-inf if empty).

    Sixteen independent running maxima so LLVM's SLP vectoriser turns the
    loop into vector compares (a single running max stays scalar without
    the no-NaN flag, which is deliberately off).
    """
    F = x.dtype.type
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = F(-np.inf)
    m8 = m9 = m10 = m11 = m12 = m13 = m14 = m15 = F(-np.inf)
    n = x.shape[0]
    j = 0
    while j + 16 <= n:
        v = x[j]
        m0 = v if v > m0 else m0
        v = x[j + 1]
        m1 = v if v > m1 else m1
        v = x[j + 2]
        m2 = v if v > m2 else m2
        v = x[j + 3]
        m3 = v if v > m3 else m3
        v = x[j + 4]
        m4 = v if v > m4 else m4
        v = x[j + 5]
        m5 = v if v > m5 else m5
        v = x[j + 6]
        m6 = v if v > m6 else m6
        v = x[j + 7]
        m7 = v if v > m7 else m7
        v = x[j + 8]
        m8 = v if v > m8 else m8
        v = x[j + 9]
        m9 = v if v > m9 else m9
        v = x[j + 10]
        m10 = v if v > m10 else m10
        v = x[j + 11]
        m11 = v if v > m11 else m11
        v = x[j + 12]
        m12 = v if v > m12 else m12
        v = x[j + 13]
        m13 = v if v > m13 else m13
        v = x[j + 14]
        m14 = v if v > m14 else m14
        v = x[j + 15]
        m15 = v if v > m15 else m15
        j += 16
    m = max(
        max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7))),
        max(max(max(m8, m9), max(m10, m11)), max(max(m12, m13), max(m14, m15))),
    )
    while j < n:
        v = x[j]
        m = v if v > m else m
        j += 1
    return m


@njit
def _row_shift(x, i):
    # Row max used as the shift; a non-finite max (rows of all -inf, or a +inf)
    # shifts by 0 like scipy, so -inf rows give 0/0 = NaN and +inf gives NaN.
    # A NaN anywhere makes the whole row NaN whatever the shift.
    if x.shape[1] >= 64:
        m = _max_ignoring_nan(x[i])
    else:  # short rows: a row view's reference counting would cost more than the loop
        m = x.dtype.type(-np.inf)
        for j in range(x.shape[1]):
            v = x[i, j]
            m = v if v > m else m
    if not np.isfinite(m):
        m = x.dtype.type(0)
    return m


# Exponentials are summed in x's dtype over blocks of this many entries (reassoc
# vectorises each block into many partial sums) and the block sums in float64:
# plain float32 partial sums over a 10^8-entry row were off by 6e-5.  A row of at
# most one block sums exactly as before.
_SUM_BLOCK = 4096


@njit
def _row_sum_exp(x, i, m):
    """sum_j exp(x[i, j] - m) in x's dtype, for rows of at most _SUM_BLOCK entries.

    Longer rows go to kernels of their own built on _long_row_sum_exp (chosen
    by the wrappers): a test of the row length here cost 5% on rows of 10.
    """
    s = x.dtype.type(0)
    for j in range(x.shape[1]):
        s += _exp(x[i, j] - m)
    return s


@njit
def _long_row_sum_exp(x, i, m):
    """sum_j exp(x[i, j] - m) in x's dtype, blocked (see _SUM_BLOCK)."""
    k = x.shape[1]
    total = 0.0
    for j0 in range(0, k, _SUM_BLOCK):
        s = x.dtype.type(0)
        for j in range(j0, min(j0 + _SUM_BLOCK, k)):
            # an unsigned index has no negative-index test, so the loop vectorises
            s += _exp(x[i, np.uint64(j)] - m)
        total += s
    return x.dtype.type(total)


@njit
def _row_exp_into(x, i, m, out):
    """out[i] = exp(x[i] - m); returns its sum as a float64, blocked as _row_sum_exp."""
    k = x.shape[1]
    if k <= _SUM_BLOCK:  # one block: the plain loop is faster on short rows
        s = x.dtype.type(0)
        for j in range(k):
            e = _exp(x[i, j] - m)
            out[i, j] = e
            s += e
        return np.float64(s)
    total = 0.0
    for j0 in range(0, k, _SUM_BLOCK):
        s = x.dtype.type(0)
        for j in range(j0, min(j0 + _SUM_BLOCK, k)):
            ju = np.uint64(j)
            e = _exp(x[i, ju] - m)
            out[i, ju] = e
            s += e
        total += s
    return total


# Each row kernel is a serial loop over the rows lo:hi (compiled once, with
# int64 bounds), called directly on one thread and from a small prange over
# row ranges on several (_split_rows).  A prange over the rows themselves
# compiled every helper twice (for the int64 and the uint64 index of the
# parallel loop) and was compiled even for inputs run on one thread: the cold
# compile of the row kernels and of linear took twice as long.


@njit
def _softmax_rows(x, out, lo, hi):
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(x, i)
        sf = x.dtype.type(_row_exp_into(x, i, m, out))
        if not np.isfinite(sf):
            # a NaN or +inf in the row: the whole row is NaN, as in scipy
            sf = x.dtype.type(np.nan)
        for j in range(x.shape[1]):
            out[i, j] = out[i, j] / sf


@njit
def _log_softmax_rows(x, out, lo, hi):
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(x, i)
        log_norm = np.log(_row_sum_exp(x, i, m))
        for j in range(x.shape[1]):
            out[i, j] = (x[i, j] - m) - log_norm


@njit
def _long_log_softmax_rows(x, out, lo, hi):  # rows longer than _SUM_BLOCK
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(x, i)
        log_norm = np.log(_long_row_sum_exp(x, i, m))
        for j in range(x.shape[1]):
            out[i, j] = (x[i, j] - m) - log_norm


@njit
def _logsumexp_rows(x, out, lo, hi):
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(x, i)
        out[i] = np.log(_row_sum_exp(x, i, m)) + m


@njit
def _long_logsumexp_rows(x, out, lo, hi):  # rows longer than _SUM_BLOCK
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(x, i)
        out[i] = np.log(_long_row_sum_exp(x, i, m)) + m


@njit
def _fix_logsumexp_near_zero(x, out):
    # A pass of its own, with a branch-free (vectorized) test first: such rows are rare.
    near = 0
    for i in range(out.shape[0]):
        near |= (out[i] > -1) & (out[i] < 1)
    if near:
        for i in range(out.shape[0]):
            if -1 < out[i] < 1:  # finite, so the shift is the row max
                out[i] = _logsumexp_near_zero(x, i, _row_shift(x, i))


@njit
def _logsumexp_near_zero(x, i, m):
    # Near 0, log(sum) loses the terms below the rounding of the max term's 1:
    # log(count) + log1p(rest / count), rest the sum without the count maxima, as SciPy.
    F = x.dtype.type
    count = 0
    rest = 0.0  # float64: long rows (see _SUM_BLOCK)
    for j in range(x.shape[1]):
        v = x[i, j]
        if v == m:
            count += 1
        else:
            rest += np.exp(v - m)
    return F(np.log(F(count)) + np.log1p(F(rest / count)) + m)


@njit
def _cross_entropy_rows(logits, y, out, lo, hi):
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(logits, i)
        # (m - z_y) + log-sum: exact for large equal float32 logits, unlike lse - z_y
        log_sum = np.log(_row_sum_exp(logits, i, m))
        out[i] = (m - logits[i, y[i]]) + log_sum


@njit
def _long_cross_entropy_rows(logits, y, out, lo, hi):  # rows longer than _SUM_BLOCK
    for i in range(np.uint64(lo), np.uint64(hi)):  # unsigned: no negative-index test
        m = _row_shift(logits, i)
        log_sum = np.log(_long_row_sum_exp(logits, i, m))
        out[i] = (m - logits[i, y[i]]) + log_sum


# Rows of at least this much work a thread are split over Python threads (below,
# submitting to the pool costs more than a second thread saves).
_SPLIT_MIN_WORK = 1 << 17
_pool = None
_pool_pid = None


def _thread_pool():
    """The thread pool of the row kernels, created at first use (again in a forked child)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():  # a fork has no threads of its parent
        _pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="fastsoftmax-numba")
        _pool_pid = os.getpid()
    return _pool


def _split_rows(rows, work, n, *args, min_work=_SPLIT_MIN_WORK, align=1):
    """``rows(*args, lo, hi)`` over the rows 0:n, in parts of ``min_work`` or more work each.

    The part kernels are serial and release the GIL, so Python threads run
    them in parallel: no parallel kernel is compiled at all.  The parts start
    at multiples of ``align`` rows, so that a kernel working on blocks of
    rows gives the same result however the rows are split.
    """
    threads = int(min(get_num_threads(), work // min_work, n // align))
    if threads <= 1:
        rows(*args, 0, n)
        return
    bounds = [p * n // threads // align * align for p in range(threads)] + [n]
    pool = _thread_pool()
    parts = [pool.submit(rows, *args, bounds[p], bounds[p + 1]) for p in range(1, threads)]
    rows(*args, bounds[0], bounds[1])  # the first part on the calling thread
    for part in parts:
        part.result()


def softmax(x, out):
    _split_rows(_softmax_rows, x.size, x.shape[0], x, out)
    return out


def log_softmax(x, out):
    if x.shape[1] <= _SUM_BLOCK:
        _split_rows(_log_softmax_rows, x.size, x.shape[0], x, out)
    else:
        _split_rows(_long_log_softmax_rows, x.size, x.shape[0], x, out)
    return out


def logsumexp(x, out):
    if x.shape[1] <= _SUM_BLOCK:
        _split_rows(_logsumexp_rows, x.size, x.shape[0], x, out)
    else:
        _split_rows(_long_logsumexp_rows, x.size, x.shape[0], x, out)
    _fix_logsumexp_near_zero(x, out)
    return out


def cross_entropy(logits, y, out):
    n, size = logits.shape[0], logits.size
    if logits.shape[1] <= _SUM_BLOCK:
        _split_rows(_cross_entropy_rows, size, n, logits, y, out)
    else:
        _split_rows(_long_cross_entropy_rows, size, n, logits, y, out)
    return out


# ---------------------------------------------------------------------------
# Explicit SIMD vectors for the fused kernels
# ---------------------------------------------------------------------------
# LLVM's loop vectoriser keeps to 256-bit vectors on AVX-512 Intel cores (its
# "prefer-vector-width" tuning) and spills the register blocks of the fused
# kernels, which ran at half the speed of the cython backend.  The fused
# kernels below hold their register blocks in explicit LLVM vectors of
# _VECTOR_BYTES (the widest the host has), built with a few intrinsics: a
# vector type, loads/stores (masked for the last features), fused
# multiply-add, broadcast, lane sum and a prefetch hint.  Elsewhere LLVM
# splits wider vectors into what the target has, so the code is portable.


def _host_vector_bytes():
    """Bytes of the widest SIMD vector of numba's target (64 with AVX-512).

    ``FASTSOFTMAX_NUMBA_VECTOR_BYTES`` (16, 32 or 64) overrides it (tests
    run the narrow paths with it).  numba's on-disk cache is keyed by the
    target CPU, so kernels built for one width are not loaded on a host of
    another.
    """
    forced = os.environ.get("FASTSOFTMAX_NUMBA_VECTOR_BYTES")
    if forced:
        if forced not in ("16", "32", "64"):
            raise ValueError(f"FASTSOFTMAX_NUMBA_VECTOR_BYTES={forced!r}: use 16, 32 or 64")
        return int(forced)
    if numba.config.CPU_NAME:  # a cache built for another CPU (NUMBA_CPU_NAME)
        features = numba.config.CPU_FEATURES or ""
    else:
        from llvmlite import binding

        features = binding.get_host_cpu_features().flatten()
    if "+avx512f" in features:
        return 64
    if "+avx" in features:
        return 32
    return 16


_VECTOR_BYTES = _host_vector_bytes()


class _VectorType(types.Type):
    """An LLVM vector of ``_VECTOR_BYTES`` of a float dtype (a register)."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = _VECTOR_BYTES * 8 // dtype.bitwidth
        super().__init__(name=f"fastsoftmax.vector({dtype} x {self.lanes})")


@register_model(_VectorType)
class _VectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _is_matrix(a, floats=True):
    return (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"
            and (not floats or isinstance(a.dtype, types.Float)))  # fmt: skip


def _element_pointer(context, builder, sig, args):
    """Pointer to ``a[r, j]`` of the C-contiguous matrix ``a`` (args[0:3]), unchecked."""
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    r = context.cast(builder, args[1], sig.args[1], types.intp)
    j = context.cast(builder, args[2], sig.args[2], types.intp)
    row = builder.extract_value(ary.shape, 1)
    return builder.gep(ary.data, [builder.add(builder.mul(r, row), j)])


def _vector_pointer(context, builder, sig, args, vector):
    return builder.bitcast(_element_pointer(context, builder, sig, args), vector.as_pointer())


def _first_lanes(context, builder, lanes, n, n_type):
    """The mask of the lanes ``< n``."""
    i32 = ir.IntType(32)
    n = context.cast(builder, n, n_type, types.int32)
    splat = builder.insert_element(ir.VectorType(i32, lanes)(ir.Undefined), n, i32(0))
    lane_vector = ir.VectorType(i32, lanes)
    splat = builder.shuffle_vector(splat, splat, ir.Constant(lane_vector, [0] * lanes))
    return builder.icmp_signed("<", ir.Constant(lane_vector, list(range(lanes))), splat)


def _llvm_intrinsic(builder, name, result, operands):
    fn = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(result, [v.type for v in operands]), name
    )
    return builder.call(fn, operands)


def _vector_suffix(vt):
    return f"v{vt.lanes}f{vt.dtype.bitwidth}"


@intrinsic
def _vload(typingctx, a, r, j):
    """The vector ``a[r, j:j + lanes]`` (``a`` a C-contiguous float matrix; unchecked)."""
    if not _is_matrix(a):
        return None
    vt = _VectorType(a.dtype)

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(vt)
        ptr = _vector_pointer(context, builder, sig, args, vector)
        return builder.load(ptr, align=vt.dtype.bitwidth // 8)

    return vt(a, r, j), codegen


@intrinsic
def _vload_part(typingctx, a, r, j, n):
    """``a[r, j:j + n]`` in the first ``n`` lanes, zeros in the others (a masked load)."""
    if not _is_matrix(a):
        return None
    vt = _VectorType(a.dtype)

    def codegen(context, builder, sig, args):
        vector = context.get_value_type(vt)
        ptr = _vector_pointer(context, builder, sig, args, vector)
        mask = _first_lanes(context, builder, vt.lanes, args[3], sig.args[3])
        align = ir.IntType(32)(vt.dtype.bitwidth // 8)
        return _llvm_intrinsic(builder, f"llvm.masked.load.{_vector_suffix(vt)}.p0", vector,
                               [ptr, align, mask, ir.Constant(vector, None)])  # fmt: skip

    return vt(a, r, j, n), codegen


def _is_numeric_matrix(a):
    return _is_matrix(a, floats=False) and isinstance(a.dtype, (types.Integer, types.Float))


def _convert_vector(builder, x, source, vt, target):
    """The vector ``x`` of ``source`` numbers converted to the floats of ``vt``."""
    if isinstance(source, types.Float):
        if source.bitwidth < vt.dtype.bitwidth:
            return builder.fpext(x, target)
        return builder.fptrunc(x, target) if source.bitwidth > vt.dtype.bitwidth else x
    return builder.sitofp(x, target) if source.signed else builder.uitofp(x, target)


@intrinsic
def _vload_as(typingctx, a, r, j, like):
    """``a[r, j:j + lanes]`` converted to a vector of ``like``'s float dtype.

    ``a`` is a C-contiguous matrix of any numbers: uint8 pixels are widened
    in registers, as the cython kernels do, instead of into a scratch copy.
    """
    if not (_is_numeric_matrix(a) and isinstance(like, types.Array)
            and isinstance(like.dtype, types.Float)):  # fmt: skip
        return None
    vt = _VectorType(like.dtype)

    def codegen(context, builder, sig, args):
        source = ir.VectorType(context.get_value_type(a.dtype), vt.lanes)
        ptr = _vector_pointer(context, builder, sig, args, source)
        x = builder.load(ptr, align=max(1, a.dtype.bitwidth // 8))
        return _convert_vector(builder, x, a.dtype, vt, context.get_value_type(vt))

    return vt(a, r, j, like), codegen


@intrinsic
def _vload_part_as(typingctx, a, r, j, n, like):
    """``a[r, j:j + n]`` converted (see :func:`_vload_as`), zeros in the other lanes."""
    if not (_is_numeric_matrix(a) and isinstance(like, types.Array)
            and isinstance(like.dtype, types.Float)):  # fmt: skip
        return None
    vt = _VectorType(like.dtype)

    def codegen(context, builder, sig, args):
        element = context.get_value_type(a.dtype)
        source = ir.VectorType(element, vt.lanes)
        ptr = _vector_pointer(context, builder, sig, args, source)
        mask = _first_lanes(context, builder, vt.lanes, args[3], sig.args[3])
        kind = "f" if isinstance(a.dtype, types.Float) else "i"
        name = f"llvm.masked.load.v{vt.lanes}{kind}{a.dtype.bitwidth}.p0"
        align = ir.IntType(32)(max(1, a.dtype.bitwidth // 8))
        x = _llvm_intrinsic(builder, name, source, [ptr, align, mask, ir.Constant(source, None)])
        return _convert_vector(builder, x, a.dtype, vt, context.get_value_type(vt))

    return vt(a, r, j, n, like), codegen


@intrinsic
def _vstore(typingctx, a, r, j, v):
    """``a[r, j:j + lanes] = v``."""
    if not (_is_matrix(a) and isinstance(v, _VectorType) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig, args, args[3].type)
        builder.store(args[3], ptr, align=v.dtype.bitwidth // 8)

    return types.none(a, r, j, v), codegen


@intrinsic
def _vstore_part(typingctx, a, r, j, n, v):
    """``a[r, j:j + n] = v[:n]`` (a masked store)."""
    if not (_is_matrix(a) and isinstance(v, _VectorType) and v.dtype == a.dtype):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vector_pointer(context, builder, sig, args, args[4].type)
        mask = _first_lanes(context, builder, v.lanes, args[3], sig.args[3])
        align = ir.IntType(32)(v.dtype.bitwidth // 8)
        _llvm_intrinsic(builder, f"llvm.masked.store.{_vector_suffix(v)}.p0", ir.VoidType(),
                        [args[4], ptr, align, mask])  # fmt: skip

    return types.none(a, r, j, n, v), codegen


@intrinsic
def _vprefetch(typingctx, a, r, j):
    """Hint: bring the cache line of ``a[r, j]`` into L2 (never faults)."""
    if not _is_matrix(a, floats=False):
        return None

    def codegen(context, builder, sig, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        ptr = builder.bitcast(_element_pointer(context, builder, sig, args), i8p)
        # read, locality 2 (L2, as the cython kernels' prefetch), data cache
        _llvm_intrinsic(builder, "llvm.prefetch.p0", ir.VoidType(), [ptr, i32(0), i32(2), i32(1)])

    return types.none(a, r, j), codegen


@intrinsic
def _vsplat(typingctx, x):
    """The vector of lanes all ``x`` (a float; its dtype is the vector's)."""
    if not isinstance(x, types.Float):
        return None
    vt = _VectorType(x)

    def codegen(context, builder, sig, args):
        i32 = ir.IntType(32)
        vector = context.get_value_type(vt)
        v = builder.insert_element(vector(ir.Undefined), args[0], i32(0))
        zeros = ir.Constant(ir.VectorType(i32, vt.lanes), [0] * vt.lanes)
        return builder.shuffle_vector(v, v, zeros)

    return vt(x), codegen


@intrinsic
def _vfma(typingctx, x, w, acc):
    """``acc + x w`` lane by lane, fused (one rounding)."""
    if not (isinstance(acc, _VectorType) and x == acc and w == acc):
        return None

    def codegen(context, builder, sig, args):
        return _llvm_intrinsic(builder, f"llvm.fma.{_vector_suffix(acc)}", args[0].type, args)

    return acc(x, w, acc), codegen


@intrinsic
def _vsum(typingctx, v):
    """The sum of the lanes of ``v`` (reassociated: LLVM adds halves until one lane is left)."""
    if not isinstance(v, _VectorType):
        return None

    def codegen(context, builder, sig, args):
        # one reduction call instead of a tree of shuffles per accumulator:
        # the tiles hold 20 accumulators, and their IR was most of the cold compile
        element = context.get_value_type(v.dtype)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(element, [element, args[0].type]),
            f"llvm.vector.reduce.fadd.{_vector_suffix(v)}",
        )  # fmt: skip
        return builder.call(fn, [ir.Constant(element, -0.0), args[0]], fastmath=("reassoc",))

    return v.dtype(v), codegen


@intrinsic
def _vlanes(typingctx, a):
    """The lanes of a vector of ``a``'s dtype (a compile-time constant)."""
    if not (isinstance(a, types.Array) and isinstance(a.dtype, types.Float)):
        return None
    lanes = _VectorType(a.dtype).lanes

    def codegen(context, builder, sig, args):
        return context.get_constant(types.intp, lanes)

    return types.intp(a), codegen


# ---------------------------------------------------------------------------
# Building blocks of the logistic kernel: 8, 4 or 1 rows against a weight vector
# ---------------------------------------------------------------------------
# (The softmax kernels and linear use the explicit-vector tiles above.)  Rows
# against one weight vector, in loops over the contiguous feature axis that
# LLVM vectorises; uint8 x promotes to the weights' float dtype, so bytes are
# converted in registers.


@njit
def _dot1(x0, w):
    s0 = w.dtype.type(0)
    for j in range(w.shape[0]):
        s0 += x0[j] * w[j]
    return s0


@njit
def _dot8(x0, x1, x2, x3, x4, x5, x6, x7, w):
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = w.dtype.type(0)
    for j in range(w.shape[0]):
        wj = w[j]
        s0 += x0[j] * wj
        s1 += x1[j] * wj
        s2 += x2[j] * wj
        s3 += x3[j] * wj
        s4 += x4[j] * wj
        s5 += x5[j] * wj
        s6 += x6[j] * wj
        s7 += x7[j] * wj
    return s0, s1, s2, s3, s4, s5, s6, s7


@njit
def _axpy1(g, x0, a0):
    for j in range(g.shape[0]):
        g[j] += x0[j] * a0


@njit
def _axpy4(g, x0, x1, x2, x3, a0, a1, a2, a3):
    # g += a0 x0 + a1 x1 + a2 x2 + a3 x3: one load/store of g per 4 rows.
    for j in range(g.shape[0]):
        g[j] += x0[j] * a0 + x1[j] * a1 + x2[j] * a2 + x3[j] * a3


@njit
def _row_index(rows, indexed, k):
    return rows[k] if indexed else k


@njit
def _softmax_residual(Z, r, yi, wi, weighted):
    """Turn logits Z[r] into s_i (P - Y)_i in place; return s_i * CE_i (float64).

    Same operations as the numpy reference: max shift (0 if not finite),
    exp, sum, log-sum-exp minus the target logit, P = e / sum, P[y] -= 1,
    then the weight.
    """
    C = Z.shape[1]
    m = Z.dtype.type(-np.inf)
    for c in range(C):
        if Z[r, c] > m:
            m = Z[r, c]
    if not np.isfinite(m):
        m = Z.dtype.type(0)
    z_y = Z[r, yi]
    s = 0.0
    for c in range(C):
        e = _exp(Z[r, c] - m)
        Z[r, c] = e
        s += e
    sf = Z.dtype.type(s)
    ce = (m - z_y) + np.log(sf)
    for c in range(C):
        Z[r, c] = Z[r, c] / sf
    Z[r, yi] -= 1
    if weighted:
        for c in range(C):
            Z[r, c] *= wi
        return float(ce * wi)
    return float(ce)


# The register tiles of the fused kernels: straight-line code generated from
# their shape by _numba_tiles (numba has no loop unrolling into registers).
# Lanes run over features, the contiguous axis of X rows and of WT (C, d), so
# every lane is busy whatever the number of classes.  The classes go in the
# groups of _numba_tiles.CLASS_GROUPS (for float32 10 classes, with 2 rows of
# logits or 2 vectors of features of the gradient, so a row of X is read once
# for the 10 classes of MNIST), and the block functions below compile the
# tiles of the groups of their TilePlan only.  The last ``d % lanes``
# features go in masked loads (_logits_tail, _grad_tail).  ``_nrt=False``:
# the tiles allocate nothing, and without it numba's reference counting of
# the array arguments made LLVM spill the accumulators around its calls.

_LOGITS_TILES, _GRAD_TILES = _numba_tiles.build_tiles(globals(), njit(_nrt=False))
_ANY_CLASS_COUNT = {itemsize: _numba_tiles.TilePlanType(groups)
                    for itemsize, groups in _numba_tiles.CLASS_GROUPS.items()}  # fmt: skip


def _plan_groups(plan, dtype):
    """The class groups of the ``plan`` argument's type (``None``: every group of ``dtype``)."""
    if not isinstance(plan, _numba_tiles.TilePlanType):
        plan = _ANY_CLASS_COUNT.get(dtype.bitwidth // 8, _ANY_CLASS_COUNT[8])
    return tuple(group in plan.groups for group in (10, 5, 1))


@njit(_nrt=False)
def _logits_tail(A, ri, i, rows, WT, c, classes, Z):
    """Add the last ``d % lanes`` features' part to ``Z[c + k, i + q]`` (q < rows, k < classes).

    Masked loads, one (row, class) at a time: off the tiles, whose masked
    copy of their loop doubled their compile time.
    """
    d = A.shape[1]
    full = d - d % _vlanes(WT)
    if full == d:
        return
    zero = _vsplat(WT.dtype.type(0))
    for k in range(classes):
        w = _vload_part(WT, c + k, full, d - full)
        for q in range(rows):
            x = _vload_part_as(A, ri[i + q], full, d - full, WT)
            Z[c + k, i + q] += _vsum(_vfma(x, w, zero))


@njit(_nrt=False)
def _grad_tail(A, ri, m, Z, c, end, G, j, P, pn):
    """``G[c:end, j:] += Z[c:end, :m] @ A[ri[:m], j:]``, a class and a (masked) vector at a time.

    The last features (less than a tile's width): a few percent of the time
    for MNIST, and no masked variant of every tile to compile.
    """
    d = G.shape[1]
    V = _vlanes(G)
    for k in range(c, end):
        for jj in range(j, d, V):
            n = min(V, d - jj)
            g = _vload_part(G, k, jj, n)
            for i in range(m):
                _vprefetch(P, pn[i], jj)
                g = _vfma(_vload_part_as(A, ri[i], jj, n, G), _vsplat(Z[k, i]), g)
            _vstore_part(G, k, jj, n, g)


def _logits_block(A, ri, m, WT, b, Z, P, pf, plan):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_logits_block, jit_options={"fastmath": {"contract", "reassoc", "arcp"}})
def _logits_block_overload(A, ri, m, WT, b, Z, P, pf, plan):
    """``Z[:, :m] = (A[ri[:m]] @ WT.T + b).T`` (class-major logits of a block of rows).

    ``ri`` holds 3 more entries (repeats of its last row), so the rows go in
    groups of 4; the first class group of the rows ``i:i + 4`` prefetches
    the rows ``pf[i // 2]`` and ``pf[i // 2 + 1]`` of ``P`` (X, of the same
    features as ``A``).  ``plan`` (a :class:`_numba_tiles.TilePlan` of the
    class count, or ``None``) selects the tiles compiled.
    """
    use10, use5, use1 = _plan_groups(plan, WT.dtype)
    tile10, tile5, tile1 = (_LOGITS_TILES[group] for group in (10, 5, 1))

    def logits_block(A, ri, m, WT, b, Z, P, pf, plan):
        C = WT.shape[0]
        for i in range(0, m, 4):
            c = np.intp(0)  # (a literal 0 would compile each tile once more, for c = 0)
            pa, pb = pf[i // 2], pf[i // 2 + 1]
            if use10:
                while c + 10 <= C:
                    tile10(A, ri, i, WT, b, c, Z, P, pa)
                    tile10(A, ri, i + 2, WT, b, c, Z, P, pb)
                    pa = pb = ri[i]
                    c += 10
            if use5:
                while c + 5 <= C:
                    tile5(A, ri, i, WT, b, c, Z, P, pa)
                    pa = pb
                    c += 5
            if use1:
                while c < C:
                    tile1(A, ri, i, WT, b, c, Z, P, pa)
                    pa = pb
                    c += 1
            _logits_tail(A, ri, i, 4, WT, 0, C, Z)

    return logits_block


def _grad_block(A, ri, m, Z, G, P, pn, plan):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_grad_block, jit_options={"fastmath": {"contract", "reassoc", "arcp"}})
def _grad_block_overload(A, ri, m, Z, G, P, pn, plan):
    """``G += Z[:, :m] @ A[ri[:m]]``; the first class group prefetches the rows ``pn[:m]`` of ``P``.

    ``plan`` as in :func:`_logits_block`.  Tiles of 2 vectors of features
    for groups of 10 classes, of 4 vectors for the others.
    """
    use10, use5, use1 = _plan_groups(plan, G.dtype)
    tile10, tile5, tile1 = (_GRAD_TILES[group] for group in (10, 5, 1))

    def grad_block(A, ri, m, Z, G, P, pn, plan):
        C, d = G.shape
        V = _vlanes(G)
        c = np.intp(0)  # (not literal 0s: see _logits_block)
        while c < C:
            j = np.intp(0)
            if use10 and c + 10 <= C:
                group = 10
                while j + 2 * V <= d:
                    tile10(A, ri, m, Z, c, G, j, P, pn)
                    j += 2 * V
            elif use5 and c + 5 <= C:
                group = 5
                while j + 4 * V <= d:
                    tile5(A, ri, m, Z, c, G, j, P, pn)
                    j += 4 * V
            else:
                group = 1
                while use1 and j + 4 * V <= d:
                    tile1(A, ri, m, Z, c, G, j, P, pn)
                    j += 4 * V
            _grad_tail(A, ri, m, Z, c, c + group, G, j, P, pn)
            pn = ri
            c += group

    return grad_block


@njit
def _softmax_residual_block(Z, m, rid, y, sw, weighted, gb, stats):
    """Turn the class-major logits ``Z[:, :m]`` of the rows ``rid[:m]`` into ``s_i (P - Y)_i``.

    In place; adds their class sums to ``gb`` ((C,) float64) and returns
    ``sum_i s_i CE_i`` (float64).  The operations of
    :func:`_softmax_residual`, in loops over the rows that LLVM vectorises,
    except that probabilities below the normal range are flushed to zero:
    with wide logits (uint8 pixels) most probabilities underflow, and the
    operations on denormals take microcode assists on Intel cores (about 3x
    slower), which the cython kernels avoid by flushing denormals too.
    ``stats`` is (3, >= m) float64 scratch.
    """
    C = Z.shape[0]
    F = Z.dtype.type
    # Below log_tiny an exponential, and its probability (e / sum, sum <= C),
    # is under the smallest normal number: flushed to zero, the exp not even
    # computed (its own scaling would make denormals).
    log_tiny = F((-87.33654 if Z.itemsize == 4 else -708.3964) + np.log(max(C, 1)))
    shift, total, label_logit = stats[0], stats[1], stats[2]
    for i in range(m):
        shift[i] = -np.inf
        total[i] = 0.0
        label_logit[i] = Z[y[rid[i]], i]
    for c in range(C):
        for i in range(m):
            shift[i] = max(shift[i], Z[c, i])  # (a NaN logit is skipped, as in _softmax_residual)
    for i in range(m):
        if not np.isfinite(shift[i]):
            shift[i] = 0.0
    for c in range(C):
        for i in range(m):
            x = Z[c, i] - F(shift[i])
            e = _exp(log_tiny if x < log_tiny else x)  # (a NaN goes through)
            e = F(0) if x < log_tiny else e
            Z[c, i] = e
            total[i] += e
    loss = 0.0
    for i in range(m):
        sf = F(total[i])
        ce = (F(shift[i]) - F(label_logit[i])) + np.log(sf)
        total[i] = sf
        loss += float(ce * sw[rid[i]]) if weighted else float(ce)
    for c in range(C):
        for i in range(m):
            Z[c, i] = Z[c, i] / F(total[i])
    for i in range(m):
        Z[y[rid[i]], i] -= 1
    if weighted:
        for c in range(C):
            for i in range(m):
                Z[c, i] *= sw[rid[i]]
    for c in range(C):
        g = 0.0
        for i in range(m):
            g += Z[c, i]
        gb[c] += g
    return loss


def _rows_source(X, Xb):  # pragma: no cover - typing stub, see the overload below
    raise NotImplementedError


@overload(_rows_source, jit_options={"fastmath": {"contract", "reassoc", "arcp"}})
def _rows_source_overload(X, Xb):
    """``(A, stage)``: the matrix the fused products read rows from, chosen when compiling.

    ``X`` itself when it is C-contiguous (uint8 pixels are widened in
    registers), else the scratch ``Xb``, into which each block is converted
    first.
    """
    if X.layout == "C":
        return lambda X, Xb: (X, False)
    return lambda X, Xb: (Xb, True)


def _convert_row(X, r, A, q):  # pragma: no cover - typing stub, see the overload below
    raise NotImplementedError


@overload(_convert_row, jit_options={"fastmath": {"contract", "reassoc", "arcp"}})
def _convert_row_overload(X, r, A, q):
    """``A[q] = X[r]`` in ``A``'s dtype; nothing when ``A`` is a read-only X read in place."""
    if not A.mutable:  # (never called then: compiled only because _stage_block names it)
        return lambda X, r, A, q: None

    def convert(X, r, A, q):
        for j in range(X.shape[1]):
            A[q, j] = X[r, j]

    return convert


@njit
def _stage_block(X, A, stage, m, rid, ri):
    """Set ``ri[:m + 3]``, the rows of ``A`` of the block of rows ``rid[:m]`` of ``X``.

    In place (``ri = rid``) unless ``stage``: then the rows are converted
    into ``A[:m]`` (the products of the block before prefetched them from
    ``X``).  The 3 entries after ``m`` repeat the last row, so that the
    logits go in whole groups of 4 rows.
    """
    if stage:
        for q in range(m):
            _convert_row(X, rid[q], A, q)
            ri[q] = q
    else:
        for q in range(m):
            ri[q] = rid[q]
    for q in range(m, m + 3):
        ri[q] = ri[m - 1]


@njit
def _softmax_grad_range(X, A, stage, rows, indexed, lo, hi, WT, b, y, sw, weighted, G, gb,
                        Z, idx, stats, plan):  # fmt: skip
    """Rows ``rows[lo:hi]`` (or ``lo:hi`` when not ``indexed``) of softmax regression.

    Accumulates ``sum_i s_i x_i (P - Y)_i`` into ``G`` (C, d, the transposed
    gradient) and the bias part into ``gb`` ((C,) float64); returns
    ``sum_i s_i CE_i`` (float64).  Nothing is divided by the weight sum here.
    Blocks of ``Z.shape[1] - 3`` rows: their logits (:func:`_logits_block`),
    residual (:func:`_softmax_residual_block`) and gradient
    (:func:`_grad_block`, from the rows still in cache), while the rows of
    the next block are prefetched from ``X`` (half by each product).  The
    rows are read in place from ``A`` = ``X`` unless ``stage`` (X of another
    dtype than the weights, e.g. uint8): then each block is first converted
    into ``A`` (:func:`_stage_block`).
    Scratch: ``Z`` (C, block + 3) of the weights' dtype, ``idx`` (4,
    block + 3) intp, ``stats`` (3, block) float64.  ``plan``: the
    :class:`_numba_tiles.TilePlan` of the class count (or ``None``).
    """
    d = X.shape[1]
    block = Z.shape[1] - 3
    last = (rows.shape[0] if indexed else X.shape[0]) - 1  # rows after hi are prefetched too
    ri, rid, pf, pn = idx[0], idx[1], idx[2], idx[3]
    loss = 0.0
    for k in range(lo, hi, block):
        m = min(block, hi - k)
        for q in range(m):
            rid[q] = rows[k + q] if indexed else k + q
        for q in range(block + 3):
            s = min(k + m + q, last)
            pf[q] = rows[s] if indexed else s  # the next rows, in order
        _stage_block(X, A, stage, m, rid, ri)
        # the first half of the next block prefetched by the logits, the rest by the gradient
        for q in range(m):
            pn[q] = pf[block // 2 + q // 2] if q % 2 == 0 else rid[q]
        _logits_block(A, ri, m, WT, b, Z, X, pf, plan)
        loss += _softmax_residual_block(Z, m, rid, y, sw, weighted, gb, stats)
        _grad_block(A, ri, m, Z, G, X, pn, plan)
    return loss


@njit
def _fused_scratch(count, block, WT):
    """``count`` copies of the scratch ``Z``, ``idx``, ``stats`` of :func:`_softmax_grad_range`."""
    Z = np.empty((count, WT.shape[0], block + 3), WT.dtype)
    idx = np.zeros((count, 4, block + 3), np.intp)
    stats = np.empty((count, 3, block), np.float64)
    return Z, idx, stats


@njit
def _weight_sum(rows, indexed, lo, hi, sw, weighted):
    if not weighted:
        return float(hi - lo)
    m = 0.0
    for k in range(lo, hi):
        m += sw[_row_index(rows, indexed, k)]
    return m


@njit
def _sum_squares(a):
    s = 0.0
    for v in a.reshape(a.size):
        s += float(v) * float(v)
    return s


@njit(parallel=True)
def _softmax_sums_kernel(X, WT, b, y, sw, weighted, G, XB, coef_grad_out, intercept_grad_out,
                         plan):  # fmt: skip
    # G: zeroed (n_chunks, C, d) per-thread accumulators; XB: (n_chunks, block,
    # d or 0) per-thread blocks of converted rows (see _rows_source), aligned
    # by the caller (_aligned_empty).
    # Explicit loops, no array expressions: in a parallel function numba turns
    # each of them (np.zeros, G[0] += G[t], np.sum) into a parallel loop of
    # its own, seconds of cold compile for nothing (issue 13).
    n = X.shape[0]
    C, d = WT.shape
    F = WT.dtype.type
    n_chunks = G.shape[0]
    rows = np.empty(0, np.intp)
    GB = np.empty((n_chunks, C), np.float64)
    L = np.empty(n_chunks, np.float64)
    Z, idx, stats = _fused_scratch(n_chunks, XB.shape[1], WT)
    for t in prange(n_chunks):
        for c in range(C):
            GB[t, c] = 0.0
        lo = t * n // n_chunks
        hi = (t + 1) * n // n_chunks
        A, stage = _rows_source(X, XB[t])
        L[t] = _softmax_grad_range(
            X, A, stage, rows, False, lo, hi, WT, b, y, sw, weighted, G[t], GB[t], Z[t], idx[t],
            stats[t], plan,
        )  # fmt: skip
    for c in range(C):  # the threads' sums, in thread order
        for j in range(d):
            g = G[0, c, j]
            for t in range(1, n_chunks):
                g += G[t, c, j]
            coef_grad_out[c, j] = g
    for c in range(C):
        gb = 0.0
        for t in range(n_chunks):
            gb += GB[t, c]
        intercept_grad_out[c] = F(gb)
    loss = 0.0
    for t in range(n_chunks):
        loss += L[t]
    return loss, _weight_sum(rows, False, 0, n, sw, weighted)


def _chunks(n, d):
    """Number of row chunks (= threads) of a fused kernel over n rows of d features."""
    threads = _threads(n * max(d, 1))
    # A chunk should hold a few row blocks, else the per-thread accumulators dominate.
    return max(1, min(threads, n // 64))


def _aligned_empty(shape, dtype):
    """An empty C-contiguous array whose data starts on a 64-byte (cache line) boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(nbytes + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _aligned_transpose(W):
    """``W.T`` as an aligned C-contiguous (C, d) array: each class's weights contiguous."""
    WT = _aligned_empty(W.shape[::-1], W.dtype)
    WT[...] = W.T
    return WT


def _aligned(a):
    """``a`` itself if its data starts on a cache line, else an aligned copy."""
    if a.ctypes.data % 64 == 0 and a.flags.c_contiguous:
        return a
    copy = _aligned_empty(a.shape, a.dtype)
    copy[...] = a
    return copy


def _row_blocks(leading, X, dtype):
    """Aligned (*leading, block, d) scratch of converted rows (d = 0 when X is read in place).

    Blocks of about 128 KB of X (as the cython kernels: 164 uint8 MNIST rows).
    """
    in_place = X.flags.c_contiguous  # (see _rows_source)
    block = _tiling.block_rows(X.shape[1], X.itemsize if in_place else np.dtype(dtype).itemsize)
    return _aligned_empty(leading + (block, 0 if in_place else X.shape[1]), dtype)


@njit
def _tile_row_stats(z):
    # a row's logit max over a class tile and sum of exponentials (shifted by that max,
    # or by 0 when it is not finite)
    mx = -np.inf
    for c in range(z.shape[0]):
        mx = max(mx, float(z[c]))
    shift = z.dtype.type(mx if np.isfinite(mx) else 0.0)
    total = 0.0
    for c in range(z.shape[0]):
        total += np.exp(z[c] - shift)
    return mx, total


@njit
def _tiles_loss(tile_max, tile_sum, label_logit, sw, weighted, a, m, lse):
    # lse[i] of rows a + i (i < m) from the tiles' maxima and sums; returns sum_i s_i CE_i
    loss = 0.0
    for i in range(m):
        mx = -np.inf
        for t in range(tile_max.shape[0]):
            mx = max(mx, tile_max[t, i])
        shift = mx if np.isfinite(mx) else 0.0
        total = 0.0
        for t in range(tile_max.shape[0]):
            total += tile_sum[t, i] * np.exp(tile_max[t, i] - shift)
        lse[i] = shift + np.log(total)
        loss += (sw[a + i] if weighted else 1.0) * (lse[i] - label_logit[i])
    return loss


@njit(parallel=True)
def _softmax_sums_tiled_kernel(X, WT, b, y, sw, weighted, block, class_tile, skip, log_threshold,
                               G, gb):  # fmt: skip
    # The tiled regime (see _tiling): per block of rows, pass A over class tiles
    # keeps each (tile, row)'s logit max and sum of exponentials, pass B
    # recomputes the tiles and adds s (P - Y) of the hot (row, tile)s into G
    # (C, d, zeroed) and gb ((C,) float64).  Tiles are split over threads,
    # which write disjoint rows of G: no per-thread copies of the gradient.
    n, d = X.shape
    C = WT.shape[0]
    F = WT.dtype.type
    ntiles = (C + class_tile - 1) // class_tile
    Xb = np.empty((block, d), WT.dtype)
    tile_max = np.empty((ntiles, block))
    tile_sum = np.empty((ntiles, block))
    label_logit = np.zeros(block)
    lse = np.empty(block)
    loss = 0.0
    for a in range(0, n, block):
        m = min(block, n - a)
        for i in range(m):
            for j in range(d):
                Xb[i, j] = F(X[a + i, j])
        xb = Xb[:m]
        for t in prange(ntiles):  # pass A
            c0 = t * class_tile
            c1 = min(C, c0 + class_tile)
            Z = np.dot(xb, np.ascontiguousarray(WT[c0:c1].T))
            for i in range(m):
                for c in range(c1 - c0):
                    Z[i, c] += b[c0 + c]
                tile_max[t, i], tile_sum[t, i] = _tile_row_stats(Z[i])
                if c0 <= y[a + i] < c1:
                    label_logit[i] = Z[i, y[a + i] - c0]
        loss += _tiles_loss(tile_max, tile_sum, label_logit, sw, weighted, a, m, lse)
        for t in prange(ntiles):  # pass B
            c0 = t * class_tile
            c1 = min(C, c0 + class_tile)
            hot = np.empty(m, np.intp)
            h = 0
            for i in range(m):
                if (not skip or c0 <= y[a + i] < c1 or tile_max[t, i] - lse[i] >= log_threshold):
                    hot[h] = i
                    h += 1
            if h == 0:
                continue
            xh = np.empty((h, d), WT.dtype)
            for k in range(h):
                xh[k] = xb[hot[k]]
            Z = np.dot(xh, np.ascontiguousarray(WT[c0:c1].T))
            for k in range(h):
                i = hot[k]
                shift = F(lse[i])
                s = F(sw[a + i]) if weighted else F(1)
                for c in range(c1 - c0):
                    Z[k, c] = np.exp(Z[k, c] + b[c0 + c] - shift)
                if c0 <= y[a + i] < c1:
                    Z[k, y[a + i] - c0] -= 1
                for c in range(c1 - c0):
                    Z[k, c] *= s
                    gb[c0 + c] += Z[k, c]
            G[c0:c1] += np.dot(np.ascontiguousarray(Z.T), xh)
    return loss


def softmax_ce_sums(X, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out, *,
                    skip_negligible=True):  # fmt: skip
    weighted = sample_weight is not None
    sw = sample_weight if weighted else np.empty(0, coef.dtype)
    bias = intercept if intercept is not None else np.zeros(coef.shape[0], coef.dtype)
    tiled, block, class_tile = _tiling.plan(X.shape[1], coef.shape[0], coef.itemsize, X.itemsize)
    if tiled and X.shape[0] and X.shape[1]:  # (np.dot needs non-empty blocks)
        _threads(X.shape[0] * X.shape[1] * coef.shape[0])
        coef_grad_out.fill(0)
        intercept_grad = np.zeros(coef.shape[0])
        loss = _softmax_sums_tiled_kernel(
            X, coef, bias, y, sw, weighted, max(1, min(block, X.shape[0])), class_tile,
            bool(skip_negligible), _tiling.log_skip_threshold(coef.dtype), coef_grad_out,
            intercept_grad,
        )  # fmt: skip
        intercept_grad_out[...] = intercept_grad
        return float(loss), weight_total(sample_weight, X.shape[0])
    n_chunks = _chunks(X.shape[0], X.shape[1])
    G = _aligned_empty((n_chunks,) + coef.shape, coef.dtype)
    G[...] = 0
    XB = _row_blocks((n_chunks,), X, coef.dtype)
    loss, total = _softmax_sums_kernel(
        X, _aligned(coef), bias, y, sw, weighted, G, XB, coef_grad_out, intercept_grad_out,
        _numba_tiles.TilePlan(coef.shape[0], coef.itemsize),
    )  # fmt: skip
    return float(loss), float(total)


# ---------------------------------------------------------------------------
# Linear
# ---------------------------------------------------------------------------


@njit
def _linear_narrow_rows(X, WT, b, out, plan, lo, hi):
    # Few classes: the logits blocks of the fused pass (_logits_block), class-major
    # in a scratch, then written out by rows.
    C, d = WT.shape
    block = 64
    Xb = np.empty((block, d), WT.dtype)
    A, stage = _rows_source(X, Xb)
    Z = np.empty((C, block + 3), WT.dtype)
    idx = np.empty((3, block + 3), np.intp)
    ri, rid, pf = idx[0], idx[1], idx[2]
    for k in range(lo, hi, block):
        m = min(block, hi - k)
        for q in range(block + 3):
            rid[q] = min(k + q, hi - 1)
            pf[q] = min(k + m + q, X.shape[0] - 1)
        _stage_block(X, A, stage, m, rid, ri)
        _logits_block(A, ri, m, WT, b, Z, X, pf, plan)
        for q in range(m):
            for c in range(C):
                out[k + q, c] = Z[c, q]


@njit
def _linear_wide_rows(X, W, b, out, lo, hi):
    # Many classes: out row += x_ij * W row (W = coef.T, (d, C)), vectorised over the
    # classes; b is empty without intercepts
    d, C = W.shape
    for i in range(lo, hi):
        o = out[i]
        for c in range(C):
            o[c] = 0
        for j in range(d):
            xij = X[i, j]
            w = W[j]
            for c in range(C):
                o[c] += xij * w[c]
        if b.shape[0]:
            for c in range(C):
                o[c] += b[c]


# Multiply-adds a thread of linear does at least (as the cython backend's threads)
_LINEAR_MIN_WORK = 1 << 20
# Above this many classes the class axis is a good SIMD dimension.
_NARROW_MAX_CLASSES = 32


def linear(X, coef, intercept, out):
    has_bias = intercept is not None
    n_classes = coef.shape[0]
    work = X.shape[0] * coef.shape[1] * max(n_classes, 1)
    if n_classes <= _NARROW_MAX_CLASSES:
        # Adding a zero bias is exact (only -0.0 turns into +0.0).
        bias = intercept if has_bias else np.zeros(n_classes, coef.dtype)
        plan = _numba_tiles.TilePlan(n_classes, coef.itemsize)
        _split_rows(_linear_narrow_rows, work, X.shape[0], X, np.ascontiguousarray(coef), bias,
                    out, plan, min_work=_LINEAR_MIN_WORK)  # fmt: skip
    else:
        # The wide kernel's vectors run over the classes: it reads coef
        # transposed, a copy of C d entries against n C d multiply-adds.
        bias = intercept if has_bias else np.empty(0, coef.dtype)
        W = np.ascontiguousarray(coef.T)
        _split_rows(_linear_wide_rows, work, X.shape[0], X, W, bias, out,
                    min_work=_LINEAR_MIN_WORK)
    return out


# ---------------------------------------------------------------------------
# Binary (sigmoid) kernels
# ---------------------------------------------------------------------------


@njit
def _sigmoid1(v, one):
    # exp(-|v|) never overflows: 1/(1+e) for v >= 0, e/(1+e) otherwise (NaN -> NaN).
    e = _exp(-np.abs(v))
    return (one if v >= 0 else e) / (one + e)


@njit
def _bce1(z, t):
    # log(1 + exp(z)) - t z == (1 - t) z + log1p(exp(-z)) for z > 0, else
    # -t z + log1p(exp(z)): no overflow, and a zero coefficient gives 0 (not
    # 0 * inf), so z = +-inf gives the limit as in the numpy reference.
    coefficient = (1 - t) if z > 0 else -t
    linear = coefficient * z if coefficient != 0 else coefficient * 0
    return linear + np.log1p(np.exp(-np.abs(z)))


@njit(parallel=True)
def _sigmoid_kernel(x, out):
    one = x.dtype.type(1)
    for i in prange(x.shape[0]):
        out[i] = _sigmoid1(x[i], one)


@njit(parallel=True)
def _bce_kernel(logits, y, out):
    for i in prange(logits.shape[0]):
        out[i] = _bce1(logits[i], y[i])


def sigmoid(x, out):
    _threads(x.size)
    _sigmoid_kernel(x, out)
    return out


def binary_cross_entropy(logits, y, out):
    _threads(logits.size)
    _bce_kernel(logits, y, out)
    return out


@njit
def _logistic_residual(z, t, wi, weighted, one):
    # Returns (s_i (p_i - t_i), s_i * loss_i as float64).
    loss = _bce1(z, t)
    r = _sigmoid1(z, one) - t
    if weighted:
        return r * wi, float(loss * wi)
    return r, float(loss)


@njit
def _logistic_grad_range(X, lo, hi, w, b, y, sw, weighted, g):
    """Rows lo:hi of the binary loss: g += sum s_i (p_i - y_i) x_i; returns (loss, db) sums."""
    loss = 0.0
    db = 0.0
    one = w.dtype.type(1)
    a = np.empty(8, w.dtype)
    k = lo
    while k + 8 <= hi:
        x0, x1, x2, x3 = X[k], X[k + 1], X[k + 2], X[k + 3]
        x4, x5, x6, x7 = X[k + 4], X[k + 5], X[k + 6], X[k + 7]
        z = _dot8(x0, x1, x2, x3, x4, x5, x6, x7, w)
        for q in range(8):
            wi = sw[k + q] if weighted else one
            a[q], lq = _logistic_residual(z[q] + b, y[k + q], wi, weighted, one)
            loss += lq
            db += a[q]
        _axpy4(g, x0, x1, x2, x3, a[0], a[1], a[2], a[3])
        _axpy4(g, x4, x5, x6, x7, a[4], a[5], a[6], a[7])
        k += 8
    while k < hi:
        wi = sw[k] if weighted else one
        a0, l0 = _logistic_residual(_dot1(X[k], w) + b, y[k], wi, weighted, one)
        loss += l0
        db += a0
        _axpy1(g, X[k], a0)
        k += 1
    return loss, db


@njit(parallel=True)
def _logistic_sums_kernel(X, w, b, y, sw, weighted, n_chunks, coef_grad_out):
    n, d = X.shape
    F = w.dtype.type
    bf = F(b)
    G = np.zeros((n_chunks, d), w.dtype)
    L = np.zeros(n_chunks, np.float64)
    DB = np.zeros(n_chunks, np.float64)
    for t in prange(n_chunks):
        lo = t * n // n_chunks
        hi = (t + 1) * n // n_chunks
        L[t], DB[t] = _logistic_grad_range(X, lo, hi, w, bf, y, sw, weighted, G[t])
    for t in range(1, n_chunks):
        G[0] += G[t]
    coef_grad_out[:] = G[0]
    rows = np.empty(0, np.intp)
    return np.sum(L), np.sum(DB), _weight_sum(rows, False, 0, n, sw, weighted)


def logistic_sums(X, coef, intercept, y, sample_weight, coef_grad_out):
    weighted = sample_weight is not None
    sw = sample_weight if weighted else np.empty(0, coef.dtype)
    loss, intercept_grad, total = _logistic_sums_kernel(
        X, coef, float(intercept), y, sw, weighted, _chunks(X.shape[0], X.shape[1]), coef_grad_out
    )
    return float(loss), float(intercept_grad), float(total)


# ---------------------------------------------------------------------------
# Classification error
# ---------------------------------------------------------------------------


@njit
def _n_errors(logits, y):
    wrong = 0
    for i in range(logits.shape[0]):
        if np.argmax(logits[i]) != y[i]:
            wrong += 1
    return wrong


def classification_error(logits, y):
    n = logits.shape[0]
    if n == 0:
        return 0.0
    if logits.shape[1] == 0:  # argmax of an empty row is undefined: NumPy raises
        return float(np.count_nonzero(np.argmax(logits, axis=1) != y)) / n
    return float(_n_errors(logits, y)) / n


# ---------------------------------------------------------------------------
# CSR kernels
# ---------------------------------------------------------------------------
# The weights are used as W = coef.T, (d, C): the entry x_ij of a sparse row
# reads the contiguous row W[j] and adds to the contiguous gradient row G[j],
# so every inner loop runs over the classes (vectorised), whereas coef's own
# layout would touch C cache lines per entry.  A row is done in one pass (its
# entries stay in L1): logits, softmax residual, scatter of x_i r_i^T into G.
# Threads own disjoint ranges of rows with about equal numbers of entries,
# each with its own (d, C) accumulator, reduced once.


@njit
def _csr_logits_row(data, indices, lo, hi, W, b, z):
    """z = W^T x + b for the sparse row of entries lo:hi (duplicates add up)."""
    C = W.shape[1]
    for c in range(C):
        z[c] = b[c]
    for k in range(lo, hi):
        x = data[k]
        w = W[indices[k]]
        for c in range(C):
            z[c] += x * w[c]


@njit
def _csr_scatter_row(data, indices, lo, hi, r, G):
    """G[j] += x_ij r for the entries lo:hi of a sparse row."""
    C = G.shape[1]
    for k in range(lo, hi):
        x = data[k]
        g = G[indices[k]]
        for c in range(C):
            g[c] += x * r[c]


@njit
def _softmax_csr_range(data, indices, indptr, lo, hi, W, b, y, sw, weighted, G, gb):
    # rows lo:hi: G (d, C) += sum_i x_i s_i (P - Y)_i, gb += the bias part; returns the CE sum
    Z = np.empty((1, W.shape[1]), W.dtype)
    one = W.dtype.type(1)
    loss = 0.0
    for i in range(lo, hi):
        start, stop = indptr[i], indptr[i + 1]
        _csr_logits_row(data, indices, start, stop, W, b, Z[0])
        loss += _softmax_residual(Z, 0, y[i], sw[i] if weighted else one, weighted)
        _csr_scatter_row(data, indices, start, stop, Z[0], G)
        for c in range(Z.shape[1]):
            gb[c] += Z[0, c]
    return loss


@njit(parallel=True)
def _softmax_sums_csr_kernel(data, indices, indptr, bounds, W, b, y, sw, weighted, G, GB, L):
    for t in prange(bounds.shape[0] - 1):
        L[t] = _softmax_csr_range(
            data, indices, indptr, bounds[t], bounds[t + 1], W, b, y, sw, weighted, G[t], GB[t]
        )


@njit(parallel=True)
def _sum_transposed(G, out):
    """out (C, d) = sum_t G[t].T for per-thread accumulators G (T, d, C), in blocks of features."""
    T, d, C = G.shape
    for blk in prange((d + 63) // 64):
        lo = blk * 64
        hi = min(lo + 64, d)
        for c in range(C):
            for j in range(lo, hi):
                s = G[0, j, c]
                for t in range(1, T):
                    s += G[t, j, c]
                out[c, j] = s


@njit(parallel=True)
def _linear_csr_kernel(data, indices, indptr, W, b, out):
    for i in prange(indptr.shape[0] - 1):
        _csr_logits_row(data, indices, indptr[i], indptr[i + 1], W, b, out[i])


@njit
def _logistic_csr_range(data, indices, indptr, lo, hi, w, b, y, sw, weighted, g):
    # rows lo:hi of the binary loss: g += sum s_i (p_i - y_i) x_i; returns (loss, db) sums
    one = w.dtype.type(1)
    loss = 0.0
    db = 0.0
    for i in range(lo, hi):
        z = b
        for k in range(indptr[i], indptr[i + 1]):
            z += data[k] * w[indices[k]]
        r, li = _logistic_residual(z, y[i], sw[i] if weighted else one, weighted, one)
        loss += li
        db += r
        for k in range(indptr[i], indptr[i + 1]):
            g[indices[k]] += data[k] * r
    return loss, db


@njit(parallel=True)
def _logistic_sums_csr_kernel(data, indices, indptr, bounds, w, b, y, sw, weighted, G, L, DB):
    F = w.dtype.type
    for t in prange(bounds.shape[0] - 1):
        L[t], DB[t] = _logistic_csr_range(
            data, indices, indptr, bounds[t], bounds[t + 1], w, F(b), y, sw, weighted, G[t]
        )


def _csr_bounds(indptr, n_classes):
    """Row bounds of the threads' ranges, about equal in entries (sets numba's thread count)."""
    n = indptr.shape[0] - 1
    nnz = int(indptr[-1] - indptr[0])
    threads = _threads(nnz * max(n_classes, 1))
    # a range should hold a few hundred entries, else the per-thread accumulators dominate
    threads = max(1, min(threads, nnz // 256, n))
    targets = indptr[0] + np.arange(threads + 1) * nnz // threads
    bounds = np.searchsorted(indptr, targets).astype(np.intp)
    bounds[0], bounds[-1] = 0, n
    return bounds


def _csr_weights(sample_weight, dtype):
    weighted = sample_weight is not None
    return weighted, sample_weight if weighted else np.empty(0, dtype)


def linear_csr(data, indices, indptr, coef, intercept, out):
    bias = intercept if intercept is not None else np.zeros(coef.shape[0], coef.dtype)
    _threads(int(indptr[-1] - indptr[0]) * max(coef.shape[0], 1))
    _linear_csr_kernel(data, indices, indptr, np.ascontiguousarray(coef.T), bias, out)
    return out


def softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out,
                        intercept_grad_out, *, skip_negligible=True):  # fmt: skip
    C, d = coef.shape
    weighted, sw = _csr_weights(sample_weight, coef.dtype)
    bias = intercept if intercept is not None else np.zeros(C, coef.dtype)
    tiled, block, class_tile = _tiling.plan_csr(C, coef.itemsize, indptr, d)
    if tiled and d:  # many classes: see _softmax_sums_csr_tiled
        return _softmax_sums_csr_tiled(data, indices, indptr, coef, bias, y, sample_weight,
                                       coef_grad_out, intercept_grad_out, block, class_tile,
                                       skip_negligible)  # fmt: skip
    # a small batch (fewer entries than features, e.g. a minibatch) reads coef and writes
    # the gradient through their transposed views, strided: the O(d C) transposes and
    # per-thread accumulators would cost more than the batch
    # (coef and coef_grad_out given as transposed views of (d, C) arrays, the public
    # functions' W and dW, are W's layout already: no transpose, no reduction on one thread)
    small = int(indptr[-1] - indptr[0]) < d
    direct = coef_grad_out.T.flags.c_contiguous
    if small:
        numba.set_num_threads(1)
        bounds = np.array([0, indptr.shape[0] - 1], np.intp)
        W, G = coef.T, coef_grad_out.T[None]
        coef_grad_out.fill(0)
    else:
        bounds = _csr_bounds(indptr, C)
        W = np.ascontiguousarray(coef.T)
        threads = bounds.shape[0] - 1
        if direct and threads == 1:
            G = coef_grad_out.T[None]
            G.fill(0)
        else:
            G = np.zeros((threads, d, C), coef.dtype)
    GB = np.zeros((bounds.shape[0] - 1, C))
    L = np.zeros(bounds.shape[0] - 1)
    _softmax_sums_csr_kernel(data, indices, indptr, bounds, W, bias, y, sw, weighted, G, GB, L)
    if not small and G.shape[0] > 1:
        if direct:
            np.sum(G, axis=0, out=coef_grad_out.T)
        else:
            _sum_transposed(G, coef_grad_out)
    elif not small and not direct:
        _sum_transposed(G, coef_grad_out)
    intercept_grad_out[...] = GB.sum(axis=0)
    return float(L.sum()), _csr_weight_total(sample_weight, indptr)


def logistic_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out):
    weighted, sw = _csr_weights(sample_weight, coef.dtype)
    bounds = _csr_bounds(indptr, 1)
    threads = bounds.shape[0] - 1
    G = np.zeros((threads, coef.shape[0]), coef.dtype)
    L = np.zeros(threads)
    DB = np.zeros(threads)
    _logistic_sums_csr_kernel(
        data, indices, indptr, bounds, coef, float(intercept), y, sw, weighted, G, L, DB
    )
    np.sum(G, axis=0, out=coef_grad_out)
    return float(L.sum()), float(DB.sum()), _csr_weight_total(sample_weight, indptr)


def _csr_weight_total(sample_weight, indptr):
    return weight_total(sample_weight, indptr.shape[0] - 1)


# ---------------------------------------------------------------------------
# Many classes (issue 14): the tiled regime of softmax_ce_sums_csr
# ---------------------------------------------------------------------------


@njit
def _csr_tile_row_logits(data, indices, indptr, r, W, b, c0, z):
    # z = the logits of CSR row r for the classes [c0, c0 + len(z)) (W = coef.T, (d, C))
    for c in range(z.shape[0]):
        z[c] = b[c0 + c]
    for k in range(indptr[r], indptr[r + 1]):
        x = data[k]
        w = W[indices[k]]
        for c in range(z.shape[0]):
            z[c] += x * w[c0 + c]


@njit(parallel=True)
def _softmax_sums_csr_tiled_kernel(data, indices, indptr, W, b, y, sw, weighted, block, class_tile,
                                   skip, log_threshold, G, gb):  # fmt: skip
    # The tiled regime of the CSR pass (see _tiling.plan_csr), row by row within each class
    # tile: pass A keeps each (tile, row)'s logit max and sum of exponentials, pass B
    # recomputes the hot (row, tile)s and adds s (P - Y) into G (d, C, zeroed) and gb
    # ((C,) float64).  Threads own tiles: disjoint columns of G.
    n = indptr.shape[0] - 1
    C = W.shape[1]
    F = W.dtype.type
    ntiles = (C + class_tile - 1) // class_tile
    tile_max = np.empty((ntiles, block))
    tile_sum = np.empty((ntiles, block))
    label_logit = np.zeros(block)
    lse = np.empty(block)
    loss = 0.0
    for a in range(0, n, block):
        m = min(block, n - a)
        for t in prange(ntiles):  # pass A
            c0 = t * class_tile
            z = np.empty(min(C, c0 + class_tile) - c0, W.dtype)
            for i in range(m):
                _csr_tile_row_logits(data, indices, indptr, a + i, W, b, c0, z)
                tile_max[t, i], tile_sum[t, i] = _tile_row_stats(z)
                if c0 <= y[a + i] < c0 + z.shape[0]:
                    label_logit[i] = z[y[a + i] - c0]
        loss += _tiles_loss(tile_max, tile_sum, label_logit, sw, weighted, a, m, lse)
        for t in prange(ntiles):  # pass B
            c0 = t * class_tile
            z = np.empty(min(C, c0 + class_tile) - c0, W.dtype)
            for i in range(m):
                here = c0 <= y[a + i] < c0 + z.shape[0]
                if skip and not here and tile_max[t, i] - lse[i] < log_threshold:
                    continue
                r = a + i
                _csr_tile_row_logits(data, indices, indptr, r, W, b, c0, z)
                s = F(sw[r]) if weighted else F(1)
                shift = F(lse[i])
                for c in range(z.shape[0]):
                    z[c] = np.exp(z[c] - shift)
                if here:
                    z[y[r] - c0] -= 1
                for c in range(z.shape[0]):
                    z[c] *= s
                    gb[c0 + c] += z[c]
                for k in range(indptr[r], indptr[r + 1]):
                    x = data[k]
                    g = G[indices[k]]
                    for c in range(z.shape[0]):
                        g[c0 + c] += x * z[c]
    return loss


def _softmax_sums_csr_tiled(data, indices, indptr, coef, bias, y, sample_weight, coef_grad_out,
                            intercept_grad_out, block, class_tile, skip_negligible):  # fmt: skip
    C, d = coef.shape
    n = indptr.shape[0] - 1
    weighted, sw = _csr_weights(sample_weight, coef.dtype)
    _threads(int(indptr[-1] - indptr[0]) * C)
    G = np.zeros((d, C), coef.dtype)
    intercept_grad = np.zeros(C)
    loss = _softmax_sums_csr_tiled_kernel(
        data, indices, indptr, np.ascontiguousarray(coef.T), bias, y, sw, weighted,
        max(1, min(block, n)), class_tile, bool(skip_negligible),
        _tiling.log_skip_threshold(coef.dtype), G, intercept_grad,
    )  # fmt: skip
    coef_grad_out[...] = G.T
    intercept_grad_out[...] = intercept_grad
    return float(loss), _csr_weight_total(sample_weight, indptr)


__all__ = [*KERNEL_NAMES, "train_epoch"]


# ---------------------------------------------------------------------------
# Optional whole-epoch kernel (see fastsoftmax._backends): the minibatch loop
# over the fused blocks above; the learners' update rules are compiled in
# numba_epoch, which imports nothing of this module.
# ---------------------------------------------------------------------------

from . import _epoch_args  # noqa: E402  (imports of this section kept with it)
from .numba_epoch import _SGD, _UPDATED, _l1_orthant_project, _l1_pseudo_gradient  # noqa: E402
from .numba_epoch import _learner_update, _sum_abs  # noqa: E402
from .numba_epoch import check_learner  # noqa: E402


@njit
def _scaled_sgd_step(p, g, scale, l2, lr):
    """``g = g * scale + l2 * p``, then the SGD step of ``_learner_update``, in one pass.

    The operations of the two passes, on the flat ``p`` and ``g`` (``scale``
    and ``l2`` of their dtype); ``g`` is left zeroed for the next
    minibatch's sums.  One pass over the weights instead of three, as
    cython's ``fs_sgd_step``: at batch 32 they were several percent of an
    epoch.  (Here, not in numba_epoch, whose changes the epoch kernel's disk
    cache would not notice.)
    """
    lr_f = p.dtype.type(lr)
    zero = g.dtype.type(0)
    for i in range(p.shape[0]):
        gi = g[i] * scale + l2 * p[i]
        g[i] = zero
        p[i] -= gi * lr_f


@njit
def _train_epoch_kernel(
    X, y, sw, weight_mean, WT, b, order, batch_size, l2, fit_intercept,
    code, hp, lr, t, states_W, states_b, n_states, G, Xb, l1=0.0, plan=None,
):  # fmt: skip
    """One epoch over ``order`` in minibatches; returns ``(loss, t, status)``.

    ``WT`` and the gradient buffer ``G`` are (C, d), transposed, the
    ``states_W`` flat views of (C, d) arrays; ``Xb`` (block, d or 0) the
    aligned block of converted rows of ``_softmax_grad_range`` (see
    ``_rows_source``), its first dimension the rows per block.  An empty
    ``sw`` means unit weights.
    With ``l1 > 0`` each minibatch loss gains ``l1 * ||W||_1`` and ``W``
    steps along the L1 pseudo-gradient within its orthant
    (``learners.l1_pseudo_gradient``).
    ``plan`` is the :class:`_numba_tiles.TilePlan` of the class count
    (``None``: tiles for any class count).
    ``status`` is not ``_UPDATED`` only if the update rule compiled in here
    disagrees with the one ``check_learner`` asked (a stale cache): the epoch
    then stops at its first update, before changing anything.
    """
    C, d = WT.shape
    F = WT.dtype.type
    n = order.shape[0]
    weighted = sw.shape[0] > 0
    gb_sum = np.empty(C, np.float64)
    gb = np.zeros(C, WT.dtype)
    p_flat = WT.reshape(C * d)
    g_flat = G.reshape(C * d)
    l2_f = F(l2)
    orthant = np.zeros(C * d if l1 != 0 else 0, np.int8)
    A, stage = _rows_source(X, Xb)
    Z, idx, stats = _fused_scratch(1, max(1, min(Xb.shape[0], batch_size)), WT)
    total = 0.0
    G[:] = 0  # (zeroed again after each step)
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        gb_sum[:] = 0.0
        data = _softmax_grad_range(X, A, stage, order, True, lo, hi, WT, b, y, sw, weighted, G,
                                   gb_sum, Z[0], idx[0], stats[0], plan)  # fmt: skip
        if weighted and weight_mean > 0:
            m = (hi - lo) * weight_mean  # the estimator's unbiased-estimate convention
        else:
            m = _weight_sum(order, True, lo, hi, sw, weighted)
        scale = 1.0 / m if m > 0 else 0.0
        loss = data * scale
        if l2 != 0:
            loss += 0.5 * l2 * _sum_squares(WT)
        if l1 != 0:
            loss += l1 * _sum_abs(p_flat)
        total += loss * (hi - lo)
        scale_f = F(scale)
        t += 1
        if code == _SGD and l1 == 0:
            _scaled_sgd_step(p_flat, g_flat, scale_f, l2_f, lr)
        else:
            for i in range(g_flat.shape[0]):
                g_flat[i] = g_flat[i] * scale_f + l2_f * p_flat[i]
            if l1 != 0:
                _l1_pseudo_gradient(p_flat, g_flat, l1, orthant)
            status = _learner_update(code, p_flat, g_flat, states_W, n_states, hp, C * d, lr, t)
            if status != _UPDATED:
                return 0.0, t, status
            if l1 != 0:
                _l1_orthant_project(p_flat, orthant)
            G[:] = 0
        if fit_intercept:
            for c in range(C):
                gb[c] = F(gb_sum[c] * scale)
            _learner_update(code, b, gb, states_b, n_states, hp, C, lr, t)
    return (total / n if n > 0 else 0.0), t, _UPDATED


def train_epoch(
    X, y, sample_weight, W, b, order, batch_size, l2, fit_intercept,
    kind, hyperparameters, lr, t, state, weight_mean=None, l1=0.0,
):  # fmt: skip
    """Run one epoch of minibatch training of softmax regression in compiled code.

    See "Optional whole-epoch kernel" in :mod:`fastsoftmax._backends` for the
    contract.  ``W``, ``b`` and the ``state`` arrays are updated in place.

    Returns
    -------
    loss : float
        Mean over the epoch's minibatches, weighted by their number of rows,
        of each minibatch's loss before its update.
    t : int
        The step counter after the epoch (``t + number of minibatches``).
    """
    args = _epoch_args.prepare(
        X, y, sample_weight, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state,
        l1=l1,
    )  # fmt: skip
    states_W, states_b = check_learner(args, X.shape[0])
    WT, spec = args.WT, args.spec
    loss, t_new, status = _train_epoch_kernel(
        X, args.y, args.sample_weight, 0.0 if weight_mean is None else float(weight_mean),
        WT, args.b, args.order, args.batch_size, float(l2), bool(fit_intercept),
        spec.code, args.hyperparameters, float(lr), int(t),
        states_W, states_b, len(spec.state_names),
        _aligned_empty(WT.shape, WT.dtype),
        _row_blocks((), X, WT.dtype), args.l1, _numba_tiles.TilePlan(WT.shape[0], WT.itemsize),
    )  # fmt: skip
    if status != _UPDATED:
        raise RuntimeError(
            f"numba's cached epoch kernel runs another update rule of learner {spec.kind!r} "
            "than fastsoftmax/_backends/numba_epoch.py has: its on-disk cache is stale "
            "(delete the *.nbi and *.nbc files of fastsoftmax/_backends/__pycache__)"
        )
    _epoch_args.store(args)
    return float(loss), int(t_new)
