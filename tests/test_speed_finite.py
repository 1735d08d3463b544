"""The NaN/infinity input screen (issue 13): the compiled SIMD kernel and its NumPy fallback.

:func:`fastsoftmax._validation.all_finite` must find a NaN or an infinity
wherever it is (the first value, the last one, a SIMD tail, a block border),
in float32 and float64, at every instruction-set level and on several
threads; integer data is never read; the estimators raise scikit-learn's
message before any model is returned and leave a warm-started estimator as
it was.
"""

import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import LogisticRegression, SoftmaxRegression, _validation
from fastsoftmax._validation import all_finite, check_all_finite

try:
    from fastsoftmax import _cython_kernels as kernels
except ImportError:  # pragma: no cover - the extension is not built
    kernels = None

# sizes around the vector widths (4..16 lanes, 4 vectors a step) and the
# 65536-value blocks of the compiled kernel
SIZES = [1, 2, 7, 15, 16, 17, 63, 64, 65, 100, 65535, 65536, 65537, 2 * 65536 + 67]
BAD = [np.nan, np.inf, -np.inf]


def _levels():
    if kernels is None:
        return [None]
    best = kernels.set_simd_level(None)
    names = ("baseline", "avx2", "avx512")
    return list(names[: names.index(best) + 1])


@pytest.fixture(params=_levels())
def level(request):
    """Each instruction set this CPU has (the compiled kernel), then the best again."""
    if request.param is not None:
        kernels.set_simd_level(request.param)
    yield request.param
    if kernels is not None:
        kernels.set_simd_level(None)


@pytest.fixture(params=["compiled-1thread", "compiled-2threads", "numpy"])
def screen(request, monkeypatch):
    """The compiled screen on one and on two threads, and the NumPy fallback."""
    if request.param == "numpy":
        monkeypatch.setattr(_validation, "_finite_kernel", False)
        yield request.param
        return
    if kernels is None:
        pytest.skip("Cython extension not built")
    threads = 2 if request.param.endswith("2threads") else 1
    # every array, however small, is split over the threads
    monkeypatch.setattr(_validation, "_FINITE_VALUES_PER_THREAD", 1)
    before = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(threads)
    yield request.param
    fastsoftmax.set_num_threads(before)


def _positions(n):
    return sorted({0, n // 2, n - 1, max(0, n - 17), min(n - 1, 65536)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finds_every_nan_and_infinity(level, screen, dtype):
    if screen == "numpy" and level != _levels()[-1]:
        pytest.skip("the NumPy screen has no instruction-set levels")
    for n in SIZES:
        x = np.random.default_rng(n).uniform(-1e3, 1e3, n).astype(dtype)
        assert all_finite(x)
        for pos in _positions(n):
            for bad in BAD:
                y = x.copy()
                y[pos] = bad
                assert not all_finite(y), (n, pos, bad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_extremes_pass(level, screen, dtype):
    if screen == "numpy" and level != _levels()[-1]:
        pytest.skip("the NumPy screen has no instruction-set levels")
    finfo = np.finfo(dtype)
    x = np.array([finfo.max, -finfo.max, finfo.tiny, finfo.smallest_subnormal, -0.0, 0.0] * 50,
                 dtype=dtype)  # fmt: skip
    # their sum overflows: the fallback must not take that for an infinity
    assert all_finite(x)
    assert all_finite(x.reshape(30, 10))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_dimensional_and_non_contiguous(screen, dtype):
    X = np.random.default_rng(0).standard_normal((37, 23)).astype(dtype)
    for view in (X, X.T, X[::2], X[:, 1::3], np.asfortranarray(X)):
        assert all_finite(view)
        bad = view.copy(order="K")
        bad[-1, -1] = np.nan
        assert not all_finite(bad)
        strided = np.repeat(view, 2, axis=1)[:, ::2]  # NaN in a non-contiguous view
        strided[-1, -1] = np.inf
        assert not all_finite(strided)


def test_empty_arrays(screen):
    for shape in [(0,), (0, 5), (5, 0), (0, 0)]:
        for dtype in (np.float32, np.float64):
            assert all_finite(np.empty(shape, dtype))


def test_read_only_array(screen):
    x = np.ones(1000, np.float32)
    x[999] = np.nan
    x.flags.writeable = False
    assert not all_finite(x)


def test_integer_data_is_not_read(monkeypatch):
    def refuse(*args):
        raise AssertionError("integer data was read")

    monkeypatch.setattr(_validation, "_finite_kernel", refuse)
    monkeypatch.setattr(np, "isfinite", refuse)
    for dtype in (np.uint8, np.int32, np.int64, np.bool_):
        assert all_finite(np.ones((4, 3), dtype))


def test_check_all_finite_messages(screen):
    x = np.zeros((3, 4), np.float32)
    assert check_all_finite(x) is x
    x[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"^Input X contains NaN\.$"):
        check_all_finite(x)
    x[2, 3] = -np.inf
    with pytest.raises(ValueError, match=r"^Input Z contains infinity\.$"):
        check_all_finite(x, "Z")


def _data(dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((203, 17)).astype(dtype)
    y = rng.integers(0, 3, 203)
    return X, y


def _state(est):
    names = ("coef_", "intercept_", "classes_", "n_iter_", "n_features_in_", "history_")
    return {name: getattr(est, name) for name in names if hasattr(est, name)}


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for name, value in before.items():
        if isinstance(value, dict):
            assert value == after[name]
        else:
            np.testing.assert_array_equal(value, after[name])


def _estimators():
    return [
        SoftmaxRegression(max_epochs=2, warm_start=True, random_state=0),
        LogisticRegression(max_iter=20, warm_start=True),
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad, message", [(np.nan, "NaN"), (np.inf, "infinity"),
                                          (-np.inf, "infinity")])  # fmt: skip
@pytest.mark.parametrize("make", range(2), ids=["SoftmaxRegression", "LogisticRegression"])
def test_estimators_raise_and_keep_their_warm_start(screen, dtype, bad, message, make):
    X, y = _data(dtype)
    est = _estimators()[make]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in _state(est).items()}
    before["history_"] = {k: list(v) for k, v in before.get("history_", {}).items()}
    if not before["history_"]:
        del before["history_"]
    for pos in [(0, 0), (101, 7), (202, 16)]:  # first, middle, last value
        X_bad = X.copy()
        X_bad[pos] = bad
        with pytest.raises(ValueError, match=rf"Input X contains {message}\."):
            est.fit(X_bad, y)
        _assert_same_state(before, _state(est))
        with pytest.raises(ValueError, match=rf"Input X contains {message}\."):
            est.predict(X_bad)


def test_uint8_fit_still_works():
    X, y = _data()
    pixels = (np.abs(X) * 40).astype(np.uint8)
    est = SoftmaxRegression(max_epochs=1, random_state=0).fit(pixels / 255.0, y)
    assert est.coef_.shape == (3, 17)
    est = SoftmaxRegression(max_epochs=1, random_state=0, learning_rate=1e-4).fit(pixels, y)
    assert np.all(np.isfinite(est.coef_))


def test_zero_rows_still_refused():
    with pytest.raises(ValueError, match="0 sample"):
        SoftmaxRegression().fit(np.empty((0, 3), np.float32), np.empty(0, int))
