"""LogisticRegressionCV: scikit-learn 1.9's signature, warnings, attributes and choices."""

import inspect
import warnings

import numpy as np
import pytest

from fastsoftmax import LogisticRegression, LogisticRegressionCV

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegressionCV as SkLogisticRegressionCV  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

ATTRIBUTES = ["Cs_", "l1_ratios_", "scores_", "coefs_paths_", "C_", "l1_ratio_", "n_iter_",
              "coef_", "intercept_", "classes_", "n_features_in_"]  # fmt: skip


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:, :8], y


def _fit_quietly(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kwargs)


def _layout(value):
    """Type, keys, shapes and dtype kinds of an attribute, for comparing layouts."""
    if isinstance(value, dict):
        return ("dict", [type(k).__name__ for k in value] and sorted(map(int, value)),
                [_layout(v) for v in value.values()])  # fmt: skip
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype.kind if value.dtype.kind != "i" else "int")
    return (type(value).__name__,)


def test_signature_is_sklearns():
    def parameters(cls):
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(cls.__init__).parameters.values()
            if p.name != "self"
        ]

    assert parameters(LogisticRegressionCV) == parameters(SkLogisticRegressionCV)


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize(
    "grid",
    [
        {},
        {"l1_ratios": None},
        {"l1_ratios": (0.0,)},
        {"l1_ratios": (0.0, 0.5, 1.0), "solver": "saga"},
        {"l1_ratios": (1.0,), "solver": "saga", "refit": False},
        # an array: scikit-learn 1.9 fails on a tuple here (it indexes it with an array)
        {"l1_ratios": np.array([0.2, 0.8]), "solver": "saga", "refit": False},
    ],
)
def test_attributes_have_sklearns_layout(iris, binary, legacy, grid):
    X, y = iris
    if binary:
        X, y = X[y < 2], y[y < 2]
    params = dict(grid, Cs=3, cv=3, max_iter=50, use_legacy_attributes=legacy, scoring=None)
    ours = _fit_quietly(LogisticRegressionCV(**params), X, y)
    theirs = _fit_quietly(SkLogisticRegressionCV(**params), X, y)
    for name in ATTRIBUTES:
        assert _layout(getattr(ours, name)) == _layout(getattr(theirs, name)), name
    np.testing.assert_array_equal(ours.Cs_, theirs.Cs_)
    np.testing.assert_array_equal(ours.l1_ratios_, theirs.l1_ratios_)


def test_scores_and_choice_match_sklearn(cancer):
    """A well-conditioned problem, tight tolerance: the same path, scores and choice."""
    X, y = cancer
    params = dict(Cs=[0.01, 0.1, 1.0, 10.0], cv=4, l1_ratios=(0.0,), scoring="neg_log_loss",
                  tol=1e-10, max_iter=1000, use_legacy_attributes=False)  # fmt: skip
    ours = LogisticRegressionCV(**params).fit(X, y)
    theirs = SkLogisticRegressionCV(**params).fit(X, y)
    np.testing.assert_allclose(ours.scores_, theirs.scores_, rtol=1e-6)
    np.testing.assert_allclose(ours.coefs_paths_, theirs.coefs_paths_, rtol=1e-4, atol=1e-6)
    assert ours.C_ == theirs.C_
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-4, atol=1e-6)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-6)


def test_elastic_net_grid_matches_sklearn_saga(cancer):
    X, y = cancer
    params = dict(Cs=[0.05, 0.5], cv=3, l1_ratios=(0.5, 1.0), solver="saga",
                  scoring="neg_log_loss", use_legacy_attributes=False)  # fmt: skip
    ours = LogisticRegressionCV(**params, tol=1e-8, max_iter=2000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SkLogisticRegressionCV(**params, tol=1e-8, max_iter=20000).fit(X, y)
    np.testing.assert_allclose(ours.scores_, theirs.scores_, rtol=1e-4)
    assert (ours.C_, ours.l1_ratio_) == (theirs.C_, theirs.l1_ratio_)
    np.testing.assert_array_equal(ours.coef_ == 0, theirs.coef_ == 0)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"l1_ratios": None},
        {"l1_ratios": (0,), "scoring": "accuracy", "use_legacy_attributes": False},
        {"penalty": "l2", "l1_ratios": (0,)},
        {"penalty": "l1", "solver": "saga"},
        {"l1_ratios": (1,)},
        {"l1_ratios": [0.5, 2.0], "solver": "saga"},  # a tuple breaks sklearn's own message
        {"dual": True, "l1_ratios": (0,)},
    ],
)
def test_warnings_and_errors_are_sklearns(iris, params):
    X, y = iris

    def outcome(cls):
        error = None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cls(Cs=2, cv=2, max_iter=20, **params).fit(X, y)
            except ValueError as exc:
                error = str(exc)
        return error, sorted(
            {
                (w.category.__name__, str(w.message))
                for w in caught
                if not issubclass(w.category, sklearn.exceptions.ConvergenceWarning)
            }
        )

    assert outcome(LogisticRegressionCV) == outcome(SkLogisticRegressionCV)


def test_path_is_warm_started(cancer):
    X, y = cancer
    Cs = np.logspace(-2, 3, 20)
    clf = LogisticRegressionCV(Cs=Cs, cv=[(np.arange(400), np.arange(400, 569))],
                               l1_ratios=(0,), scoring=None, use_legacy_attributes=False,
                               tol=1e-8, max_iter=1000).fit(X, y)  # fmt: skip
    cold = [
        LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X[:400], y[:400]).n_iter_[0]
        for C in Cs
    ]
    assert clf.n_iter_.sum() < 0.9 * sum(cold)  # cold, the path would be these same fits
    # and it ends at the same solutions
    for i, C in enumerate(Cs):
        ref = LogisticRegression(C=C, tol=1e-8, max_iter=1000).fit(X[:400], y[:400])
        np.testing.assert_allclose(clf.coefs_paths_[0, 0, i, 0, :-1], ref.coef_[0], rtol=1e-3,
                                   atol=1e-4)  # fmt: skip


def test_refit_false_averages_the_folds_best(iris):
    X, y = iris
    clf = LogisticRegressionCV(Cs=4, cv=3, l1_ratios=(0,), refit=False, scoring=None,
                               use_legacy_attributes=False, max_iter=300).fit(X, y)  # fmt: skip
    best = clf.scores_[:, 0, :].argmax(axis=1)
    expected = np.mean([clf.coefs_paths_[f, 0, best[f]] for f in range(3)], axis=0)
    np.testing.assert_allclose(clf.coef_, expected[:, :-1])
    np.testing.assert_allclose(clf.intercept_, expected[:, -1])
    assert clf.C_ == pytest.approx(np.mean(clf.Cs_[best]))


def test_feature_names_and_float32(iris):
    pd = pytest.importorskip("pandas")
    X, y = iris
    frame = pd.DataFrame(X.astype(np.float32), columns=list("abcd"))
    clf = _fit_quietly(LogisticRegressionCV(Cs=2, cv=2), frame, y)
    np.testing.assert_array_equal(clf.feature_names_in_, list("abcd"))
    assert clf.coef_.dtype == np.float32
    with pytest.raises(ValueError, match="same order"):
        clf.predict(frame[list("dcba")])


def test_folds_missing_classes_use_all_classes(iris):
    from sklearn.model_selection import KFold

    X, y = iris  # sorted by class: 3 unshuffled folds each lack one class in training
    clf = LogisticRegressionCV(cv=KFold(3), Cs=3, l1_ratios=(0,), scoring="neg_brier_score",
                               use_legacy_attributes=False).fit(X, y)  # fmt: skip
    assert clf.coefs_paths_.shape == (3, 1, 3, 3, 5)
    assert np.all(np.isfinite(clf.scores_))
    accuracy = LogisticRegressionCV(cv=KFold(3), Cs=3, l1_ratios=(0,), scoring="accuracy",
                                    use_legacy_attributes=False).fit(X, y)  # fmt: skip
    assert np.all(accuracy.scores_ == 0.0)  # train and test labels never overlap


def test_extra_params_need_metadata_routing(iris):
    X, y = iris
    clf = LogisticRegressionCV(Cs=2, cv=2, l1_ratios=(0,), scoring="accuracy",
                               use_legacy_attributes=False)  # fmt: skip
    with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
        clf.fit(X, y, extra_param=1.0)
    clf.fit(X, y)
    with pytest.raises(ValueError, match="only supported if enable_metadata_routing=True"):
        clf.score(X, y, extra_param=1.0)


# ----------------------------------------------------------------------------- n_jobs


def _fit_cv(X, y, **params):
    params = {"Cs": 4, "cv": 3, "l1_ratios": (0,), "scoring": "neg_log_loss",
              "use_legacy_attributes": False, "max_iter": 300, **params}  # fmt: skip
    return LogisticRegressionCV(**params).fit(X, y)


def _assert_same_fit(a, b):
    for name in ("coef_", "intercept_", "scores_", "coefs_paths_", "n_iter_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.C_ == b.C_


def test_parallel_folds_give_the_serial_result(iris):
    X, y = iris
    serial = _fit_cv(X, y, n_jobs=1)
    for n_jobs in (2, 3, 8):  # every path on one kernel thread in each
        _assert_same_fit(_fit_cv(X, y, n_jobs=n_jobs), serial)


def test_parallel_folds_run_in_threads_sharing_the_cores(iris, monkeypatch):
    import threading

    import fastsoftmax

    seen = []
    original = LogisticRegressionCV._path
    # the two paths of the first fit must meet: on one thread the barrier breaks (a tiny
    # path can otherwise end before the other starts, and the pool reuses its thread)
    together = threading.Barrier(2, timeout=30)

    def recording_path(self, *args):
        seen.append((threading.get_ident(), fastsoftmax.get_num_threads()))
        if together is not None:
            together.wait()
        return original(self, *args)

    monkeypatch.setattr(LogisticRegressionCV, "_path", recording_path)
    X, y = iris
    previous = fastsoftmax.get_num_threads()
    _fit_cv(X, y, n_jobs=4, cv=2)  # 2 paths: 2 threads of 2 kernel threads each
    assert len(seen) == 2
    assert len({ident for ident, _ in seen}) == 2
    assert {threads for _, threads in seen} == {2}
    assert fastsoftmax.get_num_threads() == previous  # restored after fit
    seen.clear()
    together = None
    _fit_cv(X, y, n_jobs=2, cv=3)  # 3 paths, 2 threads of one kernel thread
    assert len(seen) == 3 and {threads for _, threads in seen} == {1}


def test_an_error_in_a_parallel_fold_is_raised(iris, monkeypatch):
    def failing_path(self, *args):
        raise RuntimeError("fold failed")

    monkeypatch.setattr(LogisticRegressionCV, "_path", failing_path)
    X, y = iris
    with pytest.raises(RuntimeError, match="fold failed"):
        _fit_cv(X, y, n_jobs=2)


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize("grid", ["l2", "elasticnet"])
def test_save_and_load_roundtrip(iris, tmp_path, legacy, grid):
    import fastsoftmax

    X, y = iris
    l1_ratios = (0.3, 0.9) if grid == "elasticnet" else "warn"
    solver = "saga" if grid == "elasticnet" else "lbfgs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        clf = LogisticRegressionCV(Cs=3, cv=3, l1_ratios=l1_ratios, solver=solver,
                                   use_legacy_attributes=legacy, max_iter=300).fit(X, y)  # fmt: skip
        loaded = fastsoftmax.load(clf.save(tmp_path / "cv"))
    assert type(loaded) is LogisticRegressionCV
    assert loaded.get_params() == clf.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    for name in ATTRIBUTES:
        want, got = getattr(clf, name), getattr(loaded, name)
        if isinstance(want, dict):
            assert list(got) == list(want)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_load_refuses_a_bad_grid_of_iterations(iris, tmp_path):
    import fastsoftmax
    from fastsoftmax.persistence import ModelFormatError

    X, y = iris
    clf = _fit_cv(X, y)
    clf.n_iter_ = -clf.n_iter_
    path = clf.save(tmp_path / "bad")
    with pytest.raises(ModelFormatError, match="n_iter_"):
        fastsoftmax.load(path)
