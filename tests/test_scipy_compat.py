"""softmax, log_softmax and logsumexp against scipy.special, for every backend.

The expected values come from scipy.special itself (an independent
implementation); every axis form, dtype, shape (0-d, empty) and edge value
(+-inf, NaN, all -inf slices, huge logits) is covered.
"""

import itertools

import numpy as np
import pytest

import fastsoftmax as fs

special = pytest.importorskip("scipy.special")

NAMES = ("softmax", "log_softmax", "logsumexp")
SHAPES = [(), (1,), (5,), (3, 4), (1, 1), (2, 257), (2, 3, 4), (0,), (0, 3), (3, 0), (2, 0, 3)]
INF, NAN = np.inf, np.nan


@pytest.fixture
def backend(backend_name):
    """Every backend (conftest's ``backend_name``: unavailable ones are skipped)."""
    return backend_name


def axis_forms(ndim):
    """None, every int (negative too), every tuple of 0..ndim axes, one negative tuple."""
    forms = [None, *range(-ndim, ndim)]
    for r in range(ndim + 1):
        forms.extend(itertools.combinations(range(ndim), r))
    if ndim >= 2:
        forms.append((-1, 0))
    return forms


def tolerances(dtype):
    eps = np.finfo(dtype).eps
    return {"rtol": 50 * eps, "atol": 50 * eps}


def expected(name, x, **kw):
    with np.errstate(all="ignore"):
        if name == "logsumexp" and np.size(x) == 0 and kw.get("b") is None:
            # scipy 1.17 mishandles some empty cases (IndexError for tuple axes,
            # shape (1,) for axis=()); the sum of no terms is 0 and log(0) = -inf.
            assert not kw.get("return_sign")
            x = np.atleast_1d(x)
            axis, keepdims = kw.get("axis"), kw.get("keepdims", False)
            return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdims))
        return getattr(special, name)(x, **kw)


def assert_same(result, want, dtype):
    """Same type (scalar vs ndarray), dtype, shape and values (NaN where scipy has NaN)."""
    assert type(result) is type(want), (type(result), type(want))
    assert np.asarray(result).dtype == np.asarray(want).dtype
    assert np.shape(result) == np.shape(want)
    np.testing.assert_allclose(result, want, equal_nan=True, **tolerances(dtype))


def random_array(shape, dtype, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * 3).astype(dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_axis_form(backend, name, dtype, shape):
    x = random_array(shape, dtype)
    func = getattr(fs, name)
    for axis in axis_forms(len(shape)):
        empty_slices = x.size == 0
        if empty_slices and name != "logsumexp":
            # scipy raises on empty input; we return an empty result instead.
            result = func(x, axis=axis, backend=backend)
            assert result.shape == x.shape and result.dtype == x.dtype
            continue
        assert_same(func(x, axis=axis, backend=backend), expected(name, x, axis=axis), dtype)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape", [(), (4,), (2, 3, 4), (0, 3), (3, 0)], ids=str)
def test_logsumexp_keepdims(backend, keepdims, shape):
    a = random_array(shape, np.float64, seed=1)
    for axis in axis_forms(len(shape)):
        want = expected("logsumexp", a, axis=axis, keepdims=keepdims)
        got = fs.logsumexp(a, axis=axis, keepdims=keepdims, backend=backend)
        assert_same(got, want, np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_python_scalars_and_lists(backend, name):
    func = getattr(fs, name)
    for x in (3.0, 7, [1, 2, 3], [[1.0, 2.0], [3.0, 5.0]], np.float32(2.5), True):
        if name != "logsumexp" and x is True:
            continue  # scipy's softmax cannot subtract booleans
        assert_same(func(x, backend=backend), expected(name, x), np.float64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.float16])
def test_result_dtypes(backend, name, dtype):
    x = np.array([[1, 2, 3], [4, 4, 0]], dtype=dtype)
    got = getattr(fs, name)(x, axis=1, backend=backend)
    # scipy computes x - max(x) in the integer dtype (uint8 wraps around), so
    # the reference is scipy on the float64 values.
    want = expected(name, x.astype(np.float64 if dtype != np.float16 else np.float16), axis=1)
    if dtype == np.float16:
        assert got.dtype == np.float16
        np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3)
    else:
        # Integers always give float64 (scipy's softmax gives float16 for
        # int8 through NumPy's type promotion; float64 is the documented rule).
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)


EDGE_ROWS = [
    [1.0, 2.0, 3.0],
    [INF, 1.0, 2.0],
    [-INF, -INF, -INF],
    [-INF, 0.0, 1.0],
    [NAN, 1.0, 2.0],
    [INF, INF, 1.0],
    [INF, -INF, 0.0],
    [-INF, -INF, 5.0],
    [NAN, INF, -INF],
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_edge_values(backend, name, dtype):
    x = np.array(EDGE_ROWS, dtype)
    func = getattr(fs, name)
    for axis in (1, 0, None):
        assert_same(func(x, axis=axis, backend=backend), expected(name, x, axis=axis), dtype)
    # the same rows as columns (a non-last-axis reduction)
    assert_same(func(x.T, axis=0, backend=backend), expected(name, x.T, axis=0), dtype)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_do_not_overflow(backend, name, dtype):
    big = np.finfo(dtype).max / 1.2  # 2.8e38 in float32
    x = np.array([[big, -big, 0.0], [big, big, big], [-big, -big, -big]], dtype)
    got = getattr(fs, name)(x, axis=1, backend=backend)
    want = expected(name, x, axis=1)
    if name != "log_softmax":  # log_softmax(big, -big) = -2 big really is -inf
        assert np.all(np.isfinite(got))
    if name == "softmax":
        np.testing.assert_allclose(got, [[1, 0, 0], [1 / 3] * 3, [1 / 3] * 3], rtol=1e-6)
    else:
        np.testing.assert_allclose(got, want, **tolerances(dtype))


# --- logsumexp with b and return_sign --------------------------------------


B_CASES = [
    # (a, b, axis)
    (np.arange(10.0), np.arange(10.0, 0, -1), None),
    ([1.0, 2.0], [1.0, -1.0], None),
    ([1.0, 1.0], [1.0, -1.0], None),  # the sum is exactly 0
    ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [1.0, -2.0, 0.5], 1),  # broadcast b
    ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[1.0], [-1.0]], 0),
    ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], 2.0, (0, 1)),
    ([INF, 1.0, 2.0], [0.0, 1.0, 1.0], None),  # zero weight drops the inf term
    ([NAN, 1.0], [0.0, 1.0], None),
    ([INF, 1.0], [-1.0, 1.0], None),
    ([-INF, -INF], [1.0, 1.0], None),
    ([[0.5, -1.0, 3.0], [2.0, 2.0, 2.0]], [[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]], 1),
    (np.zeros((2, 0)), np.ones((2, 0)), 1),
    (3.0, -2.0, None),
]


@pytest.mark.parametrize("return_sign", [False, True])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("case", range(len(B_CASES)))
def test_logsumexp_b_and_sign(backend, case, keepdims, return_sign):
    a, b, axis = B_CASES[case]
    kw = {"axis": axis, "b": b, "keepdims": keepdims, "return_sign": return_sign}
    got = fs.logsumexp(a, backend=backend, **kw)
    want = expected("logsumexp", a, **kw)
    if return_sign:
        assert_same(got[0], want[0], np.float64)
        assert_same(got[1], want[1], np.float64)
    else:
        assert_same(got, want, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logsumexp_sign_without_b(backend, dtype):
    a = np.array([[1.0, 2.0], [-INF, -INF], [INF, 0.0]], dtype)
    got, sign = fs.logsumexp(a, axis=1, return_sign=True, backend=backend)
    want, want_sign = expected("logsumexp", a, axis=1, return_sign=True)
    assert_same(got, want, dtype)
    assert_same(sign, want_sign, dtype)


def test_logsumexp_b_dtypes(backend):
    a32 = np.array([1.0, 2.0], np.float32)
    # float32 a with float32 b stays float32; a float64 b promotes like scipy.
    for b in (np.array([1.0, 3.0], np.float32), np.array([1.0, 3.0]), [1, 3]):
        got = fs.logsumexp(a32, b=b, backend=backend)
        want = expected("logsumexp", a32, b=b)
        assert_same(got, want, np.float32)


def test_logsumexp_b_bad_shape(backend):
    with pytest.raises(ValueError, match=r"b must be broadcastable to the shape of a \(2, 3\)"):
        fs.logsumexp(np.zeros((2, 3)), b=np.ones(2), backend=backend)


# --- errors shared with scipy ------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_axis_errors(backend, name):
    func = getattr(fs, name)
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        func(x, axis=2, backend=backend)
    with pytest.raises(ValueError, match="repeated axis"):
        func(x, axis=(1, -1), backend=backend)
    with pytest.raises(TypeError, match="axis must be None, an integer or a tuple"):
        func(x, axis=1.5, backend=backend)
    if name != "logsumexp":  # scipy's logsumexp reads 0-d input as 1-D
        with pytest.raises(ValueError, match="out of bounds"):
            func(np.float64(1.0), axis=0, backend=backend)


# --- properties ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_properties(backend, dtype):
    x = random_array((6, 7), dtype, seed=3)
    p = fs.softmax(x, axis=1, backend=backend)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps * 7)
    assert np.all((p >= 0) & (p <= 1))
    shifted = fs.softmax(x + dtype(100.0), axis=1, backend=backend)
    np.testing.assert_allclose(shifted, p, rtol=1e-4 if dtype == np.float32 else 1e-12)
    logp = fs.log_softmax(x, axis=1, backend=backend)
    np.testing.assert_allclose(logp, np.log(p), **tolerances(dtype))
    lse = fs.logsumexp(x, axis=1, backend=backend)
    np.testing.assert_allclose(logp, x - lse[:, None], **tolerances(dtype))


def test_log_softmax_finite_where_softmax_underflows(backend):
    x = np.array([[1000.0, 0.0]])
    logp = fs.log_softmax(x, axis=1, backend=backend)
    np.testing.assert_array_equal(logp, [[0.0, -1000.0]])
    with np.errstate(divide="ignore"):
        log_of_softmax = np.log(fs.softmax(x, axis=1, backend=backend))
    assert log_of_softmax[0, 1] == -INF  # why log_softmax exists


def test_default_backend_and_use_backend():
    x = random_array((3, 4), np.float64, seed=5)
    want = expected("softmax", x, axis=1)
    np.testing.assert_allclose(fs.softmax(x, axis=1), want, rtol=1e-12)
    for name in fs.backends():
        with fs.use_backend(name):
            np.testing.assert_allclose(fs.softmax(x, axis=1), want, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [2, 3, 12, 40, 1000])
def test_logsumexp_near_zero_keeps_relative_accuracy(backend, dtype, k):
    # One dominant max of 0: log(1 + tiny) rounds to 0, SciPy's log1p of the
    # sum without the max term keeps it (issue 16, item 5).  Rows of every
    # length class of the SIMD kernels (in registers, streamed), the max anywhere.
    low = -40.0 if dtype == np.float64 else -20.0
    a = np.full((3, k), low, dtype)
    a[0, 0] = 0
    a[1, k // 2] = 0
    a[2, -1] = 0
    got = fs.logsumexp(a, axis=1, backend=backend)
    want = special.logsumexp(a, axis=1)
    assert np.all(want > 0)
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12)
    # ties at the max and values just below 1 in magnitude go the same way
    b = np.array([[0.0, 0.0, low], [-0.5, low, low], [0.9, -3.0, -3.0]], dtype)
    np.testing.assert_allclose(
        fs.logsumexp(b, axis=1, backend=backend), special.logsumexp(b, axis=1), **tolerances(dtype)
    )


def test_logsumexp_near_zero_scalars(backend):
    assert fs.logsumexp(np.array([0.0, -40.0]), backend=backend) == pytest.approx(
        4.248354255291589e-18, rel=1e-12
    )
    got = fs.logsumexp(np.array([0.0, -20.0], np.float32), backend=backend)
    assert got.dtype == np.float32 and got == pytest.approx(2.0611537e-09, rel=1e-6)
