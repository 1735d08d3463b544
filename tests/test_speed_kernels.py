"""The small-class fused pass of the cython backend (issue 13, target 1).

Its register tiles cover groups of 10 classes with 2 rows (float32), then of
5 classes with 4 rows, then single classes; the backward product runs over
2- and 1-vector chunks of features; each block prefetches half of the next
block in each product; denormals are flushed while it runs.  These tests
check ``softmax_ce_sums`` against a float64 NumPy reference on class counts,
row counts and feature counts that reach every tile and tail, over several
blocks, and that the caller's floating-point state is left as it was.
"""

import numpy as np
import pytest

from fastsoftmax._backends import _tiling

cython = pytest.importorskip("fastsoftmax._backends.cython")


def _reference(X, W, b, y, sample_weight):
    Z = X.astype(np.float64) @ W.T.astype(np.float64) + b
    Z -= Z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z).sum(axis=1))
    s = np.ones(len(y)) if sample_weight is None else sample_weight.astype(np.float64)
    loss = float(np.sum(s * (lse - Z[np.arange(len(y)), y])))
    R = np.exp(Z - lse[:, None])
    R[np.arange(len(y)), y] -= 1
    R *= s[:, None]
    return loss, R.T @ X.astype(np.float64), R.sum(axis=0)


def _sums(X, W, b, y, sample_weight=None):
    coef_grad = np.empty_like(W)
    intercept_grad = np.empty_like(b)
    loss, total = cython.softmax_ce_sums(X, W, b, y, sample_weight, coef_grad, intercept_grad)
    return loss, coef_grad, intercept_grad


def _problem(n, d, C, dtype, x_dtype, scale=0.1, seed=0):
    rng = np.random.default_rng(seed)
    if x_dtype == np.uint8:
        X = rng.integers(0, 256, (n, d), dtype=np.uint8)
    else:
        X = rng.standard_normal((n, d)).astype(x_dtype)
    W = (rng.standard_normal((C, d)) * scale).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, n).astype(np.intp)
    return X, W, b, y


def _check(X, W, b, y, sample_weight=None, rtol=None):
    assert not _tiling.plan(X.shape[1], W.shape[0], W.itemsize, X.itemsize)[0]  # small-C regime
    loss, coef_grad, intercept_grad = _sums(X, W, b, y, sample_weight)
    ref_loss, ref_coef, ref_intercept = _reference(X, W, b, y, sample_weight)
    rtol = rtol or (2e-4 if W.dtype == np.float32 else 1e-10)
    scale = np.abs(ref_coef).max() + 1
    np.testing.assert_allclose(loss, ref_loss, rtol=rtol)
    np.testing.assert_allclose(coef_grad, ref_coef, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(intercept_grad, ref_intercept, rtol=rtol, atol=rtol * len(y))


# 10 + 5 + 1 groups: 10, 15, 16, 17, 21, 23 classes; 1-9 classes: narrow and single only
@pytest.mark.parametrize("C", [1, 2, 4, 5, 6, 9, 10, 11, 15, 16, 17, 21, 23])
@pytest.mark.parametrize("dtype, x_dtype", [(np.float32, np.float32), (np.float32, np.uint8),
                                            (np.float64, np.float64), (np.float64, np.uint8)])  # fmt: skip
def test_class_groups_against_reference(C, dtype, x_dtype):
    # 87 rows: blocks of 40 (float32, 784 features), 4-row groups and single rows left over
    X, W, b, y = _problem(87, 784, C, dtype, x_dtype, scale=0.1 if x_dtype != np.uint8 else 1e-3)
    _check(X, W, b, y)


# Up to 5,120 residual entries of a block (2,560 for float64) the backward product
# copies all class groups row-major at once; beyond, one group at a time.
@pytest.mark.parametrize("C", [150, 199])
@pytest.mark.parametrize("dtype, x_dtype", [(np.float32, np.float32), (np.float32, np.uint8),
                                            (np.float64, np.float64)])  # fmt: skip
def test_many_classes_of_the_small_class_pass(C, dtype, x_dtype):
    block = _tiling.block_rows(784, np.dtype(x_dtype).itemsize)
    assert block * C > (5120 if dtype == np.float32 else 2560)  # beyond the row-major copy
    n = block + 9
    X, W, b, y = _problem(n, 784, C, dtype, x_dtype, scale=0.1 if x_dtype != np.uint8 else 1e-3)
    _check(X, W, b, y)


@pytest.mark.parametrize("d", [1, 7, 16, 17, 31, 33, 63, 64, 65, 100, 129])
@pytest.mark.parametrize("n", [1, 2, 3, 5, 6, 7])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_feature_and_row_tails(d, n, dtype):
    # features not a multiple of the vector width or of the 4-vector chunks
    X, W, b, y = _problem(n, d, 10 if n % 2 else 16, dtype, dtype, seed=d)
    _check(X, W, b, y)


@pytest.mark.parametrize("dtype, x_dtype", [(np.float32, np.float32), (np.float32, np.uint8),
                                            (np.float64, np.float64)])  # fmt: skip
def test_many_blocks_with_weights(dtype, x_dtype):
    # several blocks (the prefetch of the next block's two halves) and a last
    # block shorter than the others; sample weights
    d = 300
    n = 3 * _tiling.block_rows(d, np.dtype(x_dtype).itemsize) + 7
    X, W, b, y = _problem(n, d, 10, dtype, x_dtype, scale=0.1 if x_dtype != np.uint8 else 1e-3)
    sample_weight = np.random.default_rng(5).random(n).astype(dtype)
    _check(X, W, b, y, sample_weight)


def test_underflowing_probabilities():
    # uint8 pixels and large weights: logits hundreds apart, so most
    # probabilities are far below float32's normal range (flushed to zero)
    X, W, b, y = _problem(200, 784, 10, np.float32, np.uint8, scale=0.05)
    Z = X.astype(np.float64) @ W.T.astype(np.float64)
    assert np.ptp(Z, axis=1).mean() > 200
    _check(X, W, b, y, rtol=1e-3)


def test_floating_point_state_is_restored():
    X, W, b, y = _problem(100, 64, 10, np.float32, np.float32)
    _sums(X, W, b, y)
    tiny = np.float32(1e-38)  # normal; times 1e-3 is a denormal
    assert tiny * np.float32(1e-3) > 0
    assert np.array([tiny]) * np.float32(1e-3) > 0


def _at_offset(shape, dtype, misaligned):
    # a zeroed C-contiguous array starting on a 64-byte cache line, or 4 bytes after one
    itemsize = np.dtype(dtype).itemsize
    size = int(np.prod(shape))
    buffer = np.zeros(size + 128 // itemsize, dtype)
    start = (-buffer.ctypes.data % 64) // itemsize + (1 if misaligned else 0) * (4 // min(itemsize, 4))
    out = buffer[start : start + size].reshape(shape)
    assert (out.ctypes.data % 64 != 0) == misaligned
    return out


@pytest.mark.parametrize("C", [3, 10, 16])
@pytest.mark.parametrize("dtype, x_dtype", [(np.float32, np.float32), (np.float32, np.uint8),
                                            (np.float64, np.float64)])  # fmt: skip
def test_misaligned_weights_give_the_same_sums(C, dtype, x_dtype):
    # weights off a cache line are read from an aligned copy: the same
    # operations on the same values, so the same bits, and W is not written
    X, W, b, y = _problem(123, 200, C, dtype, x_dtype, scale=0.1 if x_dtype != np.uint8 else 1e-3)
    sums = []
    for misaligned in (False, True):
        Wm = _at_offset(W.shape, dtype, misaligned)
        Wm[...] = W
        sums.append(_sums(X, Wm, b, y))
        np.testing.assert_array_equal(Wm, W)
    assert sums[0][0] == sums[1][0]
    np.testing.assert_array_equal(sums[0][1], sums[1][1])
    np.testing.assert_array_equal(sums[0][2], sums[1][2])
    _check(X, W, b, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_weights_of_an_epoch_are_updated_in_place(dtype):
    # train_epoch works on an aligned copy of a misaligned WT and copies it
    # back: the same weights as from an aligned WT, written into W itself
    X, W0, b0, y = _problem(300, 200, 10, dtype, dtype)
    order = np.random.default_rng(1).permutation(len(y))
    results = []
    for misaligned in (False, True):
        WT = _at_offset(W0.shape, dtype, misaligned)
        WT[...] = W0
        W, b = WT.T, b0.copy()  # (d, C), used in place through its transpose
        loss, t = cython.train_epoch(X, y, None, W, b, order, 32, 0.0, True, "sgd", {}, 0.1, 0, {})
        assert np.shares_memory(W, WT) and not np.array_equal(WT, W0)
        results.append((loss, t, WT.copy(), b))
    assert results[0][:2] == results[1][:2]
    np.testing.assert_array_equal(results[0][2], results[1][2])
    np.testing.assert_array_equal(results[0][3], results[1][3])


@pytest.fixture(params=["baseline", "avx2", "avx512"])
def simd_level(request):
    """Each instruction set this CPU has, then the best again."""
    from fastsoftmax import _cython_kernels as kernels

    best = kernels.set_simd_level(None)
    names = ("baseline", "avx2", "avx512")
    if names.index(request.param) > names.index(best):
        pytest.skip(f"this CPU has no {request.param}")
    kernels.set_simd_level(request.param)
    yield request.param
    kernels.set_simd_level(None)


@pytest.mark.parametrize("C", [2, 5, 7, 10, 13, 17])
@pytest.mark.parametrize("dtype, x_dtype", [(np.float32, np.float32), (np.float32, np.uint8),
                                            (np.float64, np.float64)])  # fmt: skip
def test_forward_sums_of_every_instruction_set(simd_level, C, dtype, x_dtype):
    # the forward tiles add up their 5 or 10 class vectors a row in one
    # shuffle tree on AVX-512 and one by one elsewhere: all against the reference
    X, W, b, y = _problem(45, 100, C, dtype, x_dtype, scale=0.1 if x_dtype != np.uint8 else 1e-3)
    _check(X, W, b, y)
