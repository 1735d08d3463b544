"""sparsify() / densify(): scikit-learn's SparseCoefMixin on LogisticRegression.

LogisticRegressionCV has neither: with them, scikit-learn's estimator checks
run check_sparsify_coefficients, whose 3 samples per class the default 5 folds
cannot split (scikit-learn's own LogisticRegressionCV() fails it), and the
default-constructed estimator must pass every check.
"""

import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import fastsoftmax
from fastsoftmax import LogisticRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.preprocessing import scale  # noqa: E402


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return scale(X), y


def _predictions(clf, X):
    return clf.decision_function(X), clf.predict_proba(X), clf.predict(X)


def _assert_same_predictions(a, b, rtol=1e-12):
    # the same sums in another order for sparse X: float32 rounding
    for first, second in zip(a, b):
        np.testing.assert_allclose(first, second, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sparsified_model_predicts_as_the_dense_one(iris, binary, dtype):
    X, y = iris
    X = X.astype(dtype)
    if binary:
        y = y == 2
    clf = LogisticRegression(C=0.5, solver="saga", l1_ratio=1.0).fit(X, y)
    dense_coef = clf.coef_.copy()
    expected = _predictions(clf, X)
    assert clf.sparsify() is clf
    assert sp.issparse(clf.coef_) and clf.coef_.format == "csr"
    assert clf.coef_.dtype == dtype
    assert clf.coef_.nnz == np.count_nonzero(dense_coef) < dense_coef.size  # L1 zeros dropped
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    _assert_same_predictions(_predictions(clf, X), expected, rtol=0)
    for data in (sp.csr_matrix(X), sp.coo_matrix(X)):
        _assert_same_predictions(_predictions(clf, data), expected, rtol)
    assert clf.score(X, y) == pytest.approx(np.mean(expected[2] == y))
    assert clf.densify() is clf
    assert type(clf.coef_) is np.ndarray and clf.coef_.flags.c_contiguous
    np.testing.assert_array_equal(clf.coef_, dense_coef)
    _assert_same_predictions(_predictions(clf, sp.coo_matrix(X)), expected, rtol)
    clf.densify()  # a dense coef_ stays as it is
    np.testing.assert_array_equal(clf.coef_, dense_coef)


def test_same_type_as_sklearn(iris):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    X, y = iris
    theirs = SkLogisticRegression().fit(X, y).sparsify()
    ours = LogisticRegression().fit(X, y).sparsify()
    assert type(ours.coef_) is type(theirs.coef_)
    if "sparse_interface" in sklearn.get_config():  # scikit-learn >= 1.9
        with sklearn.config_context(sparse_interface="sparray"):
            theirs.densify().sparsify()
            ours.densify().sparsify()
        assert type(ours.coef_) is type(theirs.coef_) is sp.csr_array


@pytest.mark.parametrize("method, doing", [("sparsify", "sparsifying"), ("densify", "densifying")])
def test_unfitted_raises_sklearns_error(method, doing):
    with pytest.raises(NotFittedError, match=f"Estimator, LogisticRegression, must be fitted "
                       f"before {doing}."):  # fmt: skip
        getattr(LogisticRegression(), method)()


@pytest.mark.parametrize("sparray", [False, True])
def test_save_and_load_keep_the_sparse_coef(iris, tmp_path, sparray):
    X, y = iris
    clf = LogisticRegression(C=0.5, solver="saga", l1_ratio=1.0).fit(X, y).sparsify()
    if sparray:
        clf.coef_ = sp.csr_array(clf.coef_)
    loaded = fastsoftmax.load(clf.save(os.path.join(tmp_path, "model")))
    assert type(loaded.coef_) is type(clf.coef_)
    np.testing.assert_array_equal(loaded.coef_.toarray(), clf.coef_.toarray())
    _assert_same_predictions(_predictions(loaded, X), _predictions(clf, X))
    clf.coef_ = clf.coef_.tocoo()  # only sparsify's CSR form is saved
    with pytest.raises(TypeError, match="coef_: a sparse coo matrix"):
        clf.save(os.path.join(tmp_path, "other"))


def test_warm_start_from_a_sparsified_model(iris):
    X, y = iris
    params = dict(warm_start=True, max_iter=3, solver="newton-cholesky")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: 3 iterations
        dense = LogisticRegression(**params).fit(X, y)
        sparse = LogisticRegression(**params).fit(X, y).sparsify()
        dense.fit(X, y)
        sparse.fit(X, y)
    assert type(sparse.coef_) is np.ndarray  # a refit leaves a dense coef_
    np.testing.assert_array_equal(sparse.coef_, dense.coef_)
