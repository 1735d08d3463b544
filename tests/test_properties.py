"""Property-based tests of the public functions on every backend (issue 16).

Hypothesis draws shapes (0-size included), dtypes (float16/32/64, big-endian,
int, bool, uint8), memory layouts (C, F, strided, negative strides,
read-only, memmap) and ``out=`` arrays (fresh, or the input itself), and every
public function is checked on every available backend (naive on small inputs
only) against a float64 reference written here with NumPy and SciPy, never
with fastsoftmax: the values, the documented result dtype, that ``out=`` is
honoured and that no input is ever modified.  Derandomized and sized to run in
a few seconds.
"""

import math
import os
import tempfile

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastsoftmax as fs
from fastsoftmax._backends import BACKEND_NAMES, get_module


def _available_backends():
    names = []
    for name in BACKEND_NAMES:
        try:
            get_module(name)
        except ImportError:
            continue
        names.append(name)
    return names


BACKENDS = _available_backends()
NAIVE_MAX_SIZE = 400  # the naive backend is pure Python: small inputs only

SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=100)

DTYPES = ["<f2", "<f4", "<f8", ">f4", ">f8", "<i4", ">i8", "?", "u1"]
LAYOUTS = ["C", "F", "strided", "negative", "readonly", "memmap"]
_MEMMAP_DIR = tempfile.mkdtemp(prefix="fastsoftmax-props-")


def _backends_for(size):
    return [b for b in BACKENDS if b != "naive" or size <= NAIVE_MAX_SIZE]


# -- the documented dtype rules, restated ------------------------------------


def documented_result_dtype(dtype):
    """Floating inputs keep their dtype (native byte order); bool and integers give float64."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype.newbyteorder("=")
    return np.dtype(np.float64)


def documented_compute_dtype(*dtypes, uint8_data=None):
    """float16 is computed in float32, bool/int in float64, floats promote; uint8 X takes the others'."""

    def one(dt):
        dt = np.dtype(dt).newbyteorder("=")
        if dt.kind != "f":
            return np.dtype(np.float64)
        return np.dtype(np.float32) if dt.itemsize < 4 else dt

    floats = [one(d) for d in dtypes if d is not None]
    if uint8_data is not None and np.dtype(uint8_data) != np.uint8:
        floats.append(one(uint8_data))
    return np.result_type(*floats)


# -- building inputs ---------------------------------------------------------


def _cast(values, dtype):
    """float64 values cast to dtype (ints rounded, bools x > 0, uint8 in 0..255)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return values > 0
    if dtype == np.uint8:
        return np.abs(np.round(values * 8)).astype(np.int64).clip(0, 255).astype(dtype)
    if dtype.kind in "iu":
        return np.round(values).astype(dtype)
    return values.astype(dtype)


def _layout(values, layout):
    """An array equal to ``values`` (any dtype) in the given memory layout."""
    if layout == "C":
        return np.ascontiguousarray(values)
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in values.shape), values.dtype)
        view = big[tuple(slice(None, None, 2) for _ in values.shape)]
        view[...] = values
        return view
    if layout == "negative":
        flip = tuple(slice(None, None, -1) for _ in values.shape)
        return np.ascontiguousarray(values[flip])[flip]
    if layout == "readonly":
        a = np.array(values)
        a.setflags(write=False)
        return a
    if layout == "memmap":
        if values.size == 0:  # numpy cannot map an empty file
            return np.array(values)
        fd, path = tempfile.mkstemp(dir=_MEMMAP_DIR, suffix=".dat")
        os.close(fd)
        mm = np.memmap(path, dtype=values.dtype, mode="w+", shape=values.shape)
        mm[...] = values
        mm.flush()
        del mm
        return np.memmap(path, dtype=values.dtype, mode="r", shape=values.shape)
    raise AssertionError(layout)


@st.composite
def arrays(draw, shape, dtypes=DTYPES, scale=20.0, layouts=LAYOUTS):
    """(array, its values in float64) of the drawn dtype and layout."""
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    size = math.prod(shape)
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).uniform(-scale, scale, size).reshape(shape)
    values = _cast(values, dtype)
    a = _layout(values, draw(st.sampled_from(layouts)))
    return a, np.asarray(a).astype(np.float64)


shapes = st.lists(st.integers(0, 5), min_size=1, max_size=3).map(tuple)
matrix_shapes = st.tuples(st.integers(0, 9), st.integers(1, 6))


class Untouched:
    """Remembers inputs and checks afterwards that none was modified."""

    def __init__(self, *arrays):
        self.saved = [(a, np.array(a, copy=True)) for a in arrays if isinstance(a, np.ndarray)]

    def check(self):
        for a, before in self.saved:
            assert a.dtype == before.dtype
            np.testing.assert_array_equal(a, before, err_msg="an input was modified")


def _tolerance(ref, rdtype, cdtype, scale=1.0):
    """Absolute tolerance: a few ulps of the computation dtype (times the data scale), plus rounding to rdtype."""
    ref = np.abs(np.asarray(ref, dtype=np.float64))
    eps_c = float(np.finfo(cdtype).eps)
    tol = 16 * eps_c * (ref + scale)
    rdtype = np.dtype(rdtype)
    if rdtype.kind == "f":
        with np.errstate(over="ignore"):
            tol = tol + 2 * np.spacing(ref.astype(rdtype)).astype(np.float64)
    return tol


def assert_close(got, ref, rdtype, cdtype, scale=1.0, err_msg=""):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, err_msg
    with np.errstate(invalid="ignore", over="ignore"):
        same = (got == ref) | (np.isnan(got) & np.isnan(ref))
        err = np.abs(got - ref)
        tol = _tolerance(ref, rdtype, cdtype, scale)
        bad = ~same & ~(err <= tol)
    assert not bad.any(), f"{err_msg}: got {got[bad][:5]}, want {ref[bad][:5]}"


# -- softmax family ------------------------------------------------------------


@st.composite
def axes_for(draw, ndim):
    kind = draw(st.sampled_from(["none", "int", "negative", "tuple"]))
    if kind == "none":
        return None
    if kind == "int":
        return draw(st.integers(0, ndim - 1))
    if kind == "negative":
        return draw(st.integers(-ndim, -1))
    axes = draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True))
    return tuple(axes)


def _norm_axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        return tuple(a % ndim for a in axis)
    return (axis % ndim,)


def ref_logsumexp(x64, axes, keepdims=True):
    """float64 logsumexp over axes, written directly (max shift, non-finite max -> 0)."""
    if x64.size == 0 or any(x64.shape[a] == 0 for a in axes):
        with np.errstate(divide="ignore"):
            return np.log(np.sum(np.exp(x64), axis=axes, keepdims=keepdims))
    m = np.max(x64, axis=axes, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(x64 - m), axis=axes, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axes)


def ref_weighted_logsumexp(a64, b64, axes, keepdims):
    """log|sum b exp(a)| and its sign over axes, in float64."""
    a64, b64 = np.broadcast_arrays(a64, b64)
    if a64.size and all(a64.shape[ax] for ax in axes):
        m = np.max(a64, axis=axes, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
    else:
        m = np.zeros([1 if i in axes else s for i, s in enumerate(a64.shape)])
    total = np.sum(b64 * np.exp(a64 - m), axis=axes, keepdims=True)
    with np.errstate(divide="ignore"):
        res = np.log(np.abs(total)) + m
    sign = np.sign(total)
    if not keepdims:
        res, sign = np.squeeze(res, axis=axes), np.squeeze(sign, axis=axes)
    return res, sign


@SETTINGS
@given(data=st.data(), shape=shapes, name=st.sampled_from(["softmax", "log_softmax"]))
def test_softmax_and_log_softmax(data, shape, name):
    x, x64 = data.draw(arrays(shape))
    axis = data.draw(axes_for(len(shape)))
    axes = _norm_axes(axis, x.ndim)
    # softmax as exp(x - max) / sum: exp(x - logsumexp) would lose the rounding of
    # log(1 + tiny) and be less accurate than the functions under test
    m = np.max(x64, axis=axes, keepdims=True) if x.size else np.zeros(())
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.exp(x64 - m)
        total = np.sum(e, axis=axes, keepdims=True)
        ref = e / total if name == "softmax" else (x64 - m) - np.log(total)
    rdtype = documented_result_dtype(x.dtype)
    cdtype = documented_compute_dtype(x.dtype)
    scale = float(np.max(np.abs(x64), initial=1.0)) if name == "log_softmax" else 1.0
    untouched = Untouched(x)
    func = getattr(fs, name)
    for backend in _backends_for(x.size):
        got = func(x, axis=axis, backend=backend)
        assert isinstance(got, np.ndarray) and got.dtype == rdtype, (backend, got.dtype)
        assert got.shape == x.shape
        assert_close(got, ref, rdtype, cdtype, scale, f"{name} {backend}")
        untouched.check()
        # out=: a fresh array in any layout is filled and returned
        out = _layout(np.zeros(x.shape, rdtype), data.draw(st.sampled_from(["C", "F", "strided", "negative"])))
        res = func(x, axis=axis, out=out, backend=backend)
        assert res is out
        np.testing.assert_array_equal(out, got, err_msg=f"{name} {backend} out=")
        untouched.check()
    # out= overlapping the input without being it: shifted by one element of a buffer
    if x.ndim == 1 and x.size and x.dtype == rdtype:
        for backend in _backends_for(x.size):
            buf = np.zeros(x.size + 1, rdtype)
            buf[:-1] = x
            out = buf[1:]
            assert func(buf[:-1], axis=axis, out=out, backend=backend) is out
            assert_close(buf[1:], ref, rdtype, cdtype, scale, f"{name} {backend} overlapping out")
    # out= the input itself (in place), where the input can be the result
    if x.dtype == rdtype and x.flags.writeable:
        for backend in _backends_for(x.size):
            inplace = x.copy(order="K") if data.draw(st.booleans()) else _layout(x.copy(), "negative")
            res = func(inplace, axis=axis, out=inplace, backend=backend)
            assert res is inplace
            assert_close(inplace, ref, rdtype, cdtype, scale, f"{name} {backend} in place")


@SETTINGS
@given(
    data=st.data(),
    shape=shapes,
    keepdims=st.booleans(),
    with_b=st.sampled_from([None, "positive", "signed"]),
    return_sign=st.booleans(),
)
def test_logsumexp(data, shape, keepdims, with_b, return_sign):
    a, a64 = data.draw(arrays(shape))
    axis = data.draw(axes_for(len(shape)))
    axes = _norm_axes(axis, a.ndim)
    b = b64 = None
    if with_b is not None:
        b_shape = data.draw(st.sampled_from([shape, shape[-1:]]))  # full or broadcast
        b, b64 = data.draw(arrays(b_shape, dtypes=["<f4", "<f8", ">f8", "<i4"], scale=3.0))
        if with_b == "positive":
            b = np.abs(b)
            b64 = np.abs(b64)
    untouched = Untouched(a, b)
    if b is None:
        ref = ref_logsumexp(a64, axes, keepdims)
        sign = np.ones_like(ref)
        rdtype = documented_result_dtype(a.dtype)
    else:
        ref, sign = ref_weighted_logsumexp(a64, b64, axes, keepdims)
        # scipy's rule: the promoted dtype of a and b
        rdtype = np.result_type(documented_result_dtype(a.dtype), documented_result_dtype(b.dtype))
    cdtype = documented_compute_dtype(a.dtype, None if b is None else b.dtype)
    scale = float(np.max(np.abs(a64), initial=1.0))
    if b is not None:  # cancellation in a signed sum: compare the sum itself, loosely
        assume(np.all(np.isfinite(ref)) or not return_sign)
    for backend in _backends_for(a.size):
        res = fs.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign, backend=backend)
        got, got_sign = res if return_sign else (res, None)
        assert np.asarray(got).dtype == rdtype, (backend, np.asarray(got).dtype, rdtype)
        assert np.shape(got) == np.shape(ref)
        untouched.check()
        if b is not None and with_b == "signed":
            # the sum's value, not its log: exact cancellation makes the log meaningless
            want = np.exp(ref) * (sign if return_sign else 1)
            have = np.exp(np.asarray(got, np.float64)) * (got_sign if return_sign else 1)
            tol = 1e-4 if cdtype == np.float32 else 1e-9
            bound = np.exp(ref_logsumexp(a64, axes, keepdims)) * float(np.max(np.abs(b64), initial=1))
            with np.errstate(invalid="ignore"):
                np.testing.assert_array_less(
                    np.nan_to_num(np.abs(have - want), nan=0.0), tol * bound + 1e-300
                )
        else:
            assert_close(got, ref, rdtype, cdtype, scale, f"logsumexp {backend}")
            if return_sign:
                np.testing.assert_array_equal(np.asarray(got_sign)[np.isfinite(ref)], 1)


# -- linear --------------------------------------------------------------------


X_DTYPES = ["<f2", "<f4", "<f8", ">f4", ">f8", "<i4", "?", "u1"]
W_DTYPES = ["<f4", "<f8", ">f8"]


@SETTINGS
@given(data=st.data(), n=st.integers(0, 9), d=st.integers(0, 7), c=st.integers(1, 5),
       with_b=st.booleans())
def test_linear(data, n, d, c, with_b):
    X, X64 = data.draw(arrays((n, d), dtypes=X_DTYPES, scale=3.0))
    W, W64 = data.draw(arrays((d, c), dtypes=W_DTYPES, scale=1.0))
    b = b64 = None
    if with_b:
        b, b64 = data.draw(arrays((c,), dtypes=W_DTYPES, scale=1.0))
    rdtype = documented_compute_dtype(W.dtype, None if b is None else b.dtype, uint8_data=X.dtype)
    ref = X64 @ W64 + (0 if b64 is None else b64)
    scale = float(np.sum(np.abs(X64) @ np.abs(W64), initial=1.0)) if n * d else 1.0
    untouched = Untouched(X, W, b)
    for backend in _backends_for(X.size * c):
        got = fs.linear(X, W, b, backend=backend)
        assert got.dtype == rdtype and got.shape == (n, c), (backend, got.dtype)
        assert_close(got, ref, rdtype, rdtype, scale, f"linear {backend}")
        untouched.check()
        out = _layout(np.zeros((n, c), rdtype), data.draw(st.sampled_from(["C", "F", "strided"])))
        assert fs.linear(X, W, b, out=out, backend=backend) is out
        np.testing.assert_array_equal(out, got)
        untouched.check()
        # aliasing: X is out itself (square problems of the result dtype)
        if d == c and X.dtype == rdtype:
            buf = np.array(X, order="C")
            assert fs.linear(buf, W, b, out=buf, backend=backend) is buf
            assert_close(buf, ref, rdtype, rdtype, scale, f"linear {backend} X is out")
        # aliasing: the intercept is a view into out (issue 16, item 3)
        if with_b and n and b.dtype == rdtype:
            out = np.zeros((n, c), rdtype)
            out[0] = b
            alias = out[0]
            res = fs.linear(X, W, alias, out=out, backend=backend)
            assert res is out
            assert_close(out, X64 @ W64 + b64, rdtype, rdtype, scale, f"linear {backend} b in out")


# -- losses ----------------------------------------------------------------------


def _labels(data, n, c):
    seed = data.draw(st.integers(0, 2**32 - 1))
    y = np.random.default_rng(seed).integers(0, c, n)
    return _layout(y.astype(data.draw(st.sampled_from(["<i8", ">i4", "u1"]))),
                   data.draw(st.sampled_from(["C", "strided", "negative", "readonly"])))


def _weights(data, n):
    if not data.draw(st.booleans()):
        return None, np.ones(n)
    sw, sw64 = data.draw(arrays((n,), dtypes=["<f4", "<f8", ">f8", "<i4"], scale=2.0))
    sw = np.abs(sw)
    return sw, np.abs(sw64)


def _reduce(losses, sw64, reduction):
    # documented: "none" multiplies each loss by its weight, "mean" divides by the weights' sum
    if reduction == "none":
        return sw64 * losses
    total = float(np.sum(sw64 * losses))
    if reduction == "sum":
        return total
    weight = float(np.sum(sw64))
    return total / weight if weight else 0.0


def check_reduced_losses(func, logits, target, sw, sw64, reduction, ref, scale, inputs):
    """Run a loss function on every backend: documented type, dtype, value; inputs untouched."""
    rdtype = documented_result_dtype(logits.dtype)
    cdtype = documented_compute_dtype(logits.dtype)
    untouched = Untouched(*inputs)
    n = logits.shape[0]
    for backend in _backends_for(logits.size):
        got = func(logits, target, reduction=reduction, sample_weight=sw, backend=backend)
        untouched.check()
        if reduction == "none":
            assert got.dtype == rdtype and got.shape == (n,)
            assert_close(got, ref, rdtype, cdtype, scale, f"{func.__name__} {backend}")
        else:
            assert type(got) is float
            total_weight = max(1.0, float(np.sum(sw64)))
            assert_close(got, ref, np.float64, cdtype, scale * total_weight, backend)


@SETTINGS
@given(data=st.data(), shape=matrix_shapes, reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy(data, shape, reduction):
    n, c = shape
    logits, z64 = data.draw(arrays(shape, dtypes=["<f2", "<f4", "<f8", ">f8", "<i4"]))
    y = _labels(data, n, c)
    sw, sw64 = _weights(data, n)
    ce = (ref_logsumexp(z64, (1,), keepdims=False) - z64[np.arange(n), np.asarray(y, np.int64)]) if n else np.zeros(0)
    assume(reduction != "mean" or sw is None or n == 0 or np.sum(sw64) > 0)
    ref = _reduce(ce, sw64, reduction)
    scale = float(np.max(np.abs(z64), initial=1.0))
    check_reduced_losses(fs.cross_entropy, logits, y, sw, sw64, reduction, ref, scale, (logits, y, sw))


@SETTINGS
@given(data=st.data(), shape=matrix_shapes, reduction=st.sampled_from(["mean", "sum", "none"]))
def test_cross_entropy_probability_targets(data, shape, reduction):
    logits, z64 = data.draw(arrays(shape, dtypes=["<f2", "<f4", "<f8", ">f4", "<i4"]))
    target, t64 = data.draw(arrays(shape, dtypes=["<f4", "<f8", ">f8", "?", "u1"], scale=1.0))
    target, t64 = np.abs(target), np.abs(t64)
    n = shape[0]
    sw, sw64 = _weights(data, n)
    assume(reduction != "mean" or sw is None or n == 0 or np.sum(sw64) > 0)
    logp = z64 - ref_logsumexp(z64, (1,)) if n else z64
    losses = -np.sum(np.where(t64 != 0, t64 * logp, 0.0), axis=1)
    ref = _reduce(losses, sw64, reduction)
    scale = float(np.max(np.abs(z64), initial=1.0)) * float(np.max(np.sum(t64, axis=1), initial=1.0))
    check_reduced_losses(
        fs.cross_entropy, logits, target, sw, sw64, reduction, ref, scale, (logits, target, sw)
    )


def ref_softmax_ce_grad(X64, W64, b64, y, sw64, l2):
    Z = X64 @ W64 + (0 if b64 is None else b64)
    n, c = Z.shape
    if n == 0:
        return 0.5 * l2 * np.sum(W64**2), l2 * W64, np.zeros(c)
    lse = ref_logsumexp(Z, (1,))
    P = np.exp(Z - lse)
    Y = np.eye(c)[y]
    m = float(np.sum(sw64))
    if m == 0:
        return 0.5 * l2 * np.sum(W64**2), l2 * W64, np.zeros(c)
    loss = float(np.sum(sw64 * (lse[:, 0] - Z[np.arange(n), y]))) / m + 0.5 * l2 * np.sum(W64**2)
    R = sw64[:, None] * (P - Y) / m
    return loss, X64.T @ R + l2 * W64, R.sum(axis=0)


@SETTINGS
@given(data=st.data(), n=st.integers(0, 9), d=st.integers(0, 6), c=st.integers(1, 5),
       with_b=st.booleans(), l2=st.sampled_from([0.0, 0.5]))
def test_softmax_cross_entropy_grad(data, n, d, c, with_b, l2):
    X, X64 = data.draw(arrays((n, d), dtypes=X_DTYPES, scale=2.0))
    W, W64 = data.draw(arrays((d, c), dtypes=W_DTYPES, scale=1.0))
    b = b64 = None
    if with_b:
        b, b64 = data.draw(arrays((c,), dtypes=W_DTYPES, scale=1.0))
    y = _labels(data, n, c)
    sw, sw64 = _weights(data, n)
    cdtype = documented_compute_dtype(W.dtype, None if b is None else b.dtype, uint8_data=X.dtype)
    loss_ref, dW_ref, db_ref = ref_softmax_ce_grad(X64, W64, b64, np.asarray(y, np.int64), sw64, l2)
    scale = 1.0 + float(np.max(np.abs(X64), initial=0)) * max(d, 1)
    untouched = Untouched(X, W, b, y, sw)
    for backend in _backends_for(X.size * c):
        loss, dW, db = fs.softmax_cross_entropy_grad(X, W, b, y, l2=l2, sample_weight=sw, backend=backend)
        untouched.check()
        assert type(loss) is float
        assert dW.dtype == cdtype and dW.shape == (d, c), (backend, dW.dtype)
        assert db.dtype == cdtype and db.shape == (c,)
        assert_close(loss, loss_ref, np.float64, cdtype, scale * 4, f"loss {backend}")
        assert_close(dW, dW_ref, cdtype, cdtype, scale * 4, f"dW {backend}")
        assert_close(db, db_ref, cdtype, cdtype, 4.0, f"db {backend}")


@SETTINGS
@given(data=st.data(), shape=shapes)
def test_sigmoid(data, shape):
    x, x64 = data.draw(arrays(shape))
    ref = sp.expit(x64)
    rdtype = documented_result_dtype(x.dtype)
    cdtype = documented_compute_dtype(x.dtype)
    untouched = Untouched(x)
    for backend in _backends_for(x.size):
        got = fs.sigmoid(x, backend=backend)
        assert isinstance(got, np.ndarray) and got.dtype == rdtype
        assert_close(got, ref, rdtype, cdtype, 1.0, f"sigmoid {backend}")
        untouched.check()
        out = _layout(np.zeros(x.shape, rdtype), data.draw(st.sampled_from(["C", "F", "negative"])))
        assert fs.sigmoid(x, out=out, backend=backend) is out
        np.testing.assert_array_equal(out, got)
        if x.dtype == rdtype and x.flags.writeable:
            inplace = x.copy()
            assert fs.sigmoid(inplace, out=inplace, backend=backend) is inplace
            np.testing.assert_array_equal(inplace, got)


def _bce(z64, y64):
    # log(1 + e^z) - y z, stably
    return np.logaddexp(0, z64) - y64 * z64


@SETTINGS
@given(data=st.data(), n=st.integers(0, 12), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_binary_cross_entropy(data, n, reduction):
    z, z64 = data.draw(arrays((n,), dtypes=["<f2", "<f4", "<f8", ">f4", "<i4"]))
    y01 = np.random.default_rng(n).integers(0, 2, n)
    y = y01.astype(data.draw(st.sampled_from(["<f8", "<f4", "?", "<i8", "u1"])))
    sw, sw64 = _weights(data, n)
    assume(reduction != "mean" or sw is None or n == 0 or np.sum(sw64) > 0)
    ref = _reduce(_bce(z64, y01.astype(np.float64)), sw64, reduction)
    scale = float(np.max(np.abs(z64), initial=1.0))
    check_reduced_losses(fs.binary_cross_entropy, z, y, sw, sw64, reduction, ref, scale, (z, y, sw))


@SETTINGS
@given(data=st.data(), n=st.integers(0, 9), d=st.integers(0, 6),
       b=st.sampled_from([None, 0.0, 1.5, -3]), l2=st.sampled_from([0.0, 0.25]))
def test_logistic_loss_grad(data, n, d, b, l2):
    X, X64 = data.draw(arrays((n, d), dtypes=X_DTYPES, scale=2.0))
    w, w64 = data.draw(arrays((d,), dtypes=W_DTYPES, scale=1.0))
    y01 = np.random.default_rng(n * 7 + d).integers(0, 2, n)
    y = y01.astype(data.draw(st.sampled_from(["<f8", "?", "<i4"])))
    sw, sw64 = _weights(data, n)
    cdtype = documented_compute_dtype(w.dtype, uint8_data=X.dtype)
    z = X64 @ w64 + (b or 0.0)
    m = float(np.sum(sw64))
    if n and m:
        p = sp.expit(z)
        loss_ref = float(np.sum(sw64 * _bce(z, y01))) / m + 0.5 * l2 * np.sum(w64**2)
        dw_ref = X64.T @ (sw64 * (p - y01)) / m + l2 * w64
        db_ref = float(np.sum(sw64 * (p - y01))) / m
    else:
        loss_ref, dw_ref, db_ref = 0.5 * l2 * np.sum(w64**2), l2 * w64, 0.0
    scale = 1.0 + float(np.max(np.abs(X64), initial=0)) * max(d, 1)
    untouched = Untouched(X, w, y, sw)
    for backend in _backends_for(X.size):
        loss, dw, db = fs.logistic_loss_grad(X, w, b, y, l2=l2, sample_weight=sw, backend=backend)
        untouched.check()
        assert type(loss) is float and type(db) is float
        assert dw.dtype == cdtype and dw.shape == (d,)
        assert_close(loss, loss_ref, np.float64, cdtype, scale * 4, f"loss {backend}")
        assert_close(dw, dw_ref, cdtype, cdtype, scale * 4, f"dw {backend}")
        assert_close(db, db_ref, np.float64, cdtype, 4.0, f"db {backend}")


@SETTINGS
@given(data=st.data(), shape=matrix_shapes)
def test_classification_error(data, shape):
    n, c = shape
    logits, z64 = data.draw(arrays(shape, dtypes=["<f2", "<f4", "<f8", ">f8", "<i4", "u1"]))
    y = _labels(data, n, c)
    # ties go to the first maximum, as np.argmax
    ref = float(np.mean(np.argmax(z64, axis=1) != np.asarray(y))) if n else 0.0
    untouched = Untouched(logits, y)
    for backend in _backends_for(logits.size):
        got = fs.classification_error(logits, y, backend=backend)
        untouched.check()
        assert type(got) is float
        assert got == pytest.approx(ref, abs=1e-12), backend
