"""The numba fused kernels' explicit-vector tiles on odd sizes (issue 13, target 6).

``softmax_ce_sums``, ``linear`` and ``train_epoch`` of the numba backend go
through register tiles of 2 rows x 10 classes, 4 x 5 and 4 x 1, over blocks
of rows (logits), and 2 vectors x 10 classes, 4 x 5, 4 x 1 plus one masked
vector (gradient): these tests hit every tile, the masked last features
(d below, at and above a multiple of the vector width), blocks of 1-3 rows
(the padded groups of 4), several blocks per call, and the converted
(uint8) rows, against the naive backend (the pure-Python oracle).
"""

import os
import subprocess
import sys

import numpy as np
import pytest

numba_backend = pytest.importorskip("fastsoftmax._backends.numba")
from fastsoftmax._backends import get_module  # noqa: E402

naive = get_module("naive")
RTOL = {np.float32: 2e-5, np.float64: 1e-11}

# (n, d, C): 0 and 1 rows, a block of 1-3 rows, several blocks; d off, at and above
# multiples of 16 and 32 (the float32 vector and the 2-vector tile); C = 1..17.
SHAPES = [
    (0, 5, 3), (1, 1, 1), (1, 17, 10), (2, 15, 2), (3, 16, 4), (5, 31, 5), (6, 33, 6),
    (9, 50, 9), (41, 7, 10), (45, 64, 11), (50, 20, 15), (7, 48, 16), (83, 40, 17),
]  # fmt: skip


def _problem(n, d, C, dtype, x_dtype=None, seed=0):
    rng = np.random.default_rng(seed)
    if x_dtype == np.uint8:
        X = rng.integers(0, 256, (n, d)).astype(np.uint8)
        W = (0.003 * rng.standard_normal((C, d))).astype(dtype)
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
        W = (0.3 * rng.standard_normal((C, d))).astype(dtype)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = rng.uniform(0, 2, n).astype(dtype)
    return X, W, b, y, sw


def _sums(module, X, W, b, y, sw):
    gW, gb = np.full_like(W, np.nan), np.full_like(b, np.nan)
    loss, total = module.softmax_ce_sums(X, W, b, y, sw, gW, gb)
    return loss, total, gW, gb


def _assert_sums_close(got, want, dtype, scale):
    rtol = RTOL[dtype]
    for a, e in zip(got, want):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,d,C", SHAPES)
def test_softmax_sums_match_the_oracle_on_odd_sizes(n, d, C, dtype):
    X, W, b, y, sw = _problem(n, d, C, dtype)
    for weights in (None, sw):
        want = _sums(naive, X, W, b, y, weights)
        got = _sums(numba_backend, X, W, b, y, weights)
        assert got[2].dtype == dtype and got[3].dtype == dtype
        _assert_sums_close(got, want, dtype, max(1.0, n) * max(1.0, d))


@pytest.mark.parametrize("n,d,C", [(1, 17, 10), (6, 33, 6), (45, 64, 11), (83, 40, 17)])
def test_uint8_rows_are_converted_per_block(n, d, C):
    X, W, b, y, sw = _problem(n, d, C, np.float32, np.uint8)
    want = _sums(naive, X, W, b, y, sw)
    got = _sums(numba_backend, X, W, b, y, sw)
    _assert_sums_close(got, want, np.float32, max(1.0, n) * 255 * d)


def test_linear_matches_the_oracle_on_odd_sizes():
    for n, d, C in SHAPES:
        for dtype in (np.float32, np.float64):
            X, W, b, _, _ = _problem(n, d, C, dtype)
            want = naive.linear(X, W, b, np.empty((n, C), dtype))
            got = numba_backend.linear(X, W, b, np.full((n, C), np.nan, dtype))
            np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * d)


def test_tiny_probabilities_are_flushed_to_zero_and_nan_goes_through():
    # Logits hundreds apart (uint8 pixels): the probabilities below the normal
    # range are flushed to zero (as the cython kernels flush denormals); the
    # sums stay those of the oracle.  A NaN in a row reaches the loss.
    n, d, C = 20, 40, 10
    X, W, b, y, _ = _problem(n, d, C, np.float32, np.uint8)
    W *= 30
    want = _sums(naive, X, W, b, y, None)
    got = _sums(numba_backend, X, W, b, y, None)
    _assert_sums_close(got, want, np.float32, n * 255 * d)
    Xf = X.astype(np.float32)
    Xf[3, 5] = np.nan
    loss, _, gW, gb = _sums(numba_backend, Xf, W, b, y, None)
    assert np.isnan(loss) and np.isnan(gW).any() and np.isnan(gb).any()


def test_epoch_matches_the_oracle_on_odd_sizes():
    # minibatches of 7 rows (a padded group of 4), shuffled, over two blocks per batch
    rng = np.random.default_rng(1)
    for x_dtype in (np.float32, np.uint8):
        X, W0, b0, y, _ = _problem(37, 50, 11, np.float32, x_dtype, seed=2)
        order = rng.permutation(37)
        got_W, got_b = np.ascontiguousarray(W0.T), b0.copy()
        numba_backend.train_epoch(X, y, None, got_W, got_b, order, 7, 0.0, True, "sgd", {}, 0.01,
                                  0, {})  # fmt: skip
        want_W, want_b = W0.copy(), b0.copy()  # the same steps from the oracle's sums
        for lo in range(0, 37, 7):
            rows = order[lo : lo + 7]
            _, total, gW, gb = _sums(naive, X[rows], want_W, want_b, y[rows], None)
            want_W -= np.float32(0.01) * (gW / np.float32(total))
            want_b -= np.float32(0.01) * (gb / np.float32(total))
        np.testing.assert_allclose(got_W.T, want_W, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got_b, want_b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not os.environ.get("FASTSOFTMAX_LONG_TESTS"), reason="FASTSOFTMAX_LONG_TESTS=1")
@pytest.mark.parametrize("vector_bytes", ["16", "32"])
def test_narrower_vectors_give_the_same_sums(vector_bytes, tmp_path):
    # hosts without AVX-512: the same tiles on 16- or 32-byte vectors (a fresh
    # process: the width is fixed at import; its own numba cache: another target)
    code = (
        "import numpy as np; from fastsoftmax._backends import numba as nb, naive;"
        "rng = np.random.default_rng(0); X = rng.standard_normal((45, 50)).astype(np.float32);"
        "W = rng.standard_normal((11, 50)).astype(np.float32); b = np.zeros(11, np.float32);"
        "y = rng.integers(0, 11, 45).astype(np.intp);"
        "g = [np.empty_like(W), np.empty_like(b)]; h = [np.empty_like(W), np.empty_like(b)];"
        "l = nb.softmax_ce_sums(X, W, b, y, None, *g);"
        "m = naive.softmax_ce_sums(X, W, b, y, None, *h);"
        "assert nb._VECTOR_BYTES == int(%r);"
        "np.testing.assert_allclose(g[0], h[0], rtol=1e-4, atol=1e-3); print('ok', l, m)"
    ) % vector_bytes
    env = dict(os.environ, FASTSOFTMAX_NUMBA_VECTOR_BYTES=vector_bytes,
               NUMBA_CACHE_DIR=str(tmp_path))  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_read_only_rows_are_read_in_place_or_converted():
    # X read in place must not need to be writable (the conversion is compiled out)
    for x_dtype in (np.float32, np.uint8):
        X, W, b, y, sw = _problem(9, 50, 9, np.float32, x_dtype)
        want = _sums(naive, X, W, b, y, sw)
        X.flags.writeable = False
        _assert_sums_close(_sums(numba_backend, X, W, b, y, sw), want, np.float32, 9 * 255 * 50)
        got = numba_backend.linear(X, W, b, np.empty((9, 9), np.float32))
        np.testing.assert_allclose(got, naive.linear(X, W, b, np.empty((9, 9), np.float32)),
                                   rtol=2e-5, atol=2e-5 * 255 * 50)  # fmt: skip
