"""scikit-learn compatible classifiers: :class:`LogisticRegression` and :class:`SoftmaxRegression`.

Both model ``z = X W + b`` with the softmax (or, for two classes, the sigmoid)
link and share one base class for input validation, label encoding,
prediction, scoring and saving:

* :class:`LogisticRegression` is a drop-in replacement for
  :class:`sklearn.linear_model.LogisticRegression` (scikit-learn 1.9's
  signature) with the L2, L1, elastic-net or no penalty: the same objective, minimised by full-batch L-BFGS
  (:func:`scipy.optimize.minimize`) driven by the fused loss-and-gradient
  kernels :func:`~fastsoftmax.logistic_loss_grad` (two classes) and
  :func:`~fastsoftmax.softmax_cross_entropy_grad` (three or more).
* :class:`LogisticRegressionCV` chooses ``C`` (and ``l1_ratio``) by
  cross-validation, as :class:`sklearn.linear_model.LogisticRegressionCV`.
* :class:`SoftmaxRegression` trains the same model by minibatch gradient
  descent with any learner of :mod:`fastsoftmax.learners`, for data too large
  for full-batch optimisation; it has ``partial_fit``, early stopping and a
  per-epoch ``history_``.

The package's modules: ``_compat`` (the optional-scikit-learn shim),
``_base`` (the data checks and the shared base class), ``_logistic`` and
``_softmax`` (one estimator each).

scikit-learn is optional: when it is installed the estimators derive from its
``BaseEstimator`` and ``ClassifierMixin`` (so they work in pipelines, grid
searches and pass its estimator checks); without it a small built-in base
class provides ``get_params``/``set_params``.

Examples
--------
>>> import numpy as np
>>> from fastsoftmax import LogisticRegression
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
>>> clf = LogisticRegression().fit(X, ["b", "a", "b", "a"])
>>> clf.predict([[0.0, 3.0], [3.0, 0.0]])
array(['b', 'a'], dtype='<U1')
>>> clf.coef_.shape, clf.intercept_.shape
((1, 2), (1,))
"""

from ._compat import ConvergenceWarning, NotFittedError
from ._logistic import LogisticRegression
from ._logistic_cv import LogisticRegressionCV
from ._softmax import SoftmaxRegression

__all__ = [
    "ConvergenceWarning",
    "LogisticRegression",
    "LogisticRegressionCV",
    "NotFittedError",
    "SoftmaxRegression",
]
