"""The public functions of fastsoftmax.functions, for every backend.

References are independent: scipy.special, plain NumPy formulas written
here, and central finite differences of the public loss for the gradients.
"""

import numpy as np
import pytest

import fastsoftmax as fs

special = pytest.importorskip("scipy.special")

DTYPES = [np.float32, np.float64]


@pytest.fixture
def backend(backend_name):
    """Every backend (conftest's ``backend_name``: unavailable ones are skipped)."""
    return backend_name


def rtol(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-12


def make_problem(n=7, d=4, C=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(d, C)).astype(dtype)
    b = rng.normal(size=C).astype(dtype)
    y = rng.integers(0, C, size=n)
    return X, W, b, y


def one_hot(y, C):
    return np.eye(C)[y]


def orders(a):
    """The same values as C, Fortran, strided and read-only arrays."""
    f = np.asfortranarray(a)
    strided = np.repeat(a, 2, axis=-1)[..., ::2]
    readonly = a.copy()
    readonly.flags.writeable = False
    return {"C": a, "F": f, "strided": strided, "readonly": readonly}


# --- linear -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_b", [True, False])
def test_linear(backend, dtype, with_b):
    X, W, b, _ = make_problem(dtype=dtype)
    Z = fs.linear(X, W, b if with_b else None, backend=backend)
    want = X.astype(np.float64) @ W.astype(np.float64) + (b if with_b else 0)
    assert Z.dtype == dtype and Z.shape == (7, 3)
    np.testing.assert_allclose(Z, want, rtol=rtol(dtype), atol=rtol(dtype))


@pytest.mark.parametrize("shape", [(0, 4, 3), (1, 4, 1), (5, 0, 2), (3, 2, 0)], ids=str)
def test_linear_edge_shapes(backend, shape):
    n, d, C = shape
    rng = np.random.default_rng(1)
    X, W, b = rng.normal(size=(n, d)), rng.normal(size=(d, C)), rng.normal(size=C)
    np.testing.assert_allclose(fs.linear(X, W, b, backend=backend), X @ W + b, rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_uint8_in_weight_dtype(backend, dtype):
    X = np.array([[0, 255, 7], [128, 1, 2]], np.uint8)
    W = np.arange(6, dtype=dtype).reshape(3, 2) / 10
    Z = fs.linear(X, W, backend=backend)
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, X.astype(np.float64) @ W.astype(np.float64), rtol=rtol(dtype))


def test_linear_dtype_promotion(backend):
    X, W, b, _ = make_problem()
    want = X @ W + b
    # float64 data with float32 weights: computed in float64, never downcast.
    Z = fs.linear(X, W.astype(np.float32), b.astype(np.float32), backend=backend)
    assert Z.dtype == np.float64
    np.testing.assert_allclose(Z, want, rtol=1e-5)
    # integer data (not uint8) is read as float64
    Xi = np.arange(8, dtype=np.int32).reshape(2, 4)
    Zi = fs.linear(Xi, W.astype(np.float32), backend=backend)
    assert Zi.dtype == np.float64
    np.testing.assert_allclose(Zi, Xi @ W.astype(np.float32).astype(np.float64), rtol=1e-12)
    # a float64 intercept promotes float32 weights
    assert (
        fs.linear(X.astype(np.float32), W.astype(np.float32), b, backend=backend).dtype
        == np.float64
    )


def test_linear_memory_orders(backend):
    X, W, b, _ = make_problem()
    want = X @ W + b
    for xo in orders(X).values():
        for wo in orders(W).values():
            np.testing.assert_allclose(fs.linear(xo, wo, b, backend=backend), want, rtol=1e-12)


def test_linear_out(backend):
    X, W, b, _ = make_problem()
    out = np.full((7, 3), np.nan)
    assert fs.linear(X, W, b, out=out, backend=backend) is out
    np.testing.assert_allclose(out, X @ W + b, rtol=1e-12)
    # a non-contiguous out is filled too
    big = np.zeros((7, 6))
    res = fs.linear(X, W, b, out=big[:, ::2], backend=backend)
    np.testing.assert_allclose(big[:, ::2], X @ W + b, rtol=1e-12)
    assert np.all(big[:, 1::2] == 0) and res.base is big


# --- out= and no input modification for the row-wise functions -----------------


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0, None, (0, 1)])
def test_softmax_out(backend, name, axis):
    x = np.random.default_rng(2).normal(size=(4, 5))
    want = getattr(special, name)(x, axis=axis)
    func = getattr(fs, name)
    out = np.empty_like(x)
    assert func(x, axis=axis, out=out, backend=backend) is out
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-15)
    # a Fortran-ordered and a strided out
    for out in (np.empty((4, 5), order="F"), np.empty((4, 10))[:, ::2]):
        assert func(x, axis=axis, out=out, backend=backend) is out
        np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-15)
    # in place: out is the input itself
    y = x.copy()
    assert func(y, axis=axis, out=y, backend=backend) is y
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-15)


def test_zero_dim_out_and_numpy_integer_axis(backend):
    out = np.empty(())
    assert fs.softmax(np.array(3.0), out=out, backend=backend) is out and out == 1.0
    x = np.random.default_rng(3).normal(size=(2, 3))
    np.testing.assert_allclose(
        fs.log_softmax(x, axis=np.int64(0), backend=backend),
        special.log_softmax(x, axis=0),
        rtol=1e-12,
    )


def test_softmax_out_overlapping_input(backend):
    # out overlaps x without being x: the result must still be right.
    buf = np.random.default_rng(3).normal(size=6)
    x = buf[:5].copy()
    want = special.softmax(x)
    buf[:5] = x
    fs.softmax(buf[:5], out=buf[1:], backend=backend)
    np.testing.assert_allclose(buf[1:], want, rtol=1e-12)


def test_softmax_float32_out_float16(backend):
    x = np.array([[1.0, 2.0, 3.0]], np.float16)
    out = np.empty((1, 3), np.float16)
    assert fs.softmax(x, axis=1, out=out, backend=backend) is out
    np.testing.assert_allclose(out, special.softmax(x.astype(np.float64), axis=1), rtol=1e-3)


def test_per_sample_losses_keep_float16(backend):
    # reduction="none" returns the logits' dtype, float16 included (found by test_properties)
    z = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]], np.float16)
    z64 = z.astype(np.float64)
    ce = fs.cross_entropy(z, [2, 0], reduction="none", backend=backend)
    assert ce.dtype == np.float16
    want = special.logsumexp(z64, axis=1) - z64[[0, 1], [2, 0]]
    np.testing.assert_allclose(ce, want, rtol=2e-3)
    bce = fs.binary_cross_entropy(z[:, 0], [1, 0], reduction="none", backend=backend)
    assert bce.dtype == np.float16
    np.testing.assert_allclose(bce, np.logaddexp(0, z64[:, 0]) - [1, 0] * z64[:, 0], rtol=2e-3)
    ints = fs.cross_entropy(np.array([[1, 2]]), [0], reduction="none", backend=backend)
    assert ints.dtype == np.float64


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "sigmoid"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_same_results_and_inputs_untouched(backend, name, dtype):
    x = np.random.default_rng(4).normal(size=(5, 6)).astype(dtype)
    func = getattr(fs, name)
    kw = {} if name == "sigmoid" else {"axis": 1}
    want = func(x, backend=backend, **kw)
    for label, xo in orders(x).items():
        before = xo.copy()
        np.testing.assert_array_equal(func(xo, backend=backend, **kw), want, err_msg=label)
        np.testing.assert_array_equal(xo, before)


def test_big_endian_input(backend):
    x = np.random.default_rng(14).normal(size=(3, 4))
    xbe = x.astype(">f8")
    for name in ("softmax", "log_softmax", "logsumexp", "sigmoid"):
        kw = {} if name == "sigmoid" else {"axis": 1}
        got = getattr(fs, name)(xbe, backend=backend, **kw)
        assert got.dtype == np.float64 and got.dtype.isnative
        np.testing.assert_array_equal(got, getattr(fs, name)(x, backend=backend, **kw))
    W = np.ones((4, 2), ">f4")
    np.testing.assert_allclose(fs.linear(xbe, W, backend=backend), x @ np.ones((4, 2)), rtol=1e-7)
    z32 = fs.linear(xbe.astype(">f4"), W, backend=backend)  # float32 stays float32
    assert z32.dtype == np.float32
    np.testing.assert_allclose(z32, x @ np.ones((4, 2)), rtol=1e-6)


def test_memmap_input(backend, tmp_path):
    X, W, b, y = make_problem(dtype=np.float32)
    path = tmp_path / "X.dat"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=X.shape)
    np.testing.assert_array_equal(
        fs.linear(ro, W, b, backend=backend), fs.linear(X, W, b, backend=backend)
    )
    np.testing.assert_array_equal(
        fs.softmax(ro, axis=1, backend=backend), fs.softmax(X, axis=1, backend=backend)
    )
    loss_mm = fs.softmax_cross_entropy_grad(ro, W, b, y, backend=backend)[0]
    assert loss_mm == fs.softmax_cross_entropy_grad(X, W, b, y, backend=backend)[0]


def test_no_function_writes_into_read_only_inputs(backend):
    X, W, b, y = make_problem()
    w = W[:, 0].copy()
    z = X @ w
    t = one_hot(y, 3)
    arrays = [X, W, b, y, w, z, t]
    copies = [a.copy() for a in arrays]
    for a in arrays:
        a.flags.writeable = False
    fs.linear(X, W, b, backend=backend)
    fs.cross_entropy(X @ W, y, backend=backend)
    fs.cross_entropy(X @ W, t, sample_weight=b[y] ** 2, backend=backend)
    fs.softmax_cross_entropy_grad(X, W, b, y, l2=0.1, sample_weight=b[y] ** 2, backend=backend)
    fs.sigmoid(z, backend=backend)
    fs.binary_cross_entropy(z, y % 2, backend=backend)
    fs.logistic_loss_grad(X, w, 0.5, y % 2, l2=0.1, backend=backend)
    fs.classification_error(X @ W, y, backend=backend)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


# --- cross_entropy --------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_labels(backend, dtype):
    X, W, b, y = make_problem(dtype=dtype)
    logits = fs.linear(X, W, b, backend=backend)
    per_sample = -special.log_softmax(logits.astype(np.float64), axis=1)[np.arange(7), y]
    none = fs.cross_entropy(logits, y, reduction="none", backend=backend)
    assert none.dtype == dtype and none.shape == (7,)
    np.testing.assert_allclose(none, per_sample, rtol=rtol(dtype) * 10)
    mean = fs.cross_entropy(logits, y, backend=backend)
    assert isinstance(mean, float)
    np.testing.assert_allclose(mean, per_sample.mean(), rtol=rtol(dtype) * 10)
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y, reduction="sum", backend=backend),
        per_sample.sum(),
        rtol=rtol(dtype) * 10,
    )
    # probability targets that are one-hot give the same losses
    np.testing.assert_allclose(
        fs.cross_entropy(logits, one_hot(y, 3), reduction="none", backend=backend),
        per_sample,
        rtol=rtol(dtype) * 10,
    )
    # integral float labels are accepted
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y.astype(float), backend=backend), mean, rtol=1e-15
    )


def test_cross_entropy_sample_weight(backend):
    X, W, b, y = make_problem()
    logits = X @ W + b
    per_sample = -special.log_softmax(logits, axis=1)[np.arange(7), y]
    sw = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 1.0, 0.25])
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y, sample_weight=sw, backend=backend),
        per_sample @ sw / sw.sum(),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y, reduction="sum", sample_weight=sw, backend=backend),
        per_sample @ sw,
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y, reduction="none", sample_weight=sw, backend=backend),
        per_sample * sw,
        rtol=1e-12,
    )
    # integer weights are repetitions
    reps = np.array([1, 2, 0, 1, 3, 1, 1])
    repeated = fs.cross_entropy(
        np.repeat(logits, reps, axis=0), np.repeat(y, reps), backend=backend
    )
    np.testing.assert_allclose(
        fs.cross_entropy(logits, y, sample_weight=reps, backend=backend), repeated, rtol=1e-12
    )


def test_cross_entropy_probability_targets(backend):
    logits = np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, 2.0], [1e4, 0.0, -1e4]])
    t = np.array([[0.25, 0.0, 0.75], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    got = fs.cross_entropy(logits, t, reduction="none", backend=backend)
    with np.errstate(invalid="ignore"):
        logp = special.log_softmax(logits, axis=1)
    want = -np.array([0.25 * logp[0, 0] + 0.75 * logp[0, 2], np.log(1 / 3), 0.0])
    assert np.all(np.isfinite(got))  # 0 * -inf contributes nothing
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        fs.cross_entropy(logits, t, backend=backend), want.mean(), rtol=1e-12
    )


def test_cross_entropy_empty(backend):
    logits = np.zeros((0, 3))
    assert fs.cross_entropy(logits, np.zeros(0, int), backend=backend) == 0.0
    assert fs.cross_entropy(logits, np.zeros(0, int), reduction="none", backend=backend).shape == (
        0,
    )
    assert fs.cross_entropy(logits, np.zeros((0, 3)), reduction="sum", backend=backend) == 0.0


def test_cross_entropy_huge_logits_float32(backend):
    big = np.float32(3e38)
    logits = np.array([[big, -big], [big, big / 2]], np.float32)
    got = fs.cross_entropy(logits, [0, 1], reduction="none", backend=backend)
    assert got.dtype == np.float32
    # exp(-1.5e38) underflows to 0, so the loss is exactly the logit gap
    np.testing.assert_allclose(got, [0.0, big / 2], rtol=1e-6)


def test_cross_entropy_large_equal_logits_float32(backend):
    logits = np.full((1, 2), 1e6, np.float32)
    got = fs.cross_entropy(logits, [1], reduction="none", backend=backend)
    np.testing.assert_allclose(got, [np.log(2)], rtol=1e-5)


# --- softmax_cross_entropy_grad ------------------------------------------------


def directional_derivatives(loss_at, grads, params, n_directions=3, h=1e-6, seed=0):
    """Central differences of ``loss_at(*params)`` along random directions vs ``<grad, v>``.

    Cheaper than coordinate-wise differences and checks every entry at once.
    """
    rng = np.random.default_rng(seed)
    for _ in range(n_directions):
        vs = [rng.normal(size=np.shape(p)) for p in params]
        up = loss_at(*[p + h * v for p, v in zip(params, vs)])
        down = loss_at(*[p - h * v for p, v in zip(params, vs)])
        numeric = (up - down) / (2 * h)
        analytic = sum(float(np.sum(np.asarray(g) * v)) for g, v in zip(grads, vs))
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("l2", [0.0, 0.3])
@pytest.mark.parametrize("weighted", [False, True])
def test_softmax_grad_finite_differences(backend, l2, weighted):
    X, W, b, y = make_problem(n=6, d=3, C=4, seed=5)
    sw = np.random.default_rng(6).uniform(0, 2, size=6) if weighted else None
    loss, dW, db = fs.softmax_cross_entropy_grad(
        X, W, b, y, l2=l2, sample_weight=sw, backend=backend
    )
    assert isinstance(loss, float) and dW.shape == W.shape and db.shape == b.shape

    def loss_at(W_, b_):
        return fs.softmax_cross_entropy_grad(
            X, W_, b_, y, l2=l2, sample_weight=sw, backend=backend
        )[0]

    directional_derivatives(loss_at, [dW, db], [W, b])
    # the loss itself, from scipy's log_softmax
    per_sample = -special.log_softmax(X @ W + b, axis=1)[np.arange(6), y]
    s = np.ones(6) if sw is None else sw
    np.testing.assert_allclose(loss, per_sample @ s / s.sum() + 0.5 * l2 * np.sum(W**2), rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_grad_formula_and_dtype(backend, dtype):
    X, W, b, y = make_problem(n=9, d=5, C=4, dtype=dtype, seed=7)
    loss, dW, db = fs.softmax_cross_entropy_grad(X, W, b, y, l2=0.1, backend=backend)
    assert dW.dtype == dtype and db.dtype == dtype
    X64, W64 = X.astype(np.float64), W.astype(np.float64)
    R = special.softmax(X64 @ W64 + b, axis=1) - one_hot(y, 4)
    np.testing.assert_allclose(
        dW, X64.T @ R / 9 + 0.1 * W64, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-6
    )
    np.testing.assert_allclose(
        db, R.mean(axis=0), rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-6
    )


def test_softmax_grad_uint8_and_no_intercept(backend):
    rng = np.random.default_rng(8)
    X8 = rng.integers(0, 256, size=(5, 4)).astype(np.uint8)
    W = rng.normal(size=(4, 3)).astype(np.float32) / 100
    y = np.array([0, 1, 2, 1, 0])
    loss, dW, db = fs.softmax_cross_entropy_grad(X8, W, None, y, backend=backend)
    assert dW.dtype == np.float32
    ref = fs.softmax_cross_entropy_grad(
        X8.astype(np.float32), W, np.zeros(3, np.float32), y, backend="numpy"
    )
    np.testing.assert_allclose(loss, ref[0], rtol=1e-5)
    np.testing.assert_allclose(dW, ref[1], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(db, ref[2], rtol=1e-4, atol=1e-6)


def test_softmax_grad_dtype_promotion(backend):
    X, W, b, y = make_problem(dtype=np.float32)
    # float32 stays float32 ...
    assert fs.softmax_cross_entropy_grad(X, W, b, y, backend=backend)[1].dtype == np.float32
    # ... but float64 data or intercepts are never downcast
    for args in [(X.astype(np.float64), W, b), (X, W, b.astype(np.float64))]:
        _, dW, db = fs.softmax_cross_entropy_grad(*args, y, backend=backend)
        assert dW.dtype == db.dtype == np.float64
    # integer data other than uint8 is read as float64
    _, dW, _ = fs.softmax_cross_entropy_grad(
        np.ones((2, 4), np.int16), W, b, [0, 1], backend=backend
    )
    assert dW.dtype == np.float64


def test_softmax_grad_empty(backend):
    W = np.ones((3, 2))
    loss, dW, db = fs.softmax_cross_entropy_grad(
        np.zeros((0, 3)), W, np.zeros(2), [], l2=0.5, backend=backend
    )
    assert loss == pytest.approx(0.5 * 0.5 * 6)
    np.testing.assert_array_equal(dW, 0.5 * W)
    np.testing.assert_array_equal(db, 0.0)


# --- sigmoid and the binary loss -------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 4), (2, 3, 2)], ids=str)
def test_sigmoid(backend, dtype, shape):
    x = (np.random.default_rng(9).normal(size=shape) * 20).astype(dtype)
    got = fs.sigmoid(x, backend=backend)
    want = special.expit(x)
    assert type(got) is type(want) and np.asarray(got).dtype == dtype and np.shape(got) == shape
    np.testing.assert_allclose(got, want, rtol=rtol(dtype) * 10, atol=1e-30)


def test_sigmoid_extremes_and_out(backend):
    x = np.array([-np.inf, -1e308, -800.0, 0.0, 800.0, 1e308, np.inf])
    got = fs.sigmoid(x, backend=backend)  # RuntimeWarnings are errors here
    np.testing.assert_array_equal(got, [0, 0, 0, 0.5, 1, 1, 1])
    assert np.isnan(fs.sigmoid(np.nan, backend=backend))
    x2 = np.random.default_rng(10).normal(size=(3, 4))
    out = np.empty((3, 4), order="F")
    assert fs.sigmoid(x2, out=out, backend=backend) is out
    np.testing.assert_allclose(out, special.expit(x2), rtol=1e-14)
    y = x2.copy()
    assert fs.sigmoid(y, out=y, backend=backend) is y
    np.testing.assert_allclose(y, special.expit(x2), rtol=1e-14)
    assert fs.sigmoid(np.array([0, 1, 2]), backend=backend).dtype == np.float64


def test_binary_cross_entropy(backend):
    z = np.array([-800.0, -3.0, 0.0, 2.5, 800.0, 1e5])
    y = np.array([1, 0, 1, 1, 0, 1])
    want = np.logaddexp(0, z) - y * z
    got = fs.binary_cross_entropy(z, y, reduction="none", backend=backend)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(
        fs.binary_cross_entropy(z, y, backend=backend), want.mean(), rtol=1e-12
    )
    np.testing.assert_allclose(
        fs.binary_cross_entropy(z, y, reduction="sum", backend=backend), want.sum(), rtol=1e-12
    )
    sw = np.array([1.0, 2.0, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(
        fs.binary_cross_entropy(z, y, sample_weight=sw, backend=backend),
        want @ sw / sw.sum(),
        rtol=1e-12,
    )
    # bool and soft targets
    np.testing.assert_allclose(
        fs.binary_cross_entropy(z, y.astype(bool), reduction="none", backend=backend), want
    )
    soft = fs.binary_cross_entropy(
        np.array([0.0, 1.0]), [0.3, 0.5], reduction="none", backend=backend
    )
    np.testing.assert_allclose(soft, np.logaddexp(0, [0.0, 1.0]) - np.array([0.0, 0.5]), rtol=1e-12)


def test_binary_cross_entropy_infinite_logits(backend):
    z = np.array([np.inf, -np.inf, np.inf, -np.inf, np.inf])
    y = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    got = fs.binary_cross_entropy(z, y, reduction="none", backend=backend)
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf, np.inf])
    # a zero weight drops a sample even when its loss is infinite
    sw = np.array([1.0, 1.0, 0.0, 0.0, 0.0])
    assert fs.binary_cross_entropy(z, y, sample_weight=sw, backend=backend) == 0.0
    np.testing.assert_array_equal(
        fs.binary_cross_entropy(z, y, sample_weight=sw, reduction="none", backend=backend), 0.0
    )
    assert fs.binary_cross_entropy(z, y, backend=backend) == np.inf


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_float32(backend, dtype):
    z = np.array([-50.0, 0.0, 50.0], dtype)
    got = fs.binary_cross_entropy(z, [0, 1, 1], reduction="none", backend=backend)
    assert got.dtype == dtype
    np.testing.assert_allclose(
        got, [np.log1p(np.exp(-50.0)), np.log(2), np.log1p(np.exp(-50.0))], rtol=1e-6, atol=1e-15
    )


@pytest.mark.parametrize("l2", [0.0, 0.7])
@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_grad_finite_differences(backend, l2, weighted):
    rng = np.random.default_rng(11)
    X = rng.normal(size=(8, 3))
    w = rng.normal(size=3)
    b = 0.3
    y = rng.integers(0, 2, size=8)
    sw = rng.uniform(0, 2, size=8) if weighted else None
    loss, dw, db = fs.logistic_loss_grad(X, w, b, y, l2=l2, sample_weight=sw, backend=backend)
    assert isinstance(loss, float) and isinstance(db, float) and dw.shape == (3,)

    def loss_at(w_, b_):
        return fs.logistic_loss_grad(X, w_, float(b_), y, l2=l2, sample_weight=sw, backend=backend)[
            0
        ]

    directional_derivatives(loss_at, [dw, db], [w, b])
    z = X @ w + b
    s = np.ones(8) if sw is None else sw
    want = (np.logaddexp(0, z) - y * z) @ s / s.sum() + 0.5 * l2 * w @ w
    np.testing.assert_allclose(loss, want, rtol=1e-12)


def test_logistic_grad_dtypes(backend):
    rng = np.random.default_rng(12)
    X8 = rng.integers(0, 256, size=(6, 4)).astype(np.uint8)
    w = (rng.normal(size=4) / 100).astype(np.float32)
    y = np.array([0, 1, 1, 0, 1, 0])
    loss, dw, db = fs.logistic_loss_grad(X8, w, None, y, backend=backend)
    assert dw.dtype == np.float32
    ref = fs.logistic_loss_grad(
        X8.astype(np.float64), w.astype(np.float64), 0.0, y, backend="numpy"
    )
    np.testing.assert_allclose(loss, ref[0], rtol=1e-5)
    np.testing.assert_allclose(dw, ref[1], rtol=1e-4)
    np.testing.assert_allclose(db, ref[2], rtol=1e-4)
    # float64 data with float32 weights is computed in float64
    assert (
        fs.logistic_loss_grad(X8.astype(np.float64), w, 0.0, y, backend=backend)[1].dtype
        == np.float64
    )


# --- classification_error ---------------------------------------------------------


def test_classification_error(backend):
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 3.0], [1.0, 1.0, 1.0], [-1.0, -2.0, 5.0]])
    # ties go to the first maximum, like np.argmax
    assert fs.classification_error(logits, [0, 1, 0, 2], backend=backend) == 0.0
    assert fs.classification_error(logits, [1, 2, 1, 2], backend=backend) == 0.75
    assert fs.classification_error(logits.astype(np.float32), [0, 1, 0, 0], backend=backend) == 0.25
    assert fs.classification_error(np.zeros((0, 3)), [], backend=backend) == 0.0
    rng = np.random.default_rng(13)
    big = rng.normal(size=(50, 10))
    labels = rng.integers(0, 10, size=50)
    want = np.mean(np.argmax(big, axis=1) != labels)
    assert fs.classification_error(big, labels, backend=backend) == pytest.approx(want)


# --- reliability (issue 16) ------------------------------------------------------


def test_zero_weight_rows_contribute_nothing_even_when_not_finite(backend):
    # One rule on every backend: a row of weight 0 is dropped before the
    # kernel, so NaN / inf features (or logits) there cannot poison the sums.
    X, W, b, y = make_problem(n=8, d=3, C=4, seed=11)
    sw = np.array([1.0, 0.0, 2.0, 0.0, 1.0, 0.5, 0.0, 1.0])
    X[1] = np.nan
    X[3, 0] = np.inf
    X[6, 2] = -np.inf
    kept = sw > 0
    got = fs.softmax_cross_entropy_grad(X, W, b, y, l2=0.1, sample_weight=sw, backend=backend)
    want = fs.softmax_cross_entropy_grad(
        X[kept], W, b, y[kept], l2=0.1, sample_weight=sw[kept], backend=backend
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    t = y % 2
    got = fs.logistic_loss_grad(X, W[:, 0], 0.5, t, l2=0.1, sample_weight=sw, backend=backend)
    want = fs.logistic_loss_grad(
        X[kept], W[:, 0], 0.5, t[kept], l2=0.1, sample_weight=sw[kept], backend=backend
    )
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)


def test_all_weights_zero_leave_only_the_penalty(backend):
    X, W, b, y = make_problem(n=5, d=3, C=4, seed=12)
    X[2] = np.nan
    sw = np.zeros(5)
    penalty = 0.5 * 0.3 * float(np.sum(W**2))
    loss, dW, db = fs.softmax_cross_entropy_grad(X, W, b, y, l2=0.3, sample_weight=sw, backend=backend)
    assert loss == pytest.approx(penalty, rel=1e-12)
    np.testing.assert_allclose(dW, 0.3 * W, rtol=1e-12)
    np.testing.assert_array_equal(db, 0.0)
    w = W[:, 0]
    loss, dw, db = fs.logistic_loss_grad(X, w, 0.5, y % 2, l2=0.3, sample_weight=sw, backend=backend)
    assert loss == pytest.approx(0.5 * 0.3 * float(w @ w), rel=1e-12)
    np.testing.assert_allclose(dw, 0.3 * w, rtol=1e-12)
    assert db == 0.0


def test_float32_huge_weights_without_penalty_give_a_finite_loss(backend):
    # ||W||^2 overflows float32 above ~1.8e19; with l2 = 0 the penalty is 0, not 0 * inf.
    X, W, b, y = make_problem(n=6, d=3, C=2, dtype=np.float32, seed=13)
    X = (X * 1e-19).astype(np.float32)
    W = (W * 1e20).astype(np.float32)
    loss, dW, db = fs.softmax_cross_entropy_grad(X, W, b, y, backend=backend)
    want = fs.softmax_cross_entropy_grad(
        X.astype(np.float64), W.astype(np.float64), b.astype(np.float64), y, backend="numpy"
    )
    assert np.isfinite(loss) and loss == pytest.approx(want[0], rel=1e-4)
    loss, dw, db = fs.logistic_loss_grad(X, W[:, 0], 0.0, y % 2, backend=backend)
    want = fs.logistic_loss_grad(
        X.astype(np.float64), W[:, 0].astype(np.float64), 0.0, y % 2, backend="numpy"
    )
    assert np.isfinite(loss) and loss == pytest.approx(want[0], rel=1e-4)
    # with a penalty, ||W||^2 is accumulated in float64: finite too
    loss = fs.softmax_cross_entropy_grad(X, W, b, y, l2=1e-30, backend=backend)[0]
    assert np.isfinite(loss)


@pytest.mark.parametrize("dtype", DTYPES)
def test_linear_intercept_overlapping_out(backend, dtype):
    # b a view into out: the kernel would read b while it writes out.
    X, W, _, _ = make_problem(n=5, d=3, C=4, dtype=dtype, seed=14)
    out = np.arange(20, dtype=dtype).reshape(5, 4)
    b = out[1]
    want = X.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    assert fs.linear(X, W, b, out=out, backend=backend) is out
    np.testing.assert_allclose(out, want, rtol=rtol(dtype) * 10, atol=rtol(dtype) * 10)


def test_cross_entropy_of_huge_equal_logits(backend):
    # (max - z_y) + log(sum(exp(z - max))): log 2, not logsumexp(z) - z_y = 0.
    got = fs.cross_entropy([[1e20, 1e20]], [0], backend=backend)
    assert got == pytest.approx(np.log(2), rel=1e-12)


def test_logistic_intercept_outside_float32_is_refused(backend):
    X, W, _, y = make_problem(n=4, d=3, C=2, dtype=np.float32, seed=15)
    with pytest.raises(ValueError, match=r"^b=1e\+39 .*float32"):
        fs.logistic_loss_grad(X, W[:, 0], 1e39, y % 2, backend=backend)
    # float64 weights compute in float64, where the intercept is representable
    loss = fs.logistic_loss_grad(X, W[:, 0].astype(np.float64), 1e39, y % 2, backend=backend)[0]
    assert np.isfinite(loss)
