"""Input validation like scikit-learn's: feature names, n_features_in_, inconsistent lengths."""

import warnings

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import LogisticRegression, SoftmaxRegression

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402

ESTIMATORS = [LogisticRegression, lambda: SoftmaxRegression(max_epochs=3, random_state=0)]
IDS = ["LogisticRegression", "SoftmaxRegression"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((90, 4))
    y = np.argmax(X[:, :3] + 0.3 * rng.standard_normal((90, 3)), axis=1)
    return X, y


@pytest.fixture
def frame(data):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(data[0], columns=["a", "b", "c", "d"])


def _error(clf, method, X):
    with pytest.raises(ValueError) as info:
        getattr(clf, method)(X)
    return str(info.value)


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_feature_names_in_(make, data, frame):
    X, y = data
    clf = make().fit(frame, y)
    assert clf.n_features_in_ == 4
    np.testing.assert_array_equal(clf.feature_names_in_, ["a", "b", "c", "d"])
    assert clf.feature_names_in_.dtype == object
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        np.testing.assert_array_equal(clf.predict(frame), clf.predict(X))
    clf.fit(X, y)  # refitted without names: the attribute goes, as in scikit-learn
    assert not hasattr(clf, "feature_names_in_")


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_reordered_or_missing_columns_raise_sklearns_errors(make, method, data, frame):
    _, y = data
    ours = make().fit(frame, y)
    theirs = SkLogisticRegression().fit(frame, y)
    cases = {
        "reordered": frame[["b", "a", "c", "d"]],
        "missing": frame[["a", "b", "c"]],
        "unseen": frame.rename(columns={"d": "e"}),
    }
    for name, X_bad in cases.items():
        message = _error(ours, method, X_bad)
        assert message == _error(theirs, method, X_bad), name
    assert "Feature names must be in the same order as they were in fit" in _error(
        ours, method, cases["reordered"]
    )


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_names_seen_on_one_side_warn(make, data, frame):
    X, y = data
    with pytest.warns(UserWarning, match="X does not have valid feature names, but"):
        make().fit(frame, y).predict(X)
    with pytest.warns(UserWarning, match="X has feature names, but .* was fitted without"):
        make().fit(X, y).predict(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make().fit(frame, y).predict(frame)


def test_non_string_names_are_ignored_and_mixed_names_refused(data, frame):
    _, y = data
    numbered = frame.set_axis([0, 1, 2, 3], axis=1)
    assert not hasattr(LogisticRegression().fit(numbered, y), "feature_names_in_")
    mixed = frame.set_axis(["a", 1, "c", 3], axis=1)
    with pytest.raises(TypeError, match="Feature names are only supported if all input"):
        LogisticRegression().fit(mixed, y)


def test_float32_frame_stays_float32(data, frame):
    _, y = data
    clf = LogisticRegression().fit(frame.astype(np.float32), y)
    assert clf.coef_.dtype == np.float32


def test_feature_names_survive_save_and_load(data, frame, tmp_path):
    _, y = data
    clf = LogisticRegression().fit(frame, y)
    loaded = fastsoftmax.load(clf.save(tmp_path / "model"))
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    with pytest.raises(ValueError, match="same order"):
        loaded.predict(frame[["d", "c", "b", "a"]])


@pytest.mark.parametrize("make", ESTIMATORS, ids=IDS)
def test_inconsistent_lengths_message_is_sklearns(make, data):
    X, y = data
    with pytest.raises(ValueError) as ours:
        make().fit(X, y[:-1])
    with pytest.raises(ValueError) as theirs:
        SkLogisticRegression().fit(X, y[:-1])
    assert str(ours.value) == str(theirs.value)
