"""PyTorch's cross-entropy options without torch: against a NumPy reference written here, and bad input.

The reference follows PyTorch's definitions loop by loop (``nll_loss`` with
class weights and ``ignore_index``, ``label_smoothing`` with weights, the mean
divided by the summed weights of the targets that are not ignored); the code
under test builds them from per-row weights above the kernels instead.
"""

import itertools
import math

import numpy as np
import pytest
import scipy.sparse
import scipy.special

import fastsoftmax as fs

C = 4


def reference_cross_entropy(logits, labels, weight=None, ignore_index=-100, eps=0.0,
                            reduction="mean", sample_weight=None):  # fmt: skip
    """PyTorch's F.cross_entropy for 2-D logits and labels, one row at a time (plus sample_weight)."""
    n, n_classes = logits.shape
    weight = np.ones(n_classes) if weight is None else np.asarray(weight, float)
    sample_weight = np.ones(n) if sample_weight is None else sample_weight
    losses, total_weight = [], 0.0
    for i in range(n):
        if labels[i] == ignore_index:
            losses.append(0.0)
            continue
        row = [float(v) for v in logits[i]]
        top = max(row)
        lse = top + math.log(sum(math.exp(v - top) for v in row))
        log_p = [v - lse for v in row]
        nll = -weight[labels[i]] * log_p[labels[i]]
        smooth = -sum(weight[c] * log_p[c] for c in range(n_classes))
        losses.append(sample_weight[i] * ((1 - eps) * nll + eps / n_classes * smooth))
        total_weight += sample_weight[i] * weight[labels[i]]
    if reduction == "none":
        return np.array(losses)
    if reduction == "sum":
        return sum(losses)
    return sum(losses) / total_weight if total_weight else 0.0


def _data(n=9, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, C)) * 2
    labels = rng.integers(0, C, size=n)
    labels[1::4] = -100
    return logits, labels


@pytest.mark.parametrize(
    "weighted, eps, reduction, sample_weighted",
    list(itertools.product([False, True], [0.0, 0.3, 1.0], ["mean", "sum", "none"], [False, True])),
)
def test_cross_entropy_equals_the_numpy_reference(weighted, eps, reduction, sample_weighted):
    logits, labels = _data()
    weight = np.array([0.5, 2.0, 0.0, 1.5]) if weighted else None
    sw = np.linspace(0.0, 2.0, len(labels)) if sample_weighted else None
    kwargs = dict(weight=weight, label_smoothing=eps, reduction=reduction, sample_weight=sw)
    got = fs.cross_entropy(logits, labels, **kwargs)
    expected = reference_cross_entropy(logits, labels, weight, -100, eps, reduction, sw)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("backend", fs.backends())
@pytest.mark.parametrize("eps", [0.0, 0.4])
@pytest.mark.parametrize("sparse", [False, True])
def test_fused_gradient_equals_finite_differences_of_the_reference(backend, eps, sparse):
    rng = np.random.default_rng(1)
    n, d = 12, 3
    X = rng.normal(size=(n, d))
    X[X < -0.5] = 0
    W = rng.normal(size=(d, C))
    b = rng.normal(size=C)
    _, labels = _data(n, seed=2)
    weight = np.array([1.0, 0.25, 3.0, 0.5])
    data = scipy.sparse.csr_matrix(X) if sparse else X
    loss, dW, db = fs.softmax_cross_entropy_grad(data, W, b, labels, weight=weight,
                                                 label_smoothing=eps, backend=backend)  # fmt: skip

    def objective(W, b):
        return reference_cross_entropy(X @ W + b, labels, weight, -100, eps)

    assert loss == pytest.approx(objective(W, b), rel=1e-13)
    step = 1e-6
    for j, c in itertools.product(range(d), range(C)):
        Wp, Wm = W.copy(), W.copy()
        Wp[j, c] += step
        Wm[j, c] -= step
        assert dW[j, c] == pytest.approx((objective(Wp, b) - objective(Wm, b)) / (2 * step),
                                         rel=1e-6, abs=1e-8)  # fmt: skip
    for c in range(C):
        bp, bm = b.copy(), b.copy()
        bp[c] += step
        bm[c] -= step
        assert db[c] == pytest.approx((objective(W, bp) - objective(W, bm)) / (2 * step),
                                      rel=1e-6, abs=1e-8)  # fmt: skip


def test_smoothing_correction_tiles_over_classes(monkeypatch):
    # the class tiles of the smoothing correction give the result of one tile
    from fastsoftmax import _objective

    rng = np.random.default_rng(3)
    X, W = rng.normal(size=(30, 5)), rng.normal(size=(5, 11))
    y = rng.integers(0, 11, size=30)
    whole = fs.softmax_cross_entropy_grad(X, W, None, y, label_smoothing=0.3)
    monkeypatch.setattr(_objective, "_SMOOTHING_TILE_ENTRIES", 5 * 3)  # 3 classes per tile
    tiled = fs.softmax_cross_entropy_grad(X, W, None, y, label_smoothing=0.3)
    assert tiled[0] == pytest.approx(whole[0], rel=1e-14)
    np.testing.assert_allclose(tiled[1], whole[1], rtol=1e-13, atol=1e-15)


def test_k_dimensional_logits_equal_the_reference_on_moved_axes():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(2, C, 3, 2))
    labels = rng.integers(0, C, size=(2, 3, 2))
    labels[0, 1, 1] = -100
    rows = np.moveaxis(logits, 1, -1).reshape(-1, C)
    for reduction in ("mean", "none"):
        got = fs.cross_entropy(logits, labels, label_smoothing=0.2, reduction=reduction)
        expected = reference_cross_entropy(rows, labels.reshape(-1), eps=0.2, reduction=reduction)
        np.testing.assert_allclose(np.reshape(got, -1), expected, rtol=1e-13)
    # the same losses with the classes last
    got = fs.cross_entropy(np.moveaxis(logits, 1, -1), labels, axis=-1, reduction="none")
    np.testing.assert_allclose(got, fs.cross_entropy(logits, labels, reduction="none"), rtol=1e-15)
    # sample weights of the losses' shape, or one per sample
    per_sample = np.array([1.0, 3.0])
    np.testing.assert_allclose(
        fs.cross_entropy(logits, labels, sample_weight=per_sample, reduction="sum"),
        fs.cross_entropy(logits, labels, sample_weight=np.broadcast_to(per_sample[:, None, None],
                                                                       (2, 3, 2)), reduction="sum"),
    )  # fmt: skip


def test_two_dimensional_default_is_unchanged_and_ignore_index_is_any_label():
    logits, labels = _data()
    labels = np.abs(labels) % C  # nothing ignored
    assert fs.cross_entropy(logits, labels) == pytest.approx(
        np.mean(scipy.special.logsumexp(logits, axis=1) - logits[np.arange(9), labels]), rel=1e-14
    )
    keep = labels != 2
    assert fs.cross_entropy(logits, labels, ignore_index=2) == pytest.approx(
        fs.cross_entropy(logits[keep], labels[keep]), rel=1e-14
    )


def test_probability_targets_with_smoothing_and_weights():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, C))
    proba = rng.dirichlet(np.ones(C), size=6)
    weight = np.array([1.0, 2.0, 0.5, 0.0])
    eps = 0.2
    smoothed = (1 - eps) * proba + eps / C
    log_p = logits - scipy.special.logsumexp(logits, axis=1, keepdims=True)
    expected = -(smoothed * weight * log_p).sum(axis=1)
    got = fs.cross_entropy(logits, proba, weight=weight, label_smoothing=eps, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert fs.cross_entropy(logits, proba, weight=weight, label_smoothing=eps) == pytest.approx(
        expected.mean(), rel=1e-13
    )


def test_linear_cross_entropy_equals_cross_entropy_of_the_logits():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(50, 7)).astype(np.float32)
    weight = rng.normal(size=(C, 7)).astype(np.float32)
    bias = rng.normal(size=C).astype(np.float32)
    y = rng.integers(0, C, size=50)
    y[::5] = -100
    z = X @ weight.T + bias
    for reduction in ("mean", "sum", "none"):
        got = fs.linear_cross_entropy(X, weight, y, bias, reduction=reduction,
                                      label_smoothing=0.1, rows_per_block=7)  # fmt: skip
        expected = fs.cross_entropy(z, y, reduction=reduction, label_smoothing=0.1)
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    loss, grads = fs.linear_cross_entropy(X, weight, y, grad="bias")
    assert list(grads) == ["bias"] and grads["bias"].dtype == np.float32
    _, dW, db = fs.softmax_cross_entropy_grad(X, weight.T, None, y)
    np.testing.assert_allclose(grads["bias"], db, rtol=1e-6)
    assert loss == pytest.approx(fs.cross_entropy(X @ weight.T, y), rel=1e-5)


def test_linear_cross_entropy_sparse_input_gradient():
    rng = np.random.default_rng(7)
    X = scipy.sparse.random(20, 6, density=0.3, random_state=0, format="csr")
    weight = rng.normal(size=(C, 6))
    y = rng.integers(0, C, size=20)
    loss, grads = fs.linear_cross_entropy(X, weight, y, grad=("input", "weight"), label_smoothing=0.5)
    dense_loss, dense_grads = fs.linear_cross_entropy(X.toarray(), weight, y, grad=("input", "weight"),
                                                      label_smoothing=0.5)  # fmt: skip
    assert loss == pytest.approx(dense_loss, rel=1e-13)
    for name in ("input", "weight"):
        np.testing.assert_allclose(grads[name], dense_grads[name], rtol=1e-12, atol=1e-15)


def test_log_expit_equals_scipy():
    x = np.array([-1e4, -750.0, -40.0, -1.0, -1e-12, 0.0, 1e-12, 1.0, 40.0, 750.0, np.inf, -np.inf])
    np.testing.assert_array_equal(fs.log_expit(x), scipy.special.log_expit(x))
    x32 = x.astype(np.float32)
    got = fs.log_expit(x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, scipy.special.log_expit(x32), rtol=1e-6)
    assert fs.log_expit(-1000.0) == -1000.0 and fs.log_expit(40.0) == pytest.approx(-math.exp(-40))
    assert np.isnan(fs.log_expit(np.nan))
    out = np.empty(3)
    assert fs.log_expit([1, 2, 3], out=out) is out
    np.testing.assert_allclose(out, scipy.special.log_expit([1.0, 2.0, 3.0]), rtol=1e-15)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"axis": 1}, {"axis": 0, "keepdims": True}, {"b": "real"}, {"b": "complex", "axis": 1},
     {"return_sign": True, "axis": 1}, {"b": "real", "return_sign": True}],
)  # fmt: skip
@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_logsumexp_equals_scipy(kwargs, dtype):
    rng = np.random.default_rng(8)
    a = (rng.normal(size=(3, 5)) * 4 + 1j * rng.normal(size=(3, 5)) * 7).astype(dtype)
    kwargs = dict(kwargs)
    if kwargs.get("b") == "real":
        kwargs["b"] = rng.normal(size=(3, 5))
    elif kwargs.get("b") == "complex":
        kwargs["b"] = rng.normal(size=5) * (1 + 0.5j)
    got = fs.logsumexp(a, **kwargs)
    expected = scipy.special.logsumexp(a, **kwargs)
    rtol = 1e-13 if dtype == np.complex128 else 1e-5
    pairs = zip(got, expected) if isinstance(got, tuple) else [(got, expected)]
    for g, e in pairs:
        assert np.asarray(g).dtype == np.asarray(e).dtype
        np.testing.assert_allclose(g, e, rtol=rtol, atol=rtol)


def test_complex_logsumexp_edge_values_equal_scipy():
    cases = [np.array([1 + 1j, np.inf + 0j]), np.array([-np.inf + 0j, -np.inf + 0j]),
             np.array([1000 + 3j, 1000 - 3j]), np.array([], complex), np.array(1 + 2j)]  # fmt: skip
    for a in cases:
        with np.errstate(all="ignore"):
            expected = scipy.special.logsumexp(a)
        np.testing.assert_array_equal(fs.logsumexp(a), expected)


# ---------------------------------------------------------------------------
# bad input: the message names the argument

LOGITS, LABELS = _data()
X3, W3 = np.ones((9, 2)), np.zeros((2, C))

BAD = {
    "label out of range with ignore_index": (
        lambda: fs.cross_entropy(LOGITS, np.where(LABELS == -100, -3, LABELS)),
        ValueError, r"target must hold labels in \[0, 4\), found negative label -3",
    ),
    "label too big with an ignored one": (
        lambda: fs.cross_entropy(LOGITS, np.where(LABELS == -100, 4, LABELS), ignore_index=0),
        ValueError, r"target contains label 4 but logits has 4 classes",
    ),
    "grad label out of range": (
        lambda: fs.softmax_cross_entropy_grad(X3, W3, None, np.where(LABELS == -100, -1, LABELS)),
        ValueError, r"y must hold labels in \[0, 4\), found negative label -1",
    ),
    "linear label out of range": (
        lambda: fs.linear_cross_entropy(X3, W3.T, np.full(9, 7)),
        ValueError, r"target contains label 7 but logits has 4 classes",
    ),
    "weight length": (
        lambda: fs.cross_entropy(LOGITS, LABELS, weight=[1.0, 2.0]),
        ValueError, r"weight must have shape \(4,\) \(one weight per class\), got shape \(2,\)",
    ),
    "weight negative": (
        lambda: fs.cross_entropy(LOGITS, LABELS, weight=[1.0, -2.0, 1.0, 1.0]),
        ValueError, r"weight must be non-negative, found -2\.0",
    ),
    "weight nan": (
        lambda: fs.softmax_cross_entropy_grad(X3, W3, None, LABELS, weight=[1.0, np.nan, 1, 1]),
        ValueError, r"weight must be finite, found nan",
    ),
    "class_weight length": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS, class_weight=np.ones(5)),
        ValueError, r"class_weight must have shape \(4,\)",
    ),
    "label_smoothing above 1": (
        lambda: fs.cross_entropy(LOGITS, LABELS, label_smoothing=1.5),
        ValueError, r"label_smoothing must be in \[0, 1\], got 1\.5",
    ),
    "label_smoothing negative": (
        lambda: fs.softmax_cross_entropy_grad(X3, W3, None, LABELS, label_smoothing=-0.1),
        ValueError, r"label_smoothing must be in \[0, 1\], got -0\.1",
    ),
    "label_smoothing nan": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS, label_smoothing=np.nan),
        ValueError, r"label_smoothing must be in \[0, 1\], got nan",
    ),
    "label_smoothing string": (
        lambda: fs.cross_entropy(LOGITS, LABELS, label_smoothing="0.1"),
        TypeError, r"label_smoothing must be a real number",
    ),
    "ignore_index float": (
        lambda: fs.cross_entropy(LOGITS, LABELS, ignore_index=1.5),
        TypeError, r"ignore_index must be an integer, got float 1\.5",
    ),
    "axis out of range": (
        lambda: fs.cross_entropy(LOGITS, LABELS, axis=2),
        ValueError, r"axis 2 is out of bounds for logits of 2 dimensions",
    ),
    "axis tuple": (
        lambda: fs.cross_entropy(LOGITS, LABELS, axis=(0, 1)),
        TypeError, r"axis must be an integer \(the class axis\)",
    ),
    "k-dim target shape": (
        lambda: fs.cross_entropy(np.zeros((2, C, 3)), np.zeros((2, 4), dtype=int)),
        ValueError, r"target has shape \(2, 4\) but the logits without their class axis have shape \(2, 3\)",
    ),
    "k-dim sample_weight shape": (
        lambda: fs.cross_entropy(np.zeros((2, C, 3)), np.zeros((2, 3), dtype=int), sample_weight=np.ones(3)),
        ValueError, r"sample_weight must have the shape of the losses \(2, 3\) or \(2,\)",
    ),
    "grad reduction none": (
        lambda: fs.softmax_cross_entropy_grad(X3, W3, None, LABELS, reduction="none"),
        ValueError, r"reduction must be 'mean' or 'sum' \(a gradient needs a scalar loss\)",
    ),
    "linear grad with none": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS, reduction="none", grad="weight"),
        ValueError, r"reduction='none' gives no scalar loss",
    ),
    "linear grad name": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS, grad=("weight", "W")),
        ValueError, r"grad must name arguments among 'weight', 'bias', 'input', got 'W'",
    ),
    "linear weight layout": (
        lambda: fs.linear_cross_entropy(X3, W3, LABELS),
        ValueError, r"input has 2 features but weight has 4 columns \(weight is \(n_classes, n_features\)",
    ),
    "linear bias shape": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS, np.zeros(3)),
        ValueError, r"bias must have shape \(4,\) because weight has 4 rows",
    ),
    "linear target shape": (
        lambda: fs.linear_cross_entropy(X3, W3.T, LABELS[:5]),
        ValueError, r"target must have shape \(9,\) \(one label per row of input\)",
    ),
    "log_expit complex": (
        lambda: fs.log_expit(np.ones(2, complex)),
        TypeError, r"x must be a real numeric array",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_argument(case):
    call, error, message = BAD[case]
    with pytest.raises(error, match=message):
        call()
