"""Long float32 rows keep float32 accuracy (issue 16, item 4).

Summing the exponentials of a row in plain float32 lanes loses accuracy with
the row length (off by 1e-4 at 10^8 entries) and saturates once a lane
reaches 2^24 (at 2^29 entries on AVX-512).  The row kernels sum blocks in
float32 and the block sums in float64; these tests check softmax,
log_softmax, logsumexp and cross_entropy on rows of 2^25 entries on every
backend whose sums run in float32, at every SIMD level of the Cython backend.
The naive backend is left out: it sums Python floats (float64) and would take
minutes.  The issue's exact reproduction (805306368 zeros, 3.2 GB) runs with
FASTSOFTMAX_LONG_TESTS=1 (cython and numba only).
"""

import os

import numpy as np
import pytest

import fastsoftmax as fs
from conftest import require_backend

LEVELS = ("baseline", "avx2", "avx512")
ULP_OF_ONE = np.spacing(np.float32(1))
PATTERN_LENGTH = 1 << 12
ROW_LENGTH = 1 << 25  # 128 MiB of float32; the old lane sums were off by 10^3 - 10^4 ulps


def _levels():
    try:
        import fastsoftmax._cython_kernels as kernels
    except ImportError:
        return []
    best = kernels.set_simd_level(None)
    return LEVELS[: LEVELS.index(best) + 1]


# (backend, SIMD level or None)
CASES = [("numpy", None), ("numba", None)] + [("cython", level) for level in _levels()]


@pytest.fixture(params=CASES, ids=[f"{b}-{lv}" if lv else b for b, lv in CASES])
def long_backend(request):
    """A backend name, with the Cython SIMD level set (restored afterwards)."""
    name, level = request.param
    require_backend(name)
    if level is None:
        yield name
        return
    import fastsoftmax._cython_kernels as kernels

    assert kernels.set_simd_level(level) == level
    yield name
    kernels.set_simd_level(None)


@pytest.fixture(scope="module")
def long_row():
    """A (1, 2^25) float32 row, a tiled pattern, and its float64 logsumexp (exact by tiling)."""
    pattern = (np.random.default_rng(16).standard_normal(PATTERN_LENGTH) * 3).astype(np.float32)
    row = np.tile(pattern, ROW_LENGTH // PATTERN_LENGTH)[None, :]
    p64 = pattern.astype(np.float64)
    lse = np.log(ROW_LENGTH // PATTERN_LENGTH) + np.log(np.sum(np.exp(p64 - p64.max()))) + p64.max()
    row.setflags(write=False)
    return row, lse


def _ulps(got, want):
    return abs(float(got) - float(want)) / float(np.spacing(np.float32(want)))


def test_softmax_of_a_long_row_sums_to_one(long_backend, long_row):
    row, _ = long_row
    p = fs.softmax(row, axis=1, backend=long_backend)
    assert p.dtype == np.float32
    assert abs(p.sum(dtype=np.float64) - 1) <= 3 * ULP_OF_ONE


def test_log_softmax_of_a_long_row(long_backend, long_row):
    row, lse = long_row
    got = fs.log_softmax(row, axis=1, backend=long_backend)
    assert got.dtype == np.float32
    # log_softmax = x - lse: its error is that of the normaliser, checked at one entry
    assert _ulps(float(row[0, 0]) - float(got[0, 0]), lse) <= 3


def test_logsumexp_of_a_long_row(long_backend, long_row):
    row, lse = long_row
    got = fs.logsumexp(row, axis=1, backend=long_backend)
    assert got.dtype == np.float32
    assert _ulps(got[0], lse) <= 3


def test_cross_entropy_of_a_long_row(long_backend, long_row):
    row, lse = long_row
    label = 7
    got = fs.cross_entropy(row, [label], reduction="none", backend=long_backend)
    assert got.dtype == np.float32
    assert _ulps(got[0], lse - float(row[0, label])) <= 3


@pytest.mark.skipif(
    os.environ.get("FASTSOFTMAX_LONG_TESTS") != "1",
    reason="3.2 GB and several seconds: set FASTSOFTMAX_LONG_TESTS=1",
)
def test_logsumexp_does_not_saturate_past_2_to_the_29(long_backend):
    if long_backend == "numpy":
        pytest.skip("numpy's temporaries would need 10 GB; it sums pairwise anyway")
    n = 805306368  # 1.5 * 2^29: the reproduction
    zeros = np.zeros((1, n), np.float32)
    want = np.log(n)
    assert _ulps(fs.logsumexp(zeros, axis=1, backend=long_backend)[0], want) <= 3
    assert _ulps(fs.cross_entropy(zeros, [0], reduction="none", backend=long_backend)[0], want) <= 3
