"""Both estimators (sklearn's checks, labels, dtypes, bad input), then SoftmaxRegression alone."""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from fastsoftmax import LogisticRegression, LogisticRegressionCV, SoftmaxRegression
from fastsoftmax.learners import Adam, ExponentialDecay

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

ESTIMATORS = [LogisticRegression, SoftmaxRegression]


def blobs(rng, n=300, d=4, k=3, spread=3.0, dtype=np.float64):
    """Well-separated Gaussian blobs with integer labels 0..k-1."""
    centers = spread * rng.standard_normal((k, d))
    y = rng.integers(0, k, size=n)
    X = centers[y] + rng.standard_normal((n, d))
    return X.astype(dtype), y


# ----------------------------------------------------------------------------- sklearn's checks


#: the defaults, and the short run the suite checked before the defaults converged (issue 11):
#: ten epochs under the former default schedule, halving the rate every epoch
_HALVING = {"kind": "exponential", "gamma": 0.5}


@parametrize_with_checks(
    [
        LogisticRegression(),
        LogisticRegressionCV(),
        SoftmaxRegression(),
        SoftmaxRegression(max_epochs=10, schedule=_HALVING),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_works_without_sklearn():
    """The estimators work (own base class, own warnings) when sklearn is not installed."""
    code = textwrap.dedent(
        """
        import sys, warnings
        sys.modules["sklearn"] = None  # any import of sklearn now fails
        import numpy as np
        from fastsoftmax import LogisticRegression, SoftmaxRegression
        from fastsoftmax.estimators import ConvergenceWarning
        assert issubclass(ConvergenceWarning, UserWarning)
        X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
        y = ["b", "a", "b", "a"]
        for est in (LogisticRegression(C=3.0), SoftmaxRegression(max_epochs=3, random_state=0)):
            assert list(est.fit(X, y).predict(X)) == y
            params = est.get_params()
            assert type(est)(**params).get_params() == params
            assert est.set_params(fit_intercept=False).fit_intercept is False
            assert type(est).__name__ in repr(est)
        assert "C=3.0" in repr(LogisticRegression(C=3.0))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            LogisticRegression(max_iter=1).fit(X, y)
        assert any(issubclass(x.category, ConvergenceWarning) for x in w)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ----------------------------------------------------------------------------- labels


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "labels",
    [
        np.array(["cat", "dog", "emu"]),
        np.array(["cat", "dog", "emu"], dtype=object),
        np.array([-5, 7, 100]),
        np.array([0.5, 1.5, 2.5]) * 2,  # integral floats 1.0, 3.0, 5.0
    ],
    ids=["str", "object", "int", "float"],
)
def test_any_labels(Estimator, labels, rng):
    X, y_idx = blobs(rng)
    y = labels[y_idx]
    clf = Estimator().fit(X, y)
    assert clf.classes_.tolist() == sorted(labels.tolist())
    assert clf.classes_.dtype == labels.dtype
    predicted = clf.predict(X)
    assert predicted.dtype == labels.dtype
    assert np.mean(predicted == y) > 0.9
    assert clf.score(X, y) == pytest.approx(np.mean(predicted == y))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_binary_string_labels_shapes(Estimator, rng):
    X, y_idx = blobs(rng, k=2)
    y = np.array(["no", "yes"])[y_idx]
    clf = Estimator().fit(X, y)
    assert clf.coef_.shape == (1, 4) and clf.intercept_.shape == (1,)
    scores = clf.decision_function(X)
    assert scores.shape == (300,)
    # decision_function is the log-odds of classes_[1]
    np.testing.assert_allclose(scores, X @ clf.coef_[0] + clf.intercept_[0], rtol=1e-6, atol=1e-8)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba[:, 1], 1 / (1 + np.exp(-scores)), rtol=1e-6)
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba), rtol=1e-6, atol=1e-10)
    np.testing.assert_array_equal(clf.predict(X), np.where(scores > 0, "yes", "no"))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_multiclass_proba_is_softmax_of_decision(Estimator, rng):
    X, y = blobs(rng, k=4)
    clf = Estimator().fit(X, y)
    assert clf.coef_.shape == (4, 4) and clf.intercept_.shape == (4,)
    z = X @ clf.coef_.T + clf.intercept_
    np.testing.assert_allclose(clf.decision_function(X), z, rtol=1e-6, atol=1e-8)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(X), expected, rtol=1e-6, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.argmax(z, axis=1))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_log_proba_does_not_underflow(Estimator):
    X = np.array([[-1.0], [1.0]] * 5)
    y = np.array([0, 1] * 5)
    clf = Estimator().fit(X, y)
    far = np.array([[-1e4], [1e4]])
    log_proba = clf.predict_log_proba(far)
    assert np.all(np.isfinite(log_proba))
    assert log_proba[0, 1] < -100 and log_proba[1, 0] < -100


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_single_class_raises(Estimator):
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match="at least 2 classes.*only one class: 'a'"):
        Estimator().fit(X, ["a"] * 5)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_continuous_labels_raise(Estimator):
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        Estimator().fit(np.ones((3, 2)), [0.5, 1.0, 2.0])


# ----------------------------------------------------------------------------- dtypes and input


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float32_stays_float32(Estimator, rng):
    X, y = blobs(rng, dtype=np.float32)
    clf = Estimator().fit(X, y)
    assert clf.coef_.dtype == np.float32 and clf.intercept_.dtype == np.float32
    assert clf.decision_function(X).dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float32


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_float64_gives_float64(Estimator, rng):
    X, y = blobs(rng)
    clf = Estimator().fit(X, y)
    assert clf.coef_.dtype == np.float64


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_uint8_read_as_values(Estimator, rng):
    """uint8 pixels are read as 0..255 (no scaling): the same fit as on their float values."""
    X = rng.integers(0, 256, size=(200, 6)).astype(np.uint8)
    y = (X[:, 0].astype(int) + X[:, 1] > 255).astype(int) + (X[:, 2] > 200)
    if Estimator is LogisticRegression:
        params = {"max_iter": 5}
    else:
        params = {"learning_rate": 1e-3, "max_epochs": 3, "random_state": 0}
    clf = Estimator(**params).fit(X, y)
    ref = Estimator(**params).fit(X.astype(clf.coef_.dtype), y)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), ref.predict(X.astype(np.float64)))
    expected = np.float64 if Estimator is LogisticRegression else np.float32
    assert clf.coef_.dtype == expected


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_inputs_not_modified(Estimator, rng):
    X, y = blobs(rng, dtype=np.float32)
    sw = rng.uniform(0.5, 2.0, size=300)
    copies = X.copy(), y.copy(), sw.copy()
    for arr in (X, y, sw):
        arr.flags.writeable = False  # any write would raise
    clf = Estimator(class_weight="balanced").fit(X, y, sample_weight=sw)
    clf.predict_proba(X)
    for arr, copy in zip((X, y, sw), copies):
        np.testing.assert_array_equal(arr, copy)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_X_raises(Estimator, bad, rng):
    X, y = blobs(rng, n=20)
    X[3, 1] = bad
    with pytest.raises(ValueError, match="NaN" if np.isnan(bad) else "infinity"):
        Estimator().fit(X, y)
    X[3, 1] = 0.0
    clf = Estimator().fit(X, y)
    X[0, 0] = bad
    with pytest.raises(ValueError, match="Input X contains"):
        clf.predict(X)


def test_finite_X_with_overflowing_sum_is_accepted():
    # the cheap screen (a float64 sum) overflows, but every value is finite
    X = np.array([[1e308, 0.0], [1e308, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    clf = LogisticRegression(max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with np.errstate(all="ignore"):
            try:
                clf.fit(X, [0, 1, 0, 1])
            except ValueError as exc:  # an arithmetic failure is fine, a NaN/inf complaint is not
                assert "contains" not in str(exc)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_wrong_n_features_names_both_counts(Estimator, rng):
    X, y = blobs(rng, n=50, d=4)
    clf = Estimator().fit(X, y)
    for method in ("predict", "predict_proba", "predict_log_proba", "decision_function"):
        match = f"X has 3 features, but {Estimator.__name__} is expecting 4 features"
        with pytest.raises(ValueError, match=match):
            getattr(clf, method)(X[:, :3])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_input_messages(Estimator, rng):
    X, y = blobs(rng, n=20)
    est = Estimator()
    with pytest.raises(ValueError, match="Reshape your data"):
        est.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        est.fit(X + 1j, y)
    # scikit-learn's words
    match = r"Found input variables with inconsistent numbers of samples: \[20, 19\]"
    with pytest.raises(ValueError, match=match):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(20,\)"):
        est.fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        est.fit(X, y, sample_weight=-np.ones(20))
    with pytest.raises(ValueError, match="zero for every sample"):
        est.fit(X, y, sample_weight=np.zeros(20))
    with pytest.raises(ValueError, match="class_weight has label 7"):
        Estimator(class_weight={7: 2.0}).fit(X, y)
    # sparse X is accepted (issue 10, tests/test_sparse_estimators.py); a sparse y is not
    scipy_sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="y is a sparse matrix"):
        est.fit(scipy_sparse.csr_matrix(X), scipy_sparse.csr_matrix(y[:, None]))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        Estimator().predict(X)


def test_bad_parameters():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = [0, 1, 0, 1]
    cases = [
        (LogisticRegression(l1_ratio=1.0), ValueError, "Solver lbfgs supports only 'l2' or None"),
        (LogisticRegression(l1_ratio=1.5), ValueError, "l1_ratio must be >= 0.0 and <= 1.0"),
        (LogisticRegression(dual=True), ValueError, "Solver lbfgs supports only dual=False"),
        (LogisticRegression(intercept_scaling=0), ValueError, "intercept_scaling must be > 0"),
        (LogisticRegression(n_jobs=0), ValueError, "n_jobs must be None, -1 or a positive"),
        (LogisticRegression(C=0.0), ValueError, "C must be > 0"),
        (LogisticRegression(C="big"), TypeError, "C must be a real number"),
        (LogisticRegression(max_iter=-1), ValueError, "max_iter must be >= 0"),
        (LogisticRegression(solver="bogus"), ValueError, "'solver' parameter of LogisticRegr"),
        (LogisticRegression(solver="liblinear"), ValueError, "'liblinear' is not implemented"),
        (SoftmaxRegression(optimizer="adamw"), ValueError, "unknown learner 'adamw'"),
        (SoftmaxRegression(optimizer=3), TypeError, "optimizer must be a learner name"),
        (SoftmaxRegression(learning_rate=-1.0), ValueError, "learning_rate must be > 0"),
        (SoftmaxRegression(schedule="cosine"), ValueError, "unknown schedule 'cosine'"),
        (SoftmaxRegression(batch_size=0), ValueError, "batch_size must be >= 1"),
        (SoftmaxRegression(max_epochs=1.5), TypeError, "max_epochs must be an integer"),
        (SoftmaxRegression(l2=-1.0), ValueError, "l2 must be finite and non-negative"),
        (SoftmaxRegression(validation_fraction=1.5), ValueError, "validation_fraction must be"),
        (SoftmaxRegression(class_weight="uniform"), ValueError, "class_weight must be None"),
    ]
    for est, error, match in cases:
        with pytest.raises(error, match=match):
            est.fit(X, y)


def test_penalty_none_matches_infinite_C(rng):
    X, y = blobs(rng, n=100, spread=0.5)
    with pytest.warns(FutureWarning, match="'penalty' was deprecated in version 1.8"):
        a = LogisticRegression(penalty=None).fit(X, y)
    b = LogisticRegression(C=np.inf).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    # scikit-learn 1.9's words
    with pytest.warns(UserWarning, match="ignore the C and l1_ratio parameters"):
        LogisticRegression(penalty=None, C=2.0).fit(X, y)


def test_convergence_warning_and_n_iter(rng):
    X, y = blobs(rng)
    with pytest.warns(ConvergenceWarning, match="failed to converge after 2 iteration"):
        clf = LogisticRegression(max_iter=2).fit(X, y)
    assert clf.n_iter_.shape == (1,) and clf.n_iter_[0] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = LogisticRegression(max_iter=1000).fit(X, y)
    assert 2 < clf.n_iter_[0] < 1000


# ----------------------------------------------------------------- params, clone, warm start


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_get_set_params_and_clone(Estimator):
    est = Estimator(class_weight={1: 2.0}, fit_intercept=False)
    params = est.get_params()
    assert params["class_weight"] == {1: 2.0} and params["fit_intercept"] is False
    assert clone(est).get_params() == params
    assert est.set_params(tol=0.5) is est and est.tol == 0.5
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(nonsense=1)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_no_intercept(Estimator, rng):
    X, y = blobs(rng)
    clf = Estimator(fit_intercept=False).fit(X, y)
    np.testing.assert_array_equal(clf.intercept_, np.zeros(3))


def test_logistic_warm_start_continues(rng):
    X, y = blobs(rng, spread=1.0)
    cold = LogisticRegression(C=100.0, max_iter=1000).fit(X, y)
    warm = LogisticRegression(C=100.0, max_iter=1000, warm_start=True)
    warm.fit(X, y)
    warm.fit(X, y)  # starts at the optimum
    assert warm.n_iter_[0] <= 1 < cold.n_iter_[0]
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-3, atol=1e-4)


def test_class_weight_is_sample_weight(rng):
    X, y = blobs(rng, spread=1.0)
    a = LogisticRegression(class_weight={0: 3.0, 2: 0.5}).fit(X, y)
    sw = np.select([y == 0, y == 2], [3.0, 0.5], 1.0)
    b = LogisticRegression().fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(a.coef_, b.coef_, rtol=1e-10)


# ----------------------------------------------------------------------------- SoftmaxRegression


def test_softmax_same_seed_same_model(rng):
    X, y = blobs(rng, dtype=np.float32)
    a = SoftmaxRegression(max_epochs=3, random_state=7).fit(X, y)
    b = SoftmaxRegression(max_epochs=3, random_state=7).fit(X, y)
    c = SoftmaxRegression(max_epochs=3, random_state=8).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.intercept_, b.intercept_)
    assert not np.array_equal(a.coef_, c.coef_)  # another order of the minibatches


def test_softmax_history_and_best_epoch(rng):
    X, y = blobs(rng, dtype=np.float32, spread=1.0)
    X_val, y_val = blobs(np.random.default_rng(1), n=100, dtype=np.float32, spread=1.0)
    clf = SoftmaxRegression(max_epochs=4, random_state=0).fit(X, y)
    assert clf.n_iter_ == 4
    assert set(clf.history_) == {"train_loss", "val_loss", "val_error", "epoch_time"}
    assert all(len(v) == 4 for v in clf.history_.values())
    assert np.all(np.isnan(clf.history_["val_loss"]))
    assert clf.history_["train_loss"][-1] < clf.history_["train_loss"][0]
    assert clf.best_epoch_ == int(np.argmin(clf.history_["train_loss"]))
    assert all(t >= 0 for t in clf.history_["epoch_time"])

    clf = SoftmaxRegression(max_epochs=4, random_state=0).fit(X, y, validation_data=(X_val, y_val))
    assert clf.best_epoch_ == int(np.argmin(clf.history_["val_loss"]))
    # the recorded validation error is that of the final weights (no early stopping: no restore)
    assert clf.history_["val_error"][-1] == pytest.approx(1 - clf.score(X_val, y_val))


def _cross_entropy(clf, X, y):
    proba = clf.predict_proba(X).astype(np.float64)
    return float(-np.mean(np.log(proba[np.arange(len(y)), np.searchsorted(clf.classes_, y)])))


def test_softmax_early_stopping_restores_best(rng):
    X, y = blobs(rng, n=400, dtype=np.float32, spread=0.7)
    X_val, y_val = blobs(np.random.default_rng(5), n=100, dtype=np.float32, spread=0.7)
    # a constant large rate makes the validation loss bounce, so the best epoch is not the last
    clf = SoftmaxRegression(
        learning_rate=2.0, schedule=None, batch_size=8, max_epochs=30, early_stopping=True,
        n_iter_no_change=3, tol=0.0, random_state=0,
    ).fit(X, y, validation_data=(X_val, y_val))
    history = clf.history_["val_loss"]
    assert clf.n_iter_ == len(history) < 30  # stopped early
    assert clf.best_epoch_ == int(np.argmin(history))
    assert clf.n_iter_ - 1 - clf.best_epoch_ == 3  # three epochs without improvement
    # the model holds the best epoch's weights, not the last ones
    assert _cross_entropy(clf, X_val, y_val) == pytest.approx(history[clf.best_epoch_], rel=1e-4)


def test_softmax_early_stopping_split(rng):
    X, y = blobs(rng, n=200, dtype=np.float32)
    clf = SoftmaxRegression(
        max_epochs=50, early_stopping=True, n_iter_no_change=2, tol=1e-2, random_state=0
    )
    clf.fit(X, y)
    assert clf.n_iter_ < 50
    assert not np.any(np.isnan(clf.history_["val_loss"]))
    with pytest.raises(ValueError, match="validation_fraction=0.001 of 200 samples leaves 0"):
        clf.set_params(validation_fraction=0.001).fit(X, y)


def test_softmax_partial_fit(rng):
    X, y_idx = blobs(rng, dtype=np.float32)
    y = np.array(["a", "b", "c"])[y_idx]
    clf = SoftmaxRegression(random_state=0)
    with pytest.raises(ValueError, match="classes must be given on the first call"):
        clf.partial_fit(X, y)
    clf.partial_fit(X[:150], y[:150], classes=["a", "b", "c", "d"])
    assert clf.classes_.tolist() == ["a", "b", "c", "d"] and clf.coef_.shape == (4, 4)
    clf.partial_fit(X[150:], y[150:])
    assert len(clf.history_["train_loss"]) == 2
    with pytest.raises(ValueError, match="label 'z', which is not in classes_"):
        clf.partial_fit(X[:3], ["a", "b", "z"])
    with pytest.raises(ValueError, match="differs from classes_"):
        clf.partial_fit(X[:3], y[:3], classes=["a", "b"])
    with pytest.raises(ValueError, match="X has 2 features, but SoftmaxRegression is expecting 4"):
        clf.partial_fit(X[:3, :2], y[:3])


def test_softmax_partial_fit_epoch_equals_fit_epoch(rng):
    X, y = blobs(rng, dtype=np.float32)
    a = SoftmaxRegression(optimizer="adam", max_epochs=1, random_state=3).fit(X, y)
    b = SoftmaxRegression(optimizer="adam", random_state=3).partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_array_equal(a.coef_, b.coef_)
    # a second partial_fit continues the optimiser (Adam's step count keeps growing)
    steps = b._learner.t
    b.partial_fit(X, y)
    assert b._learner.t == 2 * steps


def test_softmax_binary_warm_start_is_exact(rng):
    """The binary coef_ (difference of the two softmax rows) holds the full training state."""
    X, y = blobs(rng, k=2, dtype=np.float64)
    params = dict(schedule=None, shuffle=False, l2=0.01)
    five = SoftmaxRegression(max_epochs=5, **params).fit(X, y)
    split = SoftmaxRegression(max_epochs=3, **params).fit(X, y)
    split.set_params(warm_start=True, max_epochs=2).fit(X, y)
    assert five.coef_.shape == (1, 4)
    # equal up to rounding (a kernel may round P0 and 1 - P1 differently)
    np.testing.assert_allclose(split.coef_, five.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(split.intercept_, five.intercept_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("Estimator", [LogisticRegression, SoftmaxRegression])
def test_warm_start_on_other_features_starts_from_zero(rng, Estimator):
    """A warm-started refit on data with another number of features fits from scratch."""
    X, y = blobs(rng, d=5, dtype=np.float64)
    clf = Estimator(warm_start=True, random_state=0).fit(X, y)
    cold = Estimator(random_state=0).fit(X[:, :4], y)
    clf.fit(X[:, :4], y)
    assert clf.coef_.shape == cold.coef_.shape == (3, 4)
    np.testing.assert_allclose(clf.coef_, cold.coef_, rtol=1e-10, atol=1e-12)


def test_softmax_optimizer_instance_is_not_modified(rng):
    X, y = blobs(rng, dtype=np.float32)
    opt = Adam(learning_rate=0.01, schedule=ExponentialDecay(0.9))
    clf = SoftmaxRegression(optimizer=opt, max_epochs=2, random_state=0).fit(X, y)
    assert opt.t == 0 and opt.state is None
    assert clf._learner.learning_rate == 0.01 and clf._learner.schedule == ExponentialDecay(0.9)
    clf = SoftmaxRegression(optimizer=opt, learning_rate=0.1, schedule=None, max_epochs=1).fit(X, y)
    assert clf._learner.learning_rate == 0.1 and clf._learner.lr_at(5) == 0.1


def test_softmax_auto_learning_rates():
    # mean squared row norm 50, above the 48 from which SGD's "auto" rate is its floor, 0.5
    X = np.array([[0.0], [10.0]])
    y = [0, 1]
    sgd = SoftmaxRegression(max_epochs=1).fit(X, y)._learner
    adam = SoftmaxRegression("adam", max_epochs=1).fit(X, y)._learner
    rms = SoftmaxRegression("rmsprop", max_epochs=1).fit(X, y)._learner
    # lr / sqrt(epoch + 1): more epochs keep making progress (issue 11)
    assert (sgd.kind, sgd.learning_rate, sgd.lr_at(3)) == ("sgd", 0.5, 0.25)
    assert (adam.kind, adam.learning_rate, adam.lr_at(3)) == ("adam", 0.01, 0.005)
    assert (rms.kind, rms.learning_rate) == ("rmsprop", 1e-3)  # the learner's own default


def test_softmax_class_weight_shifts_predictions(rng):
    X, y = blobs(rng, n=400, spread=0.3)  # heavily overlapping classes
    plain = SoftmaxRegression(random_state=0).fit(X, y)
    weighted = SoftmaxRegression(random_state=0, class_weight={0: 20.0}).fit(X, y)
    assert np.mean(weighted.predict(X) == 0) > np.mean(plain.predict(X) == 0) + 0.2


def test_softmax_divergence_raises_clearly(rng):
    X = rng.integers(0, 256, size=(100, 5)).astype(np.uint8)  # raw pixels, not scaled
    y = rng.integers(0, 3, size=100)
    with np.errstate(all="ignore"), pytest.raises(ValueError, match="learning rate is too large"):
        SoftmaxRegression(learning_rate=1e37, schedule=None).fit(X, y)


def test_softmax_verbose(rng, capsys):
    X, y = blobs(rng, n=60, dtype=np.float32)
    SoftmaxRegression(max_epochs=2).fit(X, y)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # silent by default

    SoftmaxRegression(max_epochs=2, verbose=2).fit(X, y, validation_data=(X, y))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2: train loss ")
    assert "val loss" in lines[1] and "val error" in lines[1] and lines[1].endswith(" s")

    SoftmaxRegression(max_epochs=2, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert "epoch 1" in err and "epoch 2" in err and "loss=" in err  # tqdm bars on stderr


# ----------------------------------------------------------------------------- compiled epochs


def _epoch_module(name):
    """The kernel module of backend ``name`` if it has a whole-epoch kernel, else skip."""
    from fastsoftmax._backends import get_module

    try:
        module = get_module(name)
    except ImportError as exc:
        pytest.skip(str(exc))
    if not hasattr(module, "train_epoch"):
        pytest.skip(f"the {name} backend has no train_epoch kernel")
    return module


@pytest.mark.parametrize("backend", ["numba", "cython"])
@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": "sgd"},
        {"optimizer": "adam", "l2": 0.01},
        {"optimizer": "nesterov", "fit_intercept": False, "class_weight": "balanced"},
        {"optimizer": "adagrad", "batch_size": 7, "class_weight": {1: 3.0}},
    ],
    ids=["sgd", "adam-l2", "nesterov-no-intercept-balanced", "adagrad-weighted"],
)
def test_compiled_epoch_matches_python_loop(backend, params, rng):
    """A compiled whole-epoch kernel and the Trainer loop train the same model."""
    import fastsoftmax

    _epoch_module(backend)
    X, y = blobs(rng, n=150, spread=1.0)
    with fastsoftmax.use_backend("numpy"):  # no train_epoch: the Python minibatch loop
        loop = SoftmaxRegression(max_epochs=3, random_state=0, **params).fit(X, y)
    with fastsoftmax.use_backend(backend):
        compiled = SoftmaxRegression(max_epochs=3, random_state=0, **params).fit(X, y)
    np.testing.assert_allclose(compiled.coef_, loop.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(compiled.intercept_, loop.intercept_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(
        compiled.history_["train_loss"], loop.history_["train_loss"], rtol=1e-9
    )
    assert compiled._learner.t == loop._learner.t


def _spy(monkeypatch, module):
    calls = []
    original = module.train_epoch

    def spy(*args, **kwargs):
        calls.append(args[6])  # batch_size
        return original(*args, **kwargs)

    monkeypatch.setattr(module, "train_epoch", spy)
    return calls


def test_compiled_epoch_used_when_fast(rng, monkeypatch):
    import fastsoftmax
    from fastsoftmax._backends import get_module
    from fastsoftmax.learners import SGD

    X, y = blobs(rng, n=100, dtype=np.float32)
    calls = _spy(monkeypatch, _epoch_module("numba"))
    with fastsoftmax.use_backend("numba"):
        SoftmaxRegression(max_epochs=2).fit(X, y)
        assert calls == [32, 32]  # one call per epoch

        class MySGD(SGD):  # a user's learner: only Python knows its update
            pass

        SoftmaxRegression(optimizer=MySGD(0.1), max_epochs=2).fit(X, y)
        assert len(calls) == 2
    with fastsoftmax.use_backend("numpy"):  # the user chose the NumPy backend
        SoftmaxRegression(max_epochs=2).fit(X, y)
        assert len(calls) == 2
    if "cython" in fastsoftmax.backends():
        # the compiled Cython backend uses its own kernel, or numba's if it has none
        cython = get_module("cython")
        own = _spy(monkeypatch, cython) if hasattr(cython, "train_epoch") else calls
        with fastsoftmax.use_backend("cython"):
            SoftmaxRegression(max_epochs=3, batch_size=16).fit(X, y)
        assert own[-3:] == [16, 16, 16]


def test_progress_bar_does_not_change_the_model(rng, capsys):
    X, y = blobs(rng, n=500, dtype=np.float32)
    quiet = SoftmaxRegression(max_epochs=2, batch_size=4, random_state=0).fit(X, y)
    loud = SoftmaxRegression(max_epochs=2, batch_size=4, random_state=0, verbose=1).fit(X, y)
    assert "125/125" in capsys.readouterr().err  # every minibatch counted
    np.testing.assert_array_equal(loud.coef_, quiet.coef_)


def test_logistic_verbose(rng, capsys):
    X, y = blobs(rng, n=60)
    LogisticRegression().fit(X, y)
    assert capsys.readouterr().out == ""
    LogisticRegression(verbose=1).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("L-BFGS: ") and "iterations, loss" in lines[0]
    clf = LogisticRegression(verbose=2).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == clf.n_iter_[0] + 1 and lines[0].startswith("L-BFGS iteration 1: loss ")


# ----------------------------------------------------------------------------- structure


def _calls_of(function, run):
    """How often ``function`` (by its code, however it was imported) is called by ``run()``."""
    import sys

    code, count = function.__code__, [0]

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is code:
            count[0] += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return count[0]


@pytest.mark.parametrize("multiclass", [False, True], ids=["binary", "multiclass"])
def test_logistic_validates_once(multiclass, rng):
    """The L-BFGS objective calls the non-validating objective: no check per iteration."""
    from fastsoftmax._validation import check_data_matrix, check_sample_weight

    X, y = blobs(rng, n=80, k=3 if multiclass else 2, spread=0.5)
    sw = rng.uniform(0.5, 2.0, size=80)
    for check in (check_data_matrix, check_sample_weight):
        counts = []
        for max_iter in (2, 12):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est = LogisticRegression(max_iter=max_iter, tol=0.0)
                counts.append(_calls_of(check, lambda e=est: e.fit(X, y, sample_weight=sw)))
        assert est.n_iter_[0] > 2
        assert counts[0] == counts[1] >= 1, (check.__name__, counts)


def test_softmax_python_loop_validates_once(rng):
    """The epoch driver's minibatch steps do not re-validate (numpy backend: the Python loop)."""
    import fastsoftmax
    from fastsoftmax._validation import (
        check_data_matrix,
        check_labels,
        check_sample_weight,
    )

    X, y = blobs(rng, n=120, dtype=np.float32)
    sw = rng.uniform(0.5, 2.0, size=120)
    with fastsoftmax.use_backend("numpy"):
        for check in (check_data_matrix, check_labels, check_sample_weight):
            fits = [  # 2 minibatches, or 60
                lambda b=b: SoftmaxRegression(batch_size=b, max_epochs=2).fit(X, y, sw)
                for b in (120, 4)
            ]
            counts = [_calls_of(check, fit) for fit in fits]
            assert counts[0] == counts[1], (check.__name__, counts)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_prediction_uses_coef_as_it_is(Estimator, n_classes, rng, monkeypatch):
    """decision_function hands coef_ itself (no copy, no transpose) to the objective."""
    from fastsoftmax.estimators import _base

    X, y = blobs(rng, n=60, k=n_classes, dtype=np.float32)
    est = Estimator().fit(X, y)
    seen = []
    original = _base.decision

    def spy(X, coef, intercept=None):
        seen.append(coef)
        return original(X, coef, intercept)

    monkeypatch.setattr(_base, "decision", spy)
    est.predict(X)
    est.predict_proba(X)
    assert len(seen) == 2 and all(coef is est.coef_ for coef in seen)
    assert est.coef_.flags.c_contiguous


def test_softmax_coef_is_the_trained_array(rng, monkeypatch):
    """SoftmaxRegression takes coef_ from the model's coef, without a transpose or copy;
    a later partial_fit trains a copy, so the earlier coef_ array is never written."""
    from fastsoftmax import trainer

    X, y = blobs(rng, n=60, k=3)
    models = []
    original = trainer.SoftmaxModel.__init__

    def record(self, *args, **kwargs):
        original(self, *args, **kwargs)
        models.append(self)

    monkeypatch.setattr(trainer.SoftmaxModel, "__init__", record)
    est = SoftmaxRegression(max_epochs=2).fit(X, y)
    assert est.coef_ is models[-1].coef and est.coef_.flags.c_contiguous
    coef, intercept, before = est.coef_, est.intercept_, est.coef_.copy()
    est.partial_fit(X, y)
    assert est.coef_ is not coef and est.intercept_ is not intercept
    np.testing.assert_array_equal(coef, before)
    assert not np.array_equal(est.coef_, before)


def test_softmax_diverging_partial_fit_leaves_the_estimator_unchanged(rng):
    X, y = blobs(rng, n=60, k=3)
    est = SoftmaxRegression(max_epochs=2, random_state=0).fit(X, y)
    coef, intercept = est.coef_.copy(), est.intercept_.copy()
    est.set_params(learning_rate=1e200)
    with pytest.raises(ValueError, match="training loss became"):
        est.partial_fit(X * 1e200, y)
    np.testing.assert_array_equal(est.coef_, coef)
    np.testing.assert_array_equal(est.intercept_, intercept)


def test_estimators_fill_the_persistence_registry():
    from fastsoftmax import persistence

    classes = persistence._estimator_classes()
    assert classes["LogisticRegression"] is LogisticRegression
    assert classes["SoftmaxRegression"] is SoftmaxRegression


def test_load_in_a_fresh_interpreter(tmp_path, rng):
    """persistence.load finds the estimator classes though nothing imported them yet."""
    X, y = blobs(rng, n=40)
    path = LogisticRegression().fit(X, y).save(tmp_path / "model")
    code = textwrap.dedent(
        f"""
        import sys
        from fastsoftmax.persistence import load
        assert "fastsoftmax.estimators" not in sys.modules
        print(type(load({str(path)!r})).__name__)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "LogisticRegression"
