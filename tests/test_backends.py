"""Every kernel of every available backend against the naive and numpy references.

The backend modules are called directly, with inputs that satisfy the kernel
protocol of :mod:`fastsoftmax._backends` (C-contiguous, one float dtype, intp
labels, preallocated ``out`` buffers).  Each call also checks that the kernel
returned its ``out`` buffer, wrote every entry of it and left its inputs
untouched.  Large cases are compared against numpy only: the naive backend is
too slow for them.
"""

import inspect

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _objective
from fastsoftmax._backends import BACKEND_NAMES, KERNEL_NAMES, get_module

# Overflow / invalid warnings from any kernel fail the test (stability contract).
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

DTYPES = (np.float32, np.float64)
# Relative tolerance by dtype; the absolute tolerance is this times the size of
# the terms involved (see _assert_close), since cancellation is expected.
RTOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}
SENTINEL = 7777.0  # out buffers start with this, so an entry a kernel skips shows up
NAIVE_MAX_WORK = 200_000  # multiply-adds beyond which the naive reference is skipped

# (n, k) logits shapes: single row / column, empty, odd sizes off SIMD widths, large C.
LOGIT_SHAPES = [(1, 1), (1, 10), (3, 1), (17, 2), (33, 3), (5, 37), (0, 5), (4, 1000), (65, 7)]
# (n, d, C) shapes of X @ W problems.
PROBLEM_SHAPES = [
    (0, 7, 3),
    (1, 1, 1),
    (1, 7, 10),
    (3, 65, 2),
    (17, 1, 37),
    (33, 7, 3),
    (5, 65, 1),
    (2, 3, 1000),
]


@pytest.fixture
def mod(backend_name):
    return get_module(backend_name)


# -- helpers -------------------------------------------------------------------


def _out(shape, dtype):
    return np.full(shape, SENTINEL, dtype=dtype)


def _call(module, name, inputs, outs=(), keywords=None):
    """Call kernel ``name`` on ``inputs + outs``; check inputs untouched and outs fully written."""
    before = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]
    result = getattr(module, name)(*inputs, *outs, **(keywords or {}))
    for arg, saved in zip(inputs, before):
        if isinstance(arg, np.ndarray):
            np.testing.assert_array_equal(arg, saved, err_msg=f"{name} modified an input")
    for out in outs:
        assert not np.any(out == SENTINEL), f"{name} left entries of its out buffer unwritten"
    return result


def _assert_close(actual, expected, dtype, scale=1.0, what=""):
    """Compare up to the dtype's tolerance; NaN and inf must sit at the same places."""
    rtol = RTOL[np.dtype(dtype)]
    if isinstance(actual, np.ndarray):
        assert actual.dtype == np.dtype(dtype), f"{what}: dtype {actual.dtype}, expected {dtype}"
    else:
        assert isinstance(actual, float), f"{what}: expected a Python float, got {type(actual)}"
    np.testing.assert_allclose(
        actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30), equal_nan=True, err_msg=what
    )


def _finite_max_abs(*arrays):
    values = [np.abs(a[np.isfinite(a)]).max() for a in arrays if np.isfinite(a).any()]
    return float(max(values, default=1.0)) or 1.0


def _references(work):
    """The reference backends to compare against: numpy always, naive when small enough."""
    refs = [get_module("numpy")]
    if work <= NAIVE_MAX_WORK:
        refs.append(get_module("naive"))
    return refs


def _logits(rng, shape, dtype, spread=3.0):
    return (spread * rng.standard_normal(shape)).astype(dtype)


def _problem(rng, n, d, C, dtype, x_kind):
    if x_kind == "uint8":
        X = rng.integers(0, 256, size=(n, d), dtype=np.uint8)
        w_scale = 1.0 / (255.0 * np.sqrt(d))  # keep logits O(1) with raw pixels
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
        w_scale = 1.0 / np.sqrt(d)
    W = (w_scale * rng.standard_normal((d, C))).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, size=n).astype(np.intp)
    return X, W, b, y


def _sample_weight(rng, n, dtype, kind):
    if kind is None:
        return None
    weights = rng.uniform(0.0, 2.0, size=n).astype(dtype)
    weights[::3] = 0  # zero weights must drop their samples entirely
    return weights


# -- the protocol itself -----------------------------------------------------------


def test_kernel_names_identical_across_backends(mod):
    reference = get_module("numpy")
    for name in KERNEL_NAMES:
        assert callable(getattr(mod, name, None)), f"{mod.__name__} lacks kernel {name}"
        try:
            params = list(inspect.signature(getattr(mod, name)).parameters)
        except (TypeError, ValueError):  # a compiled callable without introspection
            continue
        expected = list(inspect.signature(getattr(reference, name)).parameters)
        assert params == expected, f"{mod.__name__}.{name}{params} != numpy.{name}{expected}"


def test_naive_and_numpy_export_exactly_the_kernels():
    # The pure-Python references define nothing public beyond the protocol.
    for name in ("naive", "numpy"):
        module = get_module(name)
        public = {
            attr
            for attr, value in vars(module).items()
            if not attr.startswith("_")
            and inspect.isfunction(value)
            and value.__module__ == module.__name__
        }
        assert public == set(KERNEL_NAMES), name


# -- row-wise kernels: softmax, log_softmax, logsumexp, cross_entropy ---------------------


def _row_kernel(module, name, x):
    out = _out(x.shape if name != "logsumexp" else x.shape[:1], x.dtype)
    result = _call(module, name, (x,), (out,))
    assert result is out, f"{name} did not return its out buffer"
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LOGIT_SHAPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_row_kernels_match_references(mod, name, shape, dtype, rng):
    x = _logits(rng, shape, dtype)
    actual = _row_kernel(mod, name, x)
    scale = _finite_max_abs(x) if name != "softmax" else 1.0
    for ref in _references(x.size):
        _assert_close(actual, _row_kernel(ref, name, x), dtype, scale, f"{name} vs {ref.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one_and_log_softmax_matches(mod, dtype, rng):
    # Checked against mathematics, not another backend.
    x = _logits(rng, (33, 37), dtype, spread=20.0)
    tol = 1e-5 if dtype == np.float32 else 1e-13
    p = _row_kernel(mod, "softmax", x)
    np.testing.assert_allclose(p.sum(axis=1, dtype=np.float64), 1.0, rtol=tol)
    assert np.all(p >= 0)
    log_p = _row_kernel(mod, "log_softmax", x)
    np.testing.assert_allclose(np.exp(log_p.astype(np.float64)), p, rtol=tol, atol=tol)


def _edge_rows(dtype):
    inf, nan = np.inf, np.nan
    return np.array(
        [
            [3e38, -3e38, 3e38, 0.0, 1.0],  # huge logits of both signs: no overflow
            [-3e38, -3e38, -3e38, -3e38, -3e38],
            [-inf, -inf, -inf, -inf, -inf],  # fully -inf row
            [-inf, 1.0, -inf, 2.0, -inf],  # some -inf
            [inf, 1.0, 2.0, -inf, 0.0],  # a +inf
            [nan, 1.0, 2.0, 3.0, 4.0],  # NaN propagates
            [1.0, 2.0, nan, -inf, inf],
            [0.0, 0.0, 0.0, 0.0, 0.0],
        ],
        dtype=dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_row_kernels_edge_values(mod, name, dtype):
    x = _edge_rows(dtype)
    actual = _row_kernel(mod, name, x)
    for ref in _references(x.size):
        _assert_close(actual, _row_kernel(ref, name, x), dtype, 1.0, f"{name} vs {ref.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_row_kernels_edge_values_exact(mod, dtype):
    # Values known in closed form, independent of any backend.
    x = _edge_rows(dtype)
    p = _row_kernel(mod, "softmax", x)
    np.testing.assert_allclose(p[0], [0.5, 0, 0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(p[1], [0.2] * 5, rtol=1e-6)
    np.testing.assert_allclose(p[3], [0, 1 / (1 + np.e), 0, np.e / (1 + np.e), 0], rtol=1e-6)
    # A row holding NaN or +inf is all NaN, as in scipy.special.softmax (not [nan, 0, ...]).
    assert np.isnan(p[[2, 4, 5, 6]]).all()
    lse = _row_kernel(mod, "logsumexp", x)
    np.testing.assert_allclose(lse[[0, 1, 7]], [3e38, -3e38, np.log(5)], rtol=1e-6)
    assert lse[2] == -np.inf and lse[4] == np.inf and np.isnan(lse[5]) and np.isnan(lse[6])
    logp = _row_kernel(mod, "log_softmax", x)
    np.testing.assert_allclose(logp[1], [-np.log(5)] * 5, rtol=1e-6)
    assert logp[3, 0] == -np.inf and np.isfinite(logp[3, 1])


# Row lengths that reach each softmax path of the compiled kernels: rows held in
# one or two SIMD registers (up to 8, 16 or 32 lanes), long rows, and long rows
# of a large array, whose output is streamed past the cache.
NAN_ROW_LENGTHS = [1, 5, 12, 20, 37, 1000, "stream"]


def _softmax_with_bad_rows(rng, k, dtype):
    """Logits whose rows 1, 3, 5, ... hold a NaN or a +inf at varying places,
    and the expected softmax computed in float64 from the formula (NaN rows)."""
    if k == "stream":  # 8 MB of rows of 1024: large enough to take the streaming path
        k = 1024
        n = (8 << 20) // (k * np.dtype(dtype).itemsize)
    else:
        n = 6
    x = _logits(rng, (n, k), dtype)
    bad = np.arange(1, n, 2)
    x[bad, (bad * 7) % k] = np.where(bad % 4 == 1, np.nan, np.inf)
    x[bad[::3], -1] = np.inf  # in the tail of the row too
    good = np.setdiff1d(np.arange(n), bad)
    x64 = x[good].astype(np.float64)
    e = np.exp(x64 - x64.max(axis=1, keepdims=True))
    expected = np.full((n, k), np.nan)
    expected[good] = e / e.sum(axis=1, keepdims=True)
    return x, expected


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_streamed_rows_find_a_huge_max_anywhere(mod, backend_name, name, dtype, rng,
                                                restore_num_threads):
    # Each row's max (1000: exp of it overflows) sits at a different place,
    # first and last entries included (the scalar head and masked tail of the
    # vector loops), in an array large enough for the streaming path; a max
    # taken over part of a row would give inf / NaN here.
    if backend_name == "naive":
        pytest.skip("too large for the pure-Python backend")
    fastsoftmax.set_num_threads(1)
    k = 1024
    n = (8 << 20) // (k * np.dtype(dtype).itemsize)
    x = _logits(rng, (n, k), dtype, spread=1.0)
    places = np.array([0, 1, 5, 11, 12, 15, 16, k // 2, k - 5, k - 4, k - 1])
    x[np.arange(n), places[np.arange(n) % places.size]] = 1000
    x64 = x.astype(np.float64)
    shifted = x64 - x64.max(axis=1, keepdims=True)
    expected = np.exp(shifted) if name == "softmax" else shifted  # the other terms are ~e^-990
    actual = _row_kernel(mod, name, x)
    _assert_close(actual, expected, dtype, 1000.0, f"{name} of rows with a huge max")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", NAN_ROW_LENGTHS)
@pytest.mark.parametrize("in_place", [False, True], ids=["out", "in_place"])
def test_softmax_rows_with_nan_or_inf_are_all_nan(
    mod, backend_name, k, dtype, in_place, rng, restore_num_threads
):
    if k == "stream" and backend_name == "naive":
        pytest.skip("too large for the pure-Python backend")
    fastsoftmax.set_num_threads(1)  # one thread gets the whole array (the streaming size)
    x, expected = _softmax_with_bad_rows(rng, k, dtype)
    if in_place:
        p = x.copy()
        assert mod.softmax(p, p) is p
    else:
        p = _row_kernel(mod, "softmax", x)
    assert p.dtype == np.dtype(dtype)
    _assert_close(p, expected, dtype, 1.0, f"softmax of rows of {k} with NaN / +inf")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_row_kernels_out_may_alias_input(mod, name, dtype, rng):
    x = _logits(rng, (17, 37), dtype)
    expected = _row_kernel(get_module("numpy"), name, x)
    x_inplace = x.copy()
    assert getattr(mod, name)(x_inplace, x_inplace) is x_inplace
    _assert_close(x_inplace, expected, dtype, _finite_max_abs(x), f"{name}(x, out=x)")


def _cross_entropy(module, logits, y):
    out = _out(logits.shape[:1], logits.dtype)
    assert _call(module, "cross_entropy", (logits, y), (out,)) is out
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LOGIT_SHAPES)
def test_cross_entropy_matches_references(mod, shape, dtype, rng):
    logits = _logits(rng, shape, dtype)
    y = rng.integers(0, shape[1], size=shape[0]).astype(np.intp)
    actual = _cross_entropy(mod, logits, y)
    assert np.all(actual >= -RTOL[np.dtype(dtype)] * _finite_max_abs(logits))
    for ref in _references(logits.size):
        expected = _cross_entropy(ref, logits, y)
        _assert_close(actual, expected, dtype, _finite_max_abs(logits), ref.__name__)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_huge_logits(mod, dtype):
    logits = np.array([[3e38, -3e38, 0.0], [-1e38, 1e38, 1.0], [1.0, 1.0, 1.0]], dtype=dtype)
    y = np.array([0, 0, 2], dtype=np.intp)
    actual = _cross_entropy(mod, logits, y)
    np.testing.assert_allclose(actual, [0.0, 2e38, np.log(3)], rtol=1e-6, atol=1e-6)


# -- linear -------------------------------------------------------------------------


def _linear(module, X, W, b):
    # the kernel takes the weights in the layout of coef_, (C, d)
    out = _out((X.shape[0], W.shape[1]), W.dtype)
    assert _call(module, "linear", (X, np.ascontiguousarray(W.T), b), (out,)) is out
    return out


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,C", PROBLEM_SHAPES)
def test_linear_matches_references(mod, n, d, C, dtype, x_kind, with_bias, rng):
    X, W, b, _ = _problem(rng, n, d, C, dtype, x_kind)
    b = b if with_bias else None
    actual = _linear(mod, X, W, b)
    scale = float(np.max(np.abs(X.astype(np.float64)) @ np.abs(W), initial=0)) + 2.0
    for ref in _references(n * d * C):
        _assert_close(actual, _linear(ref, X, W, b), dtype, scale, ref.__name__)


def test_linear_uint8_is_not_rescaled(mod):
    # uint8 pixels are read as their values 0..255: check against exact integers.
    X = np.array([[0, 1, 255], [128, 2, 3]], dtype=np.uint8)
    W = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 2.0]], dtype=np.float32)
    out = _linear(mod, X, W, np.array([0.5, -0.5], dtype=np.float32))
    np.testing.assert_array_equal(out, [[255.5, 510.5], [131.5, 7.5]])


# -- softmax_ce_sums and the softmax objective on it ---------------------------------------


def _backend(module):
    return module.__name__.rsplit(".", 1)[-1]


def _softmax_grad(module, X, W, b, y, sample_weight, l2):
    """The objective (_objective.softmax_loss_grad) on ``module``'s kernel, W (d, C) layout."""
    coef = np.ascontiguousarray(W.T)
    outs = (_out(coef.shape, W.dtype), _out(b.shape, W.dtype))
    loss, coef_grad, db = _call(
        _objective, "softmax_loss_grad", (X, coef, b, y, sample_weight, l2), (),
        dict(backend=_backend(module), coef_grad_out=outs[0], intercept_grad_out=outs[1]),
    )  # fmt: skip
    assert coef_grad is outs[0] and db is outs[1]
    assert not np.any(coef_grad == SENTINEL) and not np.any(db == SENTINEL)
    return loss, coef_grad.T, db


def _softmax_sums(module, X, W, b, y, sample_weight):
    coef = np.ascontiguousarray(W.T)
    outs = (_out(coef.shape, W.dtype), _out(b.shape, W.dtype))
    loss_sum, total = _call(module, "softmax_ce_sums", (X, coef, b, y, sample_weight), outs)
    return loss_sum, outs[0], outs[1], total


@pytest.mark.parametrize("weights", [None, "with_zeros"])
@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,C", PROBLEM_SHAPES)
def test_softmax_ce_sums_are_plain_sums(mod, n, d, C, dtype, x_kind, weights, rng):
    # The thin kernel: unnormalised sums in the (C, d) layout and the weight
    # total, nothing else (no mean, no penalty).
    X, W, b, y = _problem(rng, n, d, C, dtype, x_kind)
    sample_weight = _sample_weight(rng, n, dtype, weights)
    loss_sum, coef_grad, intercept_grad, total = _softmax_sums(mod, X, W, b, y, sample_weight)
    assert isinstance(loss_sum, float) and isinstance(total, float)
    s = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    assert total == pytest.approx(float(np.sum(s)), rel=1e-12)
    z = X.astype(np.float64) @ W.astype(np.float64) + b
    p = np.exp(z - z.max(axis=1, keepdims=True, initial=-np.inf))
    p /= p.sum(axis=1, keepdims=True)
    residual = s[:, None] * (p - np.eye(C)[y])
    ce = np.log(np.exp(z - z.max(axis=1, keepdims=True, initial=-np.inf)).sum(axis=1))
    ce += z.max(axis=1, initial=-np.inf) - z[np.arange(n), y] if n else 0.0
    scale = (_finite_max_abs(X.astype(np.float64)) + 1.0) * (float(np.sum(s)) + 1.0)
    _assert_close(loss_sum, float(s @ ce) if n else 0.0, dtype, scale, "loss sum")
    _assert_close(coef_grad, residual.T @ X.astype(np.float64), dtype, scale, "coef sums")
    _assert_close(intercept_grad, residual.sum(axis=0), dtype, scale, "intercept sums")


def _grad_scale(X, W, l2):
    # |P - Y| <= 1 and the weights are normalised, so every gradient term is at most |X|.
    return _finite_max_abs(X.astype(np.float64)) + l2 * _finite_max_abs(W) + 1.0


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("weights", [None, "with_zeros"])
@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d,C", PROBLEM_SHAPES)
def test_softmax_cross_entropy_grad_matches_references(
    mod, n, d, C, dtype, x_kind, weights, l2, rng
):
    X, W, b, y = _problem(rng, n, d, C, dtype, x_kind)
    sample_weight = _sample_weight(rng, n, dtype, weights)
    loss, dW, db = _softmax_grad(mod, X, W, b, y, sample_weight, l2)
    scale = _grad_scale(X, W, l2)
    for ref in _references(n * d * C):
        ref_loss, ref_dW, ref_db = _softmax_grad(ref, X, W, b, y, sample_weight, l2)
        _assert_close(loss, ref_loss, dtype, abs(ref_loss) + 1.0, f"loss vs {ref.__name__}")
        _assert_close(dW, ref_dW, dtype, scale, f"dW vs {ref.__name__}")
        _assert_close(db, ref_db, dtype, 1.0, f"db vs {ref.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_grad_empty_batch(mod, dtype, rng):
    # Protocol: n == 0 leaves only the penalty: dW = l2 * W, db = 0.
    X, W, b, y = _problem(rng, 0, 4, 3, dtype, "float")
    loss, dW, db = _softmax_grad(mod, X, W, b, y, None, 0.0)
    assert loss == 0.0
    np.testing.assert_array_equal(dW, 0)
    np.testing.assert_array_equal(db, 0)
    loss, dW, db = _softmax_grad(mod, X, W, b, y, None, 0.5)
    np.testing.assert_allclose(dW, 0.5 * W, rtol=1e-6)
    np.testing.assert_array_equal(db, 0)
    # The data term is empty, the penalty 0.5 * l2 * ||W||^2 remains.
    assert loss == pytest.approx(0.25 * float(np.sum(W.astype(np.float64) ** 2)), rel=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_grad_weights_drop_and_scale(mod, dtype, rng):
    # A zero weight removes a sample; doubling every weight changes nothing.
    X, W, b, y = _problem(rng, 7, 5, 4, dtype, "float")
    weights = np.array([1, 0, 1, 1, 0, 1, 1], dtype=dtype)
    kept = weights > 0
    got = _softmax_grad(mod, X, W, b, y, weights, 0.1)
    subset = _softmax_grad(mod, X[kept], W, b, y[kept], None, 0.1)
    doubled = _softmax_grad(mod, X, W, b, y, 2 * weights, 0.1)
    for other in (subset, doubled):
        for a, e in zip(got, other):
            _assert_close(a, e, dtype, 4.0, "weighted")
    # All weights 0: no data term (m = 0), as for an empty batch; only the penalty is left.
    loss, dW, db = _softmax_grad(mod, X, W, b, y, np.zeros_like(weights), 0.1)
    assert loss == pytest.approx(0.05 * float(np.sum(W.astype(np.float64) ** 2)), rel=1e-6)
    _assert_close(dW, 0.1 * W, dtype, 1.0, "dW with zero weights")
    np.testing.assert_array_equal(db, 0)


@pytest.mark.parametrize("C", [2, 10, 37])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_cross_entropy_grad_huge_logits(mod, dtype, C, rng):
    # Logits in the thousands: exp overflows without the max shift, and each
    # row's loss is mostly max - z_y.  45 rows: whole and partial row groups.
    from scipy.special import logsumexp

    X, W, b, y = _problem(rng, 45, 3, C, dtype, "float")
    W = (3000 * W).astype(dtype)
    logits = X.astype(np.float64) @ W.astype(np.float64) + b
    expected_loss = float(np.mean(logsumexp(logits, axis=1) - logits[np.arange(45), y]))
    loss, dW, db = _softmax_grad(mod, X, W, b, y, None, 0.0)
    _assert_close(loss, expected_loss, dtype, _finite_max_abs(logits), "loss vs float64 logsumexp")
    ref_loss, ref_dW, ref_db = _softmax_grad(get_module("numpy"), X, W, b, y, None, 0.0)
    _assert_close(dW, ref_dW, dtype, _grad_scale(X, W, 0.0), "dW vs numpy")
    _assert_close(db, ref_db, dtype, 1.0, "db vs numpy")


# -- sigmoid, binary_cross_entropy, logistic_loss_grad -------------------------------------


def _sigmoid(module, x):
    out = _out(x.shape, x.dtype)
    assert _call(module, "sigmoid", (x,), (out,)) is out
    return out


def _binary_cross_entropy(module, z, y):
    out = _out(z.shape, z.dtype)
    assert _call(module, "binary_cross_entropy", (z, y), (out,)) is out
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 3, 17, 33, 1000])
def test_sigmoid_and_bce_match_references(mod, n, dtype, rng):
    z = _logits(rng, n, dtype, spread=10.0)
    y = rng.uniform(0, 1, size=n).astype(dtype)
    y[::2] = np.round(y[::2])
    p = _sigmoid(mod, z)
    loss = _binary_cross_entropy(mod, z, y)
    for ref in _references(n):
        _assert_close(p, _sigmoid(ref, z), dtype, _finite_max_abs(p), f"sigmoid vs {ref.__name__}")
        _assert_close(loss, _binary_cross_entropy(ref, z, y), dtype, 10.0, f"bce vs {ref.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_bce_edge_values(mod, dtype):
    z = np.array([3e38, -3e38, 1000.0, -1000.0, 0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    p = _sigmoid(mod, z)
    np.testing.assert_array_equal(p[:4], [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_array_equal(p[4:7], [0.5, 1.0, 0.0])
    assert np.isnan(p[7])
    for ref in _references(z.size):
        _assert_close(p, _sigmoid(ref, z), dtype, 1.0, ref.__name__)
    # Finite logits only: the loss at +-inf is a NaN-or-limit convention left to functions.
    zf, y = z[:5], np.array([1.0, 0.0, 0.0, 1.0, 1.0], dtype=dtype)
    loss = _binary_cross_entropy(mod, zf, y)
    np.testing.assert_allclose(loss, [0.0, 0.0, 1000.0, 1000.0, np.log(2)], rtol=1e-6)
    assert _binary_cross_entropy(mod, zf[:2], np.array([0.0, 1.0], dtype=dtype)).tolist() == [
        pytest.approx(3e38, rel=1e-6)
    ] * 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_out_may_alias_input(mod, dtype, rng):
    x = _logits(rng, 37, dtype, spread=10.0)
    expected = _sigmoid(get_module("numpy"), x)
    x_inplace = x.copy()
    assert mod.sigmoid(x_inplace, x_inplace) is x_inplace
    _assert_close(x_inplace, expected, dtype, 1.0, "sigmoid(x, out=x)")


def _logistic_grad(module, X, w, b, y, sample_weight, l2):
    """The objective (_objective.logistic_loss_grad) on ``module``'s kernel."""
    dw = _out(w.shape, w.dtype)
    loss, coef_grad, db = _call(
        _objective, "logistic_loss_grad", (X, w, b, y, sample_weight, l2), (),
        dict(backend=_backend(module), coef_grad_out=dw),
    )  # fmt: skip
    assert coef_grad is dw and not np.any(dw == SENTINEL)
    return loss, dw, db


@pytest.mark.parametrize("weights", [None, "with_zeros"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(0, 7), (1, 1), (17, 1), (33, 7), (200, 33)])
def test_logistic_sums_are_plain_sums(mod, n, d, dtype, weights, rng):
    X, w, b, y = _binary_problem(rng, n, d, dtype, "float")
    sample_weight = _sample_weight(rng, n, dtype, weights)
    dw = _out(w.shape, dtype)
    loss_sum, db_sum, total = _call(mod, "logistic_sums", (X, w, b, y, sample_weight), (dw,))
    assert all(isinstance(v, float) for v in (loss_sum, db_sum, total))
    s = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    z = X.astype(np.float64) @ w + b
    residual = s * (1 / (1 + np.exp(-z)) - y)
    scale = (_finite_max_abs(X.astype(np.float64)) + 1.0) * (float(np.sum(s)) + 1.0)
    assert total == pytest.approx(float(np.sum(s)), rel=1e-12)
    _assert_close(loss_sum, float(s @ (np.logaddexp(0, z) - y * z)), dtype, scale, "loss sum")
    _assert_close(db_sum, float(np.sum(residual)), dtype, scale, "intercept sum")
    _assert_close(dw, X.astype(np.float64).T @ residual, dtype, scale, "coef sums")


def _binary_problem(rng, n, d, dtype, x_kind):
    X, W, b, _ = _problem(rng, n, d, 1, dtype, x_kind)
    y = rng.integers(0, 2, size=n).astype(dtype)
    return X, W[:, 0].copy(), float(b[0]), y


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("weights", [None, "with_zeros"])
@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,d", [(0, 7), (1, 1), (3, 65), (17, 1), (33, 7), (5, 65), (200, 33)])
def test_logistic_loss_grad_matches_references(mod, n, d, dtype, x_kind, weights, l2, rng):
    X, w, b, y = _binary_problem(rng, n, d, dtype, x_kind)
    sample_weight = _sample_weight(rng, n, dtype, weights)
    loss, dw, db = _logistic_grad(mod, X, w, b, y, sample_weight, l2)
    assert isinstance(db, float)
    for ref in _references(n * d):
        ref_loss, ref_dw, ref_db = _logistic_grad(ref, X, w, b, y, sample_weight, l2)
        _assert_close(loss, ref_loss, dtype, abs(ref_loss) + 1.0, f"loss vs {ref.__name__}")
        _assert_close(dw, ref_dw, dtype, _grad_scale(X, w, l2), f"dw vs {ref.__name__}")
        _assert_close(db, ref_db, dtype, 1.0, f"db vs {ref.__name__}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_loss_grad_huge_margins(mod, dtype):
    # |z| = 1e4: exp would overflow in float32; the loss must stay finite and exact.
    X = np.array([[1.0], [-1.0], [1.0]], dtype=dtype)
    w = np.array([1e4], dtype=dtype)
    y = np.array([1.0, 0.0, 0.0], dtype=dtype)
    loss, dw, db = _logistic_grad(mod, X, w, 0.0, y, None, 0.0)
    # Samples 0 and 1 are right with margin 1e4 (loss 0), sample 2 wrong (loss 1e4, p - y = 1).
    assert loss == pytest.approx(1e4 / 3, rel=1e-6)
    np.testing.assert_allclose(dw, [1 / 3], rtol=1e-6)
    assert db == pytest.approx(1 / 3, rel=1e-6)


# -- classification_error ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", LOGIT_SHAPES)
def test_classification_error_matches_references(mod, shape, dtype, rng):
    logits = _logits(rng, shape, dtype)
    y = rng.integers(0, shape[1], size=shape[0]).astype(np.intp)
    actual = _call(mod, "classification_error", (logits, y))
    assert isinstance(actual, float)
    for ref in _references(logits.size):
        assert actual == _call(ref, "classification_error", (logits, y)), ref.__name__


def test_classification_error_ties_take_first_argmax(mod):
    logits = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [5.0, 5.0, 5.0], [0.0, 0.0, 1.0]])
    assert mod.classification_error(logits, np.array([1, 1, 0, 2], dtype=np.intp)) == 0.25
    assert mod.classification_error(logits, np.array([0, 2, 2, 2], dtype=np.intp)) == 0.5
    assert mod.classification_error(logits[:0], np.array([], dtype=np.intp)) == 0.0


# -- threads ---------------------------------------------------------------------------------


@pytest.fixture
def threaded_mod(mod):
    # The naive oracle has no threads and is far too slow for these sizes.
    if mod.__name__.endswith(".naive"):
        pytest.skip("the naive backend runs in one thread")
    return mod


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_threads", [1, 2])
def test_all_kernels_with_threads(threaded_mod, num_threads, dtype, rng):
    # Enough rows (5003) that a parallel kernel really splits the work between threads.
    mod = threaded_mod
    fastsoftmax.set_num_threads(num_threads)
    n, d, C = 5003, 50, 10  # odd: no block size divides it, so tails are exercised
    ref = get_module("numpy")
    X, W, b, y = _problem(rng, n, d, C, dtype, "float")
    logits = _logits(rng, (n, d), dtype)
    for name in ("softmax", "log_softmax", "logsumexp"):
        _assert_close(_row_kernel(mod, name, logits), _row_kernel(ref, name, logits), dtype,
                      _finite_max_abs(logits), name)
    labels = rng.integers(0, d, size=n).astype(np.intp)
    _assert_close(_cross_entropy(mod, logits, labels), _cross_entropy(ref, logits, labels),
                  dtype, _finite_max_abs(logits), "cross_entropy")
    assert mod.classification_error(logits, labels) == ref.classification_error(logits, labels)
    _assert_close(_linear(mod, X, W, b), _linear(ref, X, W, b), dtype, 50.0, "linear")

    sample_weight = _sample_weight(rng, n, dtype, "with_zeros")
    for weights in (None, sample_weight):
        got = _softmax_grad(mod, X, W, b, y, weights, 0.1)
        want = _softmax_grad(ref, X, W, b, y, weights, 0.1)
        for a, e, what in zip(got, want, ("loss", "dW", "db")):
            _assert_close(a, e, dtype, _grad_scale(X, W, 0.1), f"softmax grad {what}")
        yb = (y % 2).astype(dtype)
        got = _logistic_grad(mod, X, W[:, 0].copy(), 0.3, yb, weights, 0.1)
        want = _logistic_grad(ref, X, W[:, 0].copy(), 0.3, yb, weights, 0.1)
        for a, e, what in zip(got, want, ("loss", "dw", "db")):
            _assert_close(a, e, dtype, _grad_scale(X, W, 0.1), f"logistic grad {what}")

    z = logits.ravel()
    _assert_close(_sigmoid(mod, z), _sigmoid(ref, z), dtype, 1.0, "sigmoid")
    t = np.round(_sigmoid(ref, z[::-1].copy()))
    _assert_close(_binary_cross_entropy(mod, z, t), _binary_cross_entropy(ref, z, t), dtype,
                  _finite_max_abs(z), "binary_cross_entropy")


@pytest.mark.usefixtures("restore_num_threads")
def test_thread_count_does_not_change_results(threaded_mod, rng):
    mod = threaded_mod
    X, W, b, y = _problem(rng, 5003, 50, 10, np.float64, "float")
    results = []
    for num_threads in (1, 2):
        fastsoftmax.set_num_threads(num_threads)
        results.append(_softmax_grad(mod, X, W, b, y, None, 0.0))
    for a, e in zip(*results):
        _assert_close(a, e, np.float64, 10.0, "1 thread vs 2 threads")



@pytest.mark.parametrize("dtype", DTYPES)
def test_objective_decision_layouts(mod, dtype, rng):
    # coef (C, d) gives logits (n, C); a binary coef (d,) with a float intercept gives margins (n,).
    X, W, b, _ = _problem(rng, 9, 5, 3, dtype, "float")
    coef = np.ascontiguousarray(W.T)
    want = X.astype(np.float64) @ W.astype(np.float64) + b
    got = _objective.decision(X, coef, b, backend=_backend(mod))
    _assert_close(got, want, dtype, _finite_max_abs(want) + 1.0, "decision")
    margins = _objective.decision(X, coef[0].copy(), 0.5, backend=_backend(mod))
    assert margins.shape == (9,)
    _assert_close(margins, X.astype(np.float64) @ W[:, 0] + 0.5, dtype, 10.0, "binary margins")
    out = _out((9, 3), dtype)
    assert _objective.decision(X, coef, None, out=out, backend=_backend(mod)) is out
    _assert_close(out, want - b, dtype, _finite_max_abs(want) + 1.0, "decision without intercept")
