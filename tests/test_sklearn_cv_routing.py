"""LogisticRegressionCV's metadata routing (scikit-learn's enable_metadata_routing=True)."""

import re

import numpy as np
import pytest

from fastsoftmax import LogisticRegressionCV

sklearn = pytest.importorskip("sklearn")
from sklearn import config_context  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.metrics import accuracy_score, get_scorer  # noqa: E402
from sklearn.model_selection import GroupKFold, StratifiedKFold  # noqa: E402


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(n_samples=300, n_features=6, random_state=0)
    sample_weight = np.ones(y.shape[0])
    sample_weight[: y.shape[0] // 2] = 5.0
    sample_weight[y == 1] *= 0.2
    return X, y, sample_weight


def _cv(scoring, cv=3):
    return LogisticRegressionCV(Cs=3, cv=cv, l1_ratios=(0,), scoring=scoring,
                                use_legacy_attributes=False)  # fmt: skip


@config_context(enable_metadata_routing=True)
def test_sample_weight_reaches_the_scorer_only_when_requested(data):
    X, y, sample_weight = data
    unweighted = _cv(get_scorer("accuracy").set_score_request(sample_weight=False))
    weighted = _cv(get_scorer("accuracy").set_score_request(sample_weight=True))
    unweighted.fit(X, y, sample_weight=sample_weight)
    weighted.fit(X, y, sample_weight=sample_weight)
    # the same fits (sample_weight weighs them both), scored with and without the weights
    np.testing.assert_allclose(unweighted.coefs_paths_, weighted.coefs_paths_)
    assert not np.allclose(unweighted.scores_, weighted.scores_)
    for fold, (_, test) in enumerate(StratifiedKFold(3).split(X, y)):
        coef = weighted.coefs_paths_[fold, 0, -1, 0]  # (n_folds, n_l1, n_cs, 1, d + 1)
        predicted = (X[test] @ coef[:-1] + coef[-1] > 0).astype(int)
        assert weighted.scores_[fold, 0, -1] == pytest.approx(
            accuracy_score(y[test], predicted, sample_weight=sample_weight[test]))
        assert unweighted.scores_[fold, 0, -1] == pytest.approx(accuracy_score(y[test], predicted))
    message = ("LogisticRegressionCV.score got unexpected argument(s) {'sample_weight'}, which "
               "are not routed to any object.")  # fmt: skip
    with pytest.raises(TypeError, match=re.escape(message)):
        unweighted.score(X, y, sample_weight=sample_weight)
    assert weighted.score(X, y, sample_weight=sample_weight) == pytest.approx(
        accuracy_score(y, weighted.predict(X), sample_weight=sample_weight))
    assert unweighted.score(X, y) == pytest.approx(accuracy_score(y, unweighted.predict(X)))


def test_without_routing_sample_weight_is_the_scorers_too(data):
    X, y, sample_weight = data
    default = _cv("accuracy").fit(X, y, sample_weight=sample_weight)
    with config_context(enable_metadata_routing=True):
        requested = _cv(get_scorer("accuracy").set_score_request(sample_weight=True))
        requested.fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(default.scores_, requested.scores_)


@config_context(enable_metadata_routing=True)
def test_groups_reach_the_splitter(data):
    X, y, _ = data
    groups = np.arange(y.shape[0]) % 3
    clf = _cv("accuracy", cv=GroupKFold(3)).fit(X, y, groups=groups)
    expected = _cv("accuracy", cv=list(GroupKFold(3).split(X, y, groups))).fit(X, y)
    np.testing.assert_array_equal(clf.coefs_paths_, expected.coefs_paths_)
    np.testing.assert_array_equal(clf.scores_, expected.scores_)
    with pytest.raises(TypeError, match="unexpected argument"):
        _cv("accuracy").fit(X, y, groups=groups)  # StratifiedKFold does not take groups
