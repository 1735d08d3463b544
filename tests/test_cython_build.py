"""The compiled Cython backend: its build, run-time SIMD dispatch and fast paths.

tests/test_backends.py checks every backend's kernels against the references;
this file checks what only the Cython backend has: each instruction-set level
it can dispatch to (baseline SSE2, AVX2, AVX-512, as far as this CPU has
them), its vector exp, the short-row (in registers) and long-row (streamed)
softmax paths, and the blocked fused gradient over sizes that leave SIMD
tails.
"""

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _objective
from fastsoftmax._backends import get_module

kernels = pytest.importorskip("fastsoftmax._cython_kernels", reason="Cython extension not built")

LEVELS = ("baseline", "avx2", "avx512")


def _available_levels():
    best = kernels.set_simd_level(None)
    return LEVELS[: LEVELS.index(best) + 1]


@pytest.fixture(params=_available_levels())
def level(request):
    """Run the test with each instruction set this CPU supports, then restore the best."""
    assert kernels.set_simd_level(request.param) == request.param
    yield request.param
    kernels.set_simd_level(None)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    before = fastsoftmax.get_num_threads()
    fastsoftmax.set_num_threads(request.param)
    yield request.param
    fastsoftmax.set_num_threads(before)


cy = get_module("cython")
ref = get_module("numpy")


def test_simd_level_dispatch():
    best = kernels.set_simd_level(None)
    assert best in LEVELS
    assert kernels.simd_level() == best
    # asking for more than the CPU has gives what it has
    assert kernels.set_simd_level("avx512") == best
    assert kernels.set_simd_level("baseline") == "baseline"
    assert kernels.simd_level() == "baseline"
    kernels.set_simd_level(None)
    with pytest.raises(ValueError):
        kernels.set_simd_level("sse9")


def test_backend_is_available_and_default():
    assert "cython" in fastsoftmax.backends()
    assert fastsoftmax.backends()[0] == "cython"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vector_exp_against_float64(level, dtype):
    # Exact reference: exp in float64 (float32 case) or long double (float64 case).
    finfo = np.finfo(dtype)
    lo, hi = (-110.0, 95.0) if dtype == np.float32 else (-760.0, 720.0)
    x = np.concatenate(
        [
            np.linspace(lo, hi, 20001),
            np.random.default_rng(0).uniform(-3, 3, 5001),
            [np.inf, -np.inf, np.nan, 0.0, -0.0, np.log(finfo.max), np.log(finfo.tiny)],
        ]
    ).astype(dtype)
    out = np.empty_like(x)
    kernels.exp_array(x, out)
    exact = np.exp(x.astype(np.longdouble))
    with np.errstate(over="ignore", under="ignore"):
        expected = exact.astype(dtype)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(x))
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
    np.testing.assert_array_equal(out[x == -np.inf], 0)
    normal = np.isfinite(expected) & (expected >= finfo.tiny)
    ulps = np.abs(out[normal] - exact[normal]) / np.spacing(expected[normal]).astype(np.longdouble)
    assert float(ulps.max()) <= 2.0
    # subnormal results: within a few units of the smallest subnormal
    sub = np.isfinite(expected) & (expected < finfo.tiny)
    smallest = np.finfo(dtype).smallest_subnormal
    assert float(np.max(np.abs(out[sub] - exact[sub]), initial=0)) <= 2 * smallest


# Row lengths around the SIMD widths (4, 8, 16 lanes; short rows up to 2 registers) and long rows.
ROW_LENGTHS = [1, 3, 7, 8, 9, 10, 16, 17, 31, 32, 33, 40, 100, 1500]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", ROW_LENGTHS)
def test_row_kernels_every_level(level, threads, dtype, k, rng):
    x = (rng.standard_normal((37, k)) * 20).astype(dtype)
    x[1] = -np.inf
    x[2, 0] = np.nan
    x[3, -1] = np.inf
    x[4, 0] = 3e38 if dtype == np.float32 else 1e308
    x.setflags(write=False)  # const memoryviews: read-only input works
    atol = 1e-5 if dtype == np.float32 else 1e-12
    for name in ("softmax", "log_softmax"):
        got = getattr(cy, name)(x, np.empty_like(x))
        want = getattr(ref, name)(x, np.empty_like(x))
        np.testing.assert_allclose(got, want, rtol=atol, atol=atol, equal_nan=True, err_msg=name)
        inplace = x.copy()
        getattr(cy, name)(inplace, inplace)
        np.testing.assert_array_equal(inplace, got, err_msg=f"{name} in place")
    lse = cy.logsumexp(x, np.empty(37, dtype))
    np.testing.assert_allclose(
        lse, ref.logsumexp(x, np.empty(37, dtype)), rtol=atol, atol=atol, equal_nan=True
    )
    y = rng.integers(0, k, 37).astype(np.intp)
    finite = np.isfinite(x).all(axis=1)
    ce = cy.cross_entropy(x, y, np.empty(37, dtype))
    np.testing.assert_allclose(
        ce[finite], ref.cross_entropy(x, y, np.empty(37, dtype))[finite], rtol=atol, atol=atol
    )


def test_streamed_softmax_unaligned_out(level, restore_num_threads):
    # Over 8 MB with long rows the output is streamed (non-temporal stores,
    # aligned part only); an output misaligned by one element must still be
    # exact.  Each row's max is huge (exp overflows unless it is the shift)
    # and sits anywhere, the scalar head and masked tail included: the next
    # row's max is taken in the loop that streams this row out.
    fastsoftmax.set_num_threads(1)  # one thread gets all 8.4 MB, the streaming size
    rng = np.random.default_rng(1)
    n, k = 2049, 1027
    x = rng.standard_normal((n, k)).astype(np.float32)
    places = np.array([0, 1, 2, 14, 15, 16, 17, k // 2, k - 3, k - 2, k - 1])
    x[np.arange(n), places[np.arange(n) % places.size]] = 1000
    buf = np.empty(n * k + 1, np.float32)
    out = buf[1:].reshape(n, k)
    for name in ("softmax", "log_softmax"):
        got = getattr(cy, name)(x, out)
        want = getattr(ref, name)(x, np.empty_like(x))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


# (n, d, C): odd feature counts leave vector tails; C around the 5-class tiles and 1.
PROBLEMS = [(1, 1, 1), (7, 13, 3), (9, 67, 10), (130, 70, 11), (21, 33, 1), (5, 200, 37)]


@pytest.mark.parametrize("x_kind", ["float32", "float64", "uint8"])
@pytest.mark.parametrize("n,d,C", PROBLEMS)
def test_fused_gradients_every_level(level, threads, n, d, C, x_kind, rng):
    dtype = np.float64 if x_kind == "float64" else np.float32
    if x_kind == "uint8":
        X = rng.integers(0, 256, (n, d), dtype=np.uint8)
        W = (rng.standard_normal((d, C)) / (255 * np.sqrt(d))).astype(dtype)
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
        W = (rng.standard_normal((d, C)) / np.sqrt(d)).astype(dtype)
    X.setflags(write=False)
    b = rng.standard_normal(C).astype(dtype)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = rng.uniform(0, 2, n).astype(dtype)
    rtol = 2e-4 if dtype == np.float32 else 1e-10
    scale = float(np.abs(X).max()) + 1.0

    coef = np.ascontiguousarray(W.T)
    got = cy.linear(X, coef, b, np.empty((n, C), dtype))
    want = ref.linear(X, coef, b, np.empty((n, C), dtype))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale * np.sqrt(d))

    loss, *grads = _objective.softmax_loss_grad(X, coef, b, y, sw, 0.1, backend="cython")
    want_loss, *want_grads = _objective.softmax_loss_grad(X, coef, b, y, sw, 0.1, backend="numpy")
    assert loss == pytest.approx(want_loss, rel=rtol, abs=rtol)
    np.testing.assert_allclose(grads[0], want_grads[0], rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(grads[1], want_grads[1], rtol=rtol, atol=rtol)

    yb = (y % 2).astype(dtype)
    w = W[:, 0].copy()
    got_loss, got_dw, got_db = _objective.logistic_loss_grad(
        X, w, 0.2, yb, sw, 0.1, backend="cython"
    )
    want_loss, want_dw, want_db = _objective.logistic_loss_grad(
        X, w, 0.2, yb, sw, 0.1, backend="numpy"
    )
    assert got_loss == pytest.approx(want_loss, rel=rtol, abs=rtol)
    assert got_db == pytest.approx(want_db, rel=rtol, abs=rtol)
    np.testing.assert_allclose(got_dw, want_dw, rtol=rtol, atol=rtol * scale)


def test_fused_gradient_many_blocks_two_threads(restore_num_threads):
    # Enough rows for several blocks per thread: per-thread accumulators are
    # reduced once, so 1 and 2 threads agree with the reference.
    rng = np.random.default_rng(2)
    n, d, C = 3001, 50, 10
    X = rng.integers(0, 256, (n, d), dtype=np.uint8)
    W = (rng.standard_normal((d, C)) * 1e-3).astype(np.float32)
    b = np.zeros(C, np.float32)
    y = rng.integers(0, C, n).astype(np.intp)
    coef = np.ascontiguousarray(W.T)
    want_loss, *want = _objective.softmax_loss_grad(X, coef, b, y, backend="numpy")
    for t in (1, 2):
        fastsoftmax.set_num_threads(t)
        loss, *got = _objective.softmax_loss_grad(X, coef, b, y, backend="cython")
        assert loss == pytest.approx(want_loss, rel=1e-5)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("x_dtype,w_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_float_types_are_refused(x_dtype, w_dtype):
    # Cython instantiates every (X, weights) type pair; a float/double mix
    # once compiled to a no-op that left out uninitialised.
    n, d, C = 5, 3, 2
    X = np.ones((n, d), x_dtype)
    coef, b = np.ones((C, d), w_dtype), np.zeros(C, w_dtype)
    y, sw = np.zeros(n, np.intp), np.empty(0, w_dtype)
    calls = {
        "linear": lambda: kernels.linear(X, coef, b, np.empty((n, C), w_dtype), 1),
        "softmax_ce_sums": lambda: kernels.softmax_ce_sums(
            X, coef, b, y, sw, np.zeros((1, C, d), w_dtype), np.zeros((1, C)),
            np.empty((1, 8, C), w_dtype), 1,
        ),  # fmt: skip
        "logistic_sums": lambda: kernels.logistic_sums(
            X, coef[0], 0.0, np.zeros(n, w_dtype), sw, np.zeros((1, d), w_dtype),
            np.zeros((1, 1)), np.empty((1, 8), w_dtype), 1,
        ),  # fmt: skip
    }
    for name, call in calls.items():
        with pytest.raises(TypeError, match="must be uint8 or of the weights' dtype"):
            call()


def test_generated_c_names_are_listed_for_grep():
    # fs_simd.h builds its function names by token pasting; the comment next
    # to the FS_OPS X-macro lists every one, and fs_simd.pxd declares the wrappers.
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src_cython"
    if not (src / "fs_simd.h").exists():
        pytest.skip("no source tree")
    header = (src / "fs_simd.h").read_text()
    pxd = (src / "fs_simd.pxd").read_text()
    impl = "".join((src / name).read_text() for name in ("fs_simd_impl.h", "fs_gemm_impl.h", "fs_tiled_impl.h"))
    ops = re.findall(r"X\((\w+), S,", header)
    assert len(ops) >= 10
    for op in ops:
        # FN(name) pastes the type and ISA suffix; GN(fwd) also X's kind: fwd_f, fwd_u8
        gemm = rf"\bGN\({op.rsplit('_', 1)[0]}\)" if op.endswith(("_f", "_u8")) else "$^"
        assert re.search(rf"\bFN\({op}\)|{gemm}", impl), f"no implementation of {op}"
        for suffix in ("f32", "f64"):
            names = [f"fs_{op}_{suffix}", f"fs_ptr_{op}_{suffix}"]
            names += [f"{op}_{suffix}_{isa}" for isa in ("base", "avx2", "avx512")]
            for name in names:
                assert re.search(rf"\b{name}\b", header), f"{name} not listed in fs_simd.h"
            assert re.search(rf"\bfs_{op}_{suffix}\(", pxd), f"fs_{op}_{suffix} not in fs_simd.pxd"


# -- the compiled whole-epoch kernel -------------------------------------------------------

EPOCH_HYPERPARAMETERS = {
    "sgd": ({}, ()),
    "momentum": ({"momentum": 0.9}, ("velocity",)),
    "nesterov": ({"momentum": 0.8}, ("velocity",)),
    "adagrad": ({"eps": 1e-8}, ("sum_sq",)),
    "adadelta": ({"rho": 0.95, "eps": 1e-6}, ("sq_grad_avg", "sq_update_avg")),
    "rmsprop": ({"rho": 0.9, "eps": 1e-8}, ("sq_grad_avg",)),
    "adam": ({"beta1": 0.9, "beta2": 0.999, "eps": 1e-8}, ("m", "v")),
}


def _fresh_state(names, W, b):
    return [{nm: np.zeros_like(W) for nm in names}, {nm: np.zeros_like(b) for nm in names}]


@pytest.mark.parametrize("kind", sorted(EPOCH_HYPERPARAMETERS))
@pytest.mark.parametrize(
    "x_kind,weighted,fit_intercept,size",
    [
        ("float32", False, True, "small"),
        ("uint8", True, True, "small"),
        ("float64", True, False, "small"),
        # minibatches large enough to be split over 2 threads
        ("float32", True, True, "large"),
    ],
)
def test_train_epoch_matches_the_python_loop(
    kind, x_kind, weighted, fit_intercept, size, rng, restore_num_threads
):
    # Reference: the numpy backend's gradient and the learners module, step by
    # step over the same minibatches (what Trainer.train_minibatch does).
    from fastsoftmax.learners import get_learner

    hp, names = EPOCH_HYPERPARAMETERS[kind]
    n, d, C, batch = (45, 19, 4, 8) if size == "small" else (300, 250, 17, 128)
    fastsoftmax.set_num_threads(2)
    dtype = np.float64 if x_kind == "float64" else np.float32
    if x_kind == "uint8":
        X = rng.integers(0, 256, (n, d), dtype=np.uint8)
    else:
        X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, C, n).astype(np.intp)
    sw = rng.uniform(0.5, 2, n).astype(dtype) if weighted else None
    W0 = (rng.standard_normal((d, C)) * 1e-3).astype(dtype)
    b0 = rng.standard_normal(C).astype(dtype)
    order = rng.permutation(n)
    lr = 1.0 if kind == "adadelta" else 0.01

    W, b = W0.copy(), b0.copy()
    state = _fresh_state(names, W, b)
    loss, t = cy.train_epoch(
        X, y, sw, W, b, order, batch, 0.1, fit_intercept, kind, hp, lr, 0, state
    )

    learner = get_learner(kind, learning_rate=lr, **hp)
    Wr, br = W0.copy(), b0.copy()
    params = [Wr, br] if fit_intercept else [Wr]
    total = 0.0
    for lo in range(0, n, batch):
        idx = order[lo : lo + batch]
        batch_sw = None if sw is None else sw[idx]
        loss_b, dW, db = fastsoftmax.softmax_cross_entropy_grad(
            X[idx], Wr, br, y[idx], l2=0.1, sample_weight=batch_sw, backend="numpy"
        )
        total += len(idx) * loss_b
        learner.step(params, [dW, db] if fit_intercept else [dW])
    tol = {"rtol": 2e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-12}
    assert t == -(-n // batch) == learner.t
    assert loss == pytest.approx(total / n, rel=tol["rtol"])
    np.testing.assert_allclose(W, Wr, **tol)
    np.testing.assert_allclose(b, br if fit_intercept else b0, **tol)
    for nm in names:
        np.testing.assert_allclose(state[0][nm], learner.state[0][nm], **tol)
