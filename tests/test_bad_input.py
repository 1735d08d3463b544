"""Every documented bad input raises the documented error, naming the argument."""

import numpy as np
import pytest

import fastsoftmax as fs

rng = np.random.default_rng(0)
X = rng.normal(size=(5, 4))
W = rng.normal(size=(4, 3))
B = np.zeros(3)
Y = np.array([0, 1, 2, 1, 0])
Z = X @ W
w = W[:, 0].copy()
Y01 = Y % 2


# One valid call per public function, to check that each rejects an unknown backend.
VALID_CALLS = {
    "softmax": lambda **kw: fs.softmax(Z, axis=1, **kw),
    "log_softmax": lambda **kw: fs.log_softmax(Z, **kw),
    "logsumexp": lambda **kw: fs.logsumexp(Z, axis=1, **kw),
    "linear": lambda **kw: fs.linear(X, W, B, **kw),
    "cross_entropy": lambda **kw: fs.cross_entropy(Z, Y, **kw),
    "softmax_cross_entropy_grad": lambda **kw: fs.softmax_cross_entropy_grad(X, W, B, Y, **kw),
    "sigmoid": lambda **kw: fs.sigmoid(Z, **kw),
    "binary_cross_entropy": lambda **kw: fs.binary_cross_entropy(Z[:, 0], Y01, **kw),
    "logistic_loss_grad": lambda **kw: fs.logistic_loss_grad(X, w, 0.0, Y01, **kw),
    "classification_error": lambda **kw: fs.classification_error(Z, Y, **kw),
}


@pytest.mark.parametrize("name", sorted(VALID_CALLS))
def test_unknown_backend(name):
    VALID_CALLS[name]()  # the call itself is fine
    with pytest.raises(ValueError, match=r"unknown backend 'fast'; expected one of"):
        VALID_CALLS[name](backend="fast")


# (callable, exception, message regex)
CASES = {
    # shapes
    "X/W features": (
        lambda: fs.linear(np.zeros((2, 784)), np.zeros((785, 10))),
        ValueError,
        r"X has 784 features but W has 785 rows",
    ),
    "X 1-D": (
        lambda: fs.linear(np.zeros(4), W),
        ValueError,
        r"X must be a 2-D array of shape \(n_samples, n_features\), got shape \(4,\)",
    ),
    "W 1-D": (
        lambda: fs.linear(X, w),
        ValueError,
        r"W must be a 2-D array of shape \(n_features, n_classes\), got shape \(4,\)",
    ),
    "b shape": (
        lambda: fs.linear(X, W, np.zeros(4)),
        ValueError,
        r"b must have shape \(3,\) because W has 3 columns, got shape \(4,\)",
    ),
    "grad b shape": (
        lambda: fs.softmax_cross_entropy_grad(X, W, np.zeros((1, 3)), Y),
        ValueError,
        r"b must have shape \(3,\)",
    ),
    "grad X/W": (
        lambda: fs.softmax_cross_entropy_grad(X[:, :3], W, B, Y),
        ValueError,
        r"X has 3 features but W has 4 rows",
    ),
    "logistic X/w": (
        lambda: fs.logistic_loss_grad(X, np.zeros(3), 0.0, Y01),
        ValueError,
        r"X has 4 features but w has 3 entries",
    ),
    "logistic w 2-D": (
        lambda: fs.logistic_loss_grad(X, W, 0.0, Y01),
        ValueError,
        r"w must be a 1-D array",
    ),
    "logistic b array": (
        lambda: fs.logistic_loss_grad(X, w, np.zeros(2), Y01),
        ValueError,
        r"b must be a real scalar",
    ),
    "logistic b string": (
        lambda: fs.logistic_loss_grad(X, w, "1", Y01),
        TypeError,
        r"b must be a real scalar \(the intercept\), got str",
    ),
    "logistic b complex": (
        lambda: fs.logistic_loss_grad(X, w, 1 + 2j, Y01),
        TypeError,
        r"b must be a real scalar \(the intercept\), got complex",
    ),
    "logistic b complex 0-d array": (
        lambda: fs.logistic_loss_grad(X, w, np.array(1j), Y01),
        TypeError,
        r"b must be a real scalar \(the intercept\), got an array of dtype complex128",
    ),
    "logistic C too small": (
        lambda: fs.LogisticRegression(C=1e-320).fit(X, Y01),
        ValueError,
        r"C=1e-320 is too small: the penalty strength 1 / \(C \* sum of sample weights\)",
    ),
    "logistic C too small for float32": (
        lambda: fs.LogisticRegression(C=1e-40).fit(X.astype(np.float32), Y01),
        ValueError,
        r"C=1e-40 is too small: .* overflows float32",
    ),
    "logistic b nan": (
        lambda: fs.logistic_loss_grad(X, w, np.nan, Y01),
        ValueError,
        r"b must be finite, got nan",
    ),
    "logits 1-D": (
        lambda: fs.cross_entropy(np.zeros(3), [0]),
        ValueError,
        r"logits must be a 2-D array of shape \(n_samples, n_classes\)",
    ),
    "error logits 1-D": (
        lambda: fs.classification_error(np.zeros(3), [0]),
        ValueError,
        r"logits must be a 2-D array",
    ),
    "bce logits 2-D": (
        lambda: fs.binary_cross_entropy(Z, Y01),
        ValueError,
        r"logits must be a 1-D array of shape \(n_samples,\)",
    ),
    "target 3-D": (
        lambda: fs.cross_entropy(Z, np.zeros((5, 3, 1))),
        ValueError,
        r"target must be class labels of shape \(n_samples,\) or probabilities",
    ),
    "prob target shape": (
        lambda: fs.cross_entropy(Z, np.zeros((5, 4))),
        ValueError,
        r"target has shape \(5, 4\) but logits has shape \(5, 3\)",
    ),
    "label count": (
        lambda: fs.cross_entropy(Z, Y[:4]),
        ValueError,
        r"target has 4 labels but there are 5 samples",
    ),
    "y count": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, Y[:3]),
        ValueError,
        r"y has 3 labels but there are 5 samples",
    ),
    "binary y count": (
        lambda: fs.binary_cross_entropy(Z[:, 0], Y01[:2]),
        ValueError,
        r"y has 2 targets but there are 5 samples",
    ),
    "labels 2-D": (
        lambda: fs.classification_error(Z, Y[:, None]),
        ValueError,
        r"y must be a 1-D array of class labels, got shape \(5, 1\)",
    ),
    # labels
    "negative label": (
        lambda: fs.cross_entropy(Z, [0, 1, -1, 1, 0]),
        ValueError,
        r"target must hold labels in \[0, 3\), found negative label -1",
    ),
    "label too big": (
        lambda: fs.cross_entropy(Z, [0, 1, 3, 1, 0]),
        ValueError,
        r"target contains label 3 but logits has 3 classes \(expected labels in \[0, 3\)\)",
    ),
    "grad label too big": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, [0, 1, 7, 1, 0]),
        ValueError,
        r"y contains label 7 but W has 3 classes",
    ),
    "error label too big": (
        lambda: fs.classification_error(Z, [0, 1, 3, 1, 0]),
        ValueError,
        r"y contains label 3 but logits has 3 classes",
    ),
    "non-integer label": (
        lambda: fs.cross_entropy(Z, [0, 1, 2.5, 1, 0]),
        ValueError,
        r"target must hold integer class labels, found 2\.5",
    ),
    "nan label": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, [0, 1, np.nan, 1, 0]),
        ValueError,
        r"y must hold integer class labels, found nan",
    ),
    "string labels": (
        lambda: fs.classification_error(Z, list("abcab")),
        TypeError,
        r"y must hold integer class labels, got an array of dtype <U1",
    ),
    "bool labels": (
        lambda: fs.classification_error(Z, Y > 0),
        TypeError,
        r"y must hold integer class labels, got an array of dtype bool",
    ),
    "binary targets 2": (
        lambda: fs.binary_cross_entropy(Z[:, 0], Y),
        ValueError,
        r"y must hold targets in \[0, 1\] \(0/1 labels\), found 2\.0",
    ),
    "binary targets -1": (
        lambda: fs.logistic_loss_grad(X, w, 0.0, -Y01),
        ValueError,
        r"y must hold targets in \[0, 1\]",
    ),
    "negative probabilities": (
        lambda: fs.cross_entropy(Z, -np.ones((5, 3))),
        ValueError,
        r"target probabilities must be finite and non-negative",
    ),
    # non-numeric arrays
    "string X": (
        lambda: fs.linear([["a", "b", "c", "d"]], W),
        TypeError,
        r"X must be a real numeric array \(bool, integer or float\), "
        r"got a non-numeric array of dtype <U1",
    ),
    "object W": (
        lambda: fs.linear(X, np.array([[None] * 3] * 4)),
        TypeError,
        r"W must be a real numeric array .*dtype object",
    ),
    "complex softmax": (
        lambda: fs.softmax(np.array([1 + 1j])),
        TypeError,
        r"x must be a real numeric array .*complex array of dtype complex128",
    ),
    "string logsumexp": (lambda: fs.logsumexp(["x"]), TypeError, r"a must be a real numeric array"),
    "string b": (
        lambda: fs.logsumexp([1.0], b=["x"]),
        TypeError,
        r"b must be a real numeric array",
    ),
    "ragged sigmoid": (
        lambda: fs.sigmoid([[1.0], [1.0, 2.0]]),
        TypeError,
        r"x must be a numeric array; could not convert it",
    ),
    "string logits": (
        lambda: fs.cross_entropy([["a"]], [0]),
        TypeError,
        r"logits must be a real numeric array",
    ),
    # sample weights
    "weight length": (
        lambda: fs.cross_entropy(Z, Y, sample_weight=np.ones(4)),
        ValueError,
        r"sample_weight must have shape \(5,\) \(one weight per sample\), got shape \(4,\)",
    ),
    "weight 2-D": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, Y, sample_weight=np.ones((5, 1))),
        ValueError,
        r"sample_weight must have shape \(5,\)",
    ),
    "negative weight": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, Y, sample_weight=[1, 1, -0.5, 1, 1]),
        ValueError,
        r"sample_weight must be non-negative, found -0\.5",
    ),
    "nan weight": (
        lambda: fs.binary_cross_entropy(Z[:, 0], Y01, sample_weight=[1, np.nan, 1, 1, 1]),
        ValueError,
        r"sample_weight must be finite, found nan",
    ),
    "inf weight": (
        lambda: fs.logistic_loss_grad(X, w, 0.0, Y01, sample_weight=[1, np.inf, 1, 1, 1]),
        ValueError,
        r"sample_weight must be finite, found inf",
    ),
    "string weight": (
        lambda: fs.cross_entropy(Z, Y, sample_weight=list("abcde")),
        TypeError,
        r"sample_weight must be a real numeric array",
    ),
    # reduction and penalty
    "reduction": (
        lambda: fs.cross_entropy(Z, Y, reduction="avg"),
        ValueError,
        r"reduction must be one of 'mean', 'sum', 'none', got 'avg'",
    ),
    "bce reduction": (
        lambda: fs.binary_cross_entropy(Z[:, 0], Y01, reduction=None),
        ValueError,
        r"reduction must be one of .*got None",
    ),
    "negative l2": (
        lambda: fs.softmax_cross_entropy_grad(X, W, B, Y, l2=-1.0),
        ValueError,
        r"l2 must be finite and non-negative, got -1\.0",
    ),
    "nan l2": (
        lambda: fs.logistic_loss_grad(X, w, 0.0, Y01, l2=np.nan),
        ValueError,
        r"l2 must be finite and non-negative, got nan",
    ),
    "string l2": (
        lambda: fs.logistic_loss_grad(X, w, 0.0, Y01, l2="0.1"),
        TypeError,
        r"l2 must be a real number, got str",
    ),
    # logsumexp's b
    "lse b shape": (
        lambda: fs.logsumexp(np.zeros((2, 3)), b=np.ones((3, 2))),
        ValueError,
        r"b must be broadcastable to the shape of a \(2, 3\), got shape \(3, 2\)",
    ),
    # out=
    "out shape": (
        lambda: fs.softmax(Z, out=np.empty((3, 5))),
        ValueError,
        r"out must have shape \(5, 3\), got shape \(3, 5\)",
    ),
    "out dtype": (
        lambda: fs.log_softmax(Z, out=np.empty((5, 3), np.float32)),
        TypeError,
        r"out must have dtype float64, got dtype float32",
    ),
    "out int input": (
        lambda: fs.softmax(Y, out=np.empty(5, np.int64)),
        TypeError,
        r"out must have dtype float64, got dtype int64",
    ),
    "out list": (
        lambda: fs.sigmoid(Z, out=[[0.0] * 3] * 5),
        TypeError,
        r"out must be a numpy.ndarray, got list",
    ),
    "out read-only": (
        lambda: fs.sigmoid(Z, out=np.broadcast_to(0.0, Z.shape)),
        ValueError,
        r"out must be writeable, got a read-only array",
    ),
    "linear out shape": (
        lambda: fs.linear(X, W, out=np.empty((5, 4))),
        ValueError,
        r"out must have shape \(5, 3\), got shape \(5, 4\)",
    ),
    "linear out dtype": (
        lambda: fs.linear(X.astype(np.float32), W.astype(np.float32), out=np.empty((5, 3))),
        TypeError,
        r"out must have dtype float32, got dtype float64",
    ),
    # axis
    "axis float": (
        lambda: fs.softmax(Z, axis=0.5),
        TypeError,
        r"axis must be None, an integer or a tuple of integers, got 0\.5",
    ),
    "axis range": (
        lambda: fs.logsumexp(Z, axis=-3),
        ValueError,
        r"axis -3 is out of bounds for array of dimension 2",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case):
    call, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        call()


def test_errors_leave_inputs_untouched():
    # A failing call (here: a bad label after the logits were validated) writes nothing.
    Zc, Xc, Wc = Z.copy(), X.copy(), W.copy()
    with pytest.raises(ValueError):
        fs.cross_entropy(Z, [0, 1, 9, 1, 0])
    with pytest.raises(ValueError):
        fs.softmax_cross_entropy_grad(X, W, B, Y, sample_weight=[1, 1, -1, 1, 1])
    np.testing.assert_array_equal(Z, Zc)
    np.testing.assert_array_equal(X, Xc)
    np.testing.assert_array_equal(W, Wc)


def test_real_intercepts_still_accepted():
    # the type check of b keeps every real scalar: Python and NumPy numbers, 0-d arrays
    want = fs.logistic_loss_grad(X, w, 2.0, Y01)
    for b in (2, np.float32(2), np.int8(2), np.array(2.0), np.array(2)):
        got = fs.logistic_loss_grad(X, w, b, Y01)
        assert got[0] == want[0]
    fs.LogisticRegression(C=1e-300).fit(X, Y01)  # tiny but representable: fits


def test_integral_float_labels_accepted():
    want = fs.cross_entropy(Z, Y)
    assert fs.cross_entropy(Z, Y.astype(np.float32)) == want
    assert fs.classification_error(Z, Y.astype(float)) == fs.classification_error(Z, Y)
