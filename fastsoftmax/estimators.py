"""scikit-learn compatible classifiers: :class:`LogisticRegression` and :class:`SoftmaxRegression`.

Both model ``z = X W + b`` with the softmax (or, for two classes, the sigmoid)
link and share one base class for input validation, label encoding,
prediction, scoring and saving:

* :class:`LogisticRegression` is a drop-in replacement for
  :class:`sklearn.linear_model.LogisticRegression` with the L2 (or no)
  penalty: the same objective, minimised by full-batch L-BFGS
  (:func:`scipy.optimize.minimize`) driven by the fused loss-and-gradient
  kernels :func:`~fastsoftmax.logistic_loss_grad` (two classes) and
  :func:`~fastsoftmax.softmax_cross_entropy_grad` (three or more).
* :class:`SoftmaxRegression` trains the same model by minibatch gradient
  descent with any learner of :mod:`fastsoftmax.learners`, for data too large
  for full-batch optimisation; it has ``partial_fit``, early stopping and a
  per-epoch ``history_``.

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

from __future__ import annotations

import copy
import inspect
import math
import numbers
import time
import warnings

import numpy as np

from ._validation import check_data_matrix, check_l2, check_sample_weight
from .functions import linear, log_softmax, logistic_loss_grad, sigmoid, softmax
from .functions import softmax_cross_entropy_grad
from .learners import _integer as _check_int  # np.bool_ is no Integral, so it is refused too

__all__ = ["LogisticRegression", "SoftmaxRegression", "ConvergenceWarning", "NotFittedError"]

try:  # scikit-learn is optional; with it the estimators are genuine sklearn estimators
    from sklearn.base import BaseEstimator as _SklearnBase
    from sklearn.base import ClassifierMixin as _SklearnClassifierMixin
    from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError

    _BASES = (_SklearnClassifierMixin, _SklearnBase)
except ImportError:  # pragma: no cover - exercised by a test in a subprocess

    class ConvergenceWarning(UserWarning):
        """The solver stopped before reaching its convergence criterion."""

    class DataConversionWarning(UserWarning):
        """The input was converted (e.g. a column-vector ``y`` was raveled)."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit``."""

    class _ParamsBase:
        """``get_params``/``set_params``/``repr`` in scikit-learn's style, without it."""

        @classmethod
        def _get_param_names(cls):
            signature = inspect.signature(cls.__init__)
            return sorted(
                p.name
                for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            )

        def get_params(self, deep=True):
            return {name: getattr(self, name) for name in self._get_param_names()}

        def set_params(self, **params):
            valid = self._get_param_names()
            for name, value in params.items():
                if name not in valid:
                    raise ValueError(
                        f"Invalid parameter {name!r} for estimator {type(self).__name__}; "
                        f"valid parameters are {valid}"
                    )
                setattr(self, name, value)
            return self

        def __repr__(self):
            defaults = {
                p.name: p.default
                for p in inspect.signature(type(self).__init__).parameters.values()
            }
            changed = [
                f"{name}={value!r}"
                for name, value in self.get_params().items()
                if not (defaults.get(name) is value or _equal(defaults.get(name), value))
            ]
            return f"{type(self).__name__}({', '.join(changed)})"

    _BASES = (_ParamsBase,)


def _equal(a, b):
    try:
        return bool(a == b)
    except Exception:  # e.g. arrays: not a plain default
        return False


# ---------------------------------------------------------------------------
# parameter checks (at fit time, as scikit-learn does)


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_real(name, value, *, low=0.0, low_open=False, high=None, allow_inf=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = math.isnan(value) or (math.isinf(value) and not allow_inf)
    bad = bad or (value <= low if low_open else value < low) or (high is not None and value > high)
    if bad:
        bounds = f"{'>' if low_open else '>='} {low}"
        bounds += f" and <= {high}" if high is not None else ""
        bounds += "" if allow_inf else " and finite"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return value


def _check_class_weight(class_weight):
    if class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict):
        return class_weight
    raise ValueError(
        f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {class_weight!r}"
    )


def _check_verbose(verbose):
    return _check_int("verbose", verbose, 0)


# ---------------------------------------------------------------------------
# data checks


def _is_sparse(X):
    # duck-typed so that scipy.sparse need not be imported
    return type(X).__module__.startswith("scipy.sparse")


def _check_X(X, name="X"):
    """Validate a data matrix the way scikit-learn does, keeping float32 and uint8."""
    if _is_sparse(X):
        raise TypeError(
            f"{name} is a sparse matrix ({type(X).__name__}), but this estimator needs dense "
            f"data; convert it with {name}.toarray()"
        )
    try:
        arr = np.asarray(X)
    except ValueError as exc:  # ragged nested lists
        raise ValueError(
            f"{name} must be a 2-D numeric array; could not convert it: {exc}"
        ) from None
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}")
    if arr.dtype.kind == "O":  # e.g. object arrays of numbers
        try:
            arr = arr.astype(np.float64)
        except TypeError as exc:
            raise TypeError(
                f"{name} must hold numbers only; "
                f"float() argument must be a string or a number: {exc}"
            ) from None
        except ValueError as exc:
            raise ValueError(f"{name} must hold numbers only: {exc}") from None
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_features), got shape {arr.shape}. "
            f"Reshape your data with {name}.reshape(-1, 1) if it has a single feature or "
            f"{name}.reshape(1, -1) if it is a single sample."
        )
    X = check_data_matrix(arr, name)
    n, d = X.shape
    if n < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
        )
    if X.dtype.kind == "f" and not math.isfinite(float(np.sum(X))):
        # the sum in X's own dtype is a cheap screen (3x faster than upcasting float32);
        # a finite sum that overflows falls through to the exact test
        if np.isnan(X).any():
            raise ValueError(f"Input {name} contains NaN.")
        if np.isinf(X).any():
            raise ValueError(f"Input {name} contains infinity.")
    return X


def _check_y(y, n_samples):
    """Validate classification labels: 1-D (a column vector is raveled with a warning)."""
    if y is None:
        raise ValueError("this classifier requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn(
            "A column-vector y was passed when a 1d array was expected. Please change the shape "
            "of y to (n_samples,), for example using ravel().",
            DataConversionWarning,
            stacklevel=3,
        )
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y must be a 1-D array of class labels, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {y.shape[0]} labels")
    if y.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: y has dtype {y.dtype}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        if np.any(y != np.floor(y)):
            raise ValueError(
                "Unknown label type: continuous. y holds non-integer numbers, but a classifier "
                "needs class labels (integers, strings, ...)."
            )
    if y.dtype.kind == "O":
        kinds = {type(v) for v in y.tolist()}
        numeric = all(issubclass(k, (numbers.Number, np.generic)) for k in kinds)
        if len(kinds) > 1 and not numeric:
            raise ValueError(
                f"Unknown label type: y mixes label types {sorted(k.__name__ for k in kinds)}; "
                "use labels of one type"
            )
        floats = [v for v in y.tolist() if isinstance(v, float) and math.isfinite(v)]
        if numeric and any(v != math.floor(v) for v in floats):
            raise ValueError("Unknown label type: continuous (y holds non-integer numbers)")
    return y


def _encode_labels(y, estimator):
    try:
        classes, y_idx = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"Unknown label type: the labels of y cannot be sorted: {exc}") from None
    if classes.shape[0] < 2:
        raise ValueError(
            f"{type(estimator).__name__} needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {_plain(classes[0])!r}"
        )
    return classes, np.ascontiguousarray(y_idx.reshape(-1), dtype=np.intp)


def _class_weights(class_weight, classes, y_idx, sample_weight):
    """Per-class weights as scikit-learn's ``compute_class_weight``.

    "balanced" counts the samples of each class weighted by ``sample_weight``.
    """
    n_classes = classes.shape[0]
    if class_weight is None:
        return np.ones(n_classes)
    if class_weight == "balanced":
        counts = np.bincount(y_idx, weights=sample_weight, minlength=n_classes).astype(np.float64)
        present = counts > 0
        weights = np.ones(n_classes)
        weights[present] = counts.sum() / (np.count_nonzero(present) * counts[present])
        return weights
    weights = np.ones(n_classes)
    known = {_plain(c): i for i, c in enumerate(classes.tolist())}
    for label, weight in class_weight.items():
        key = _plain(label)
        if key not in known:
            raise ValueError(
                f"class_weight has label {label!r}, which is not a class in y "
                f"(classes: {classes.tolist()})"
            )
        weights[known[key]] = _check_real(f"class_weight[{label!r}]", weight)
    return weights


def _plain(label):
    # numpy scalars hash like Python ones, but make dict lookups explicit
    return label.item() if isinstance(label, np.generic) else label


def _check_is_fitted(estimator):
    if not hasattr(estimator, "coef_"):
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


# ---------------------------------------------------------------------------
# the shared base class


class _LinearClassifier(*_BASES):
    """Validation, label encoding, prediction, scoring and saving for a linear classifier.

    Subclasses implement ``fit`` and set ``classes_``, ``coef_`` (``(1, d)``
    for two classes, else ``(n_classes, d)``), ``intercept_``, ``n_iter_`` and
    ``n_features_in_``.
    """

    #: dtype of the parameters for uint8 data (float data keeps its own dtype)
    _uint8_dtype = np.float64

    def _param_dtype(self, X):
        return np.dtype(self._uint8_dtype) if X.dtype == np.uint8 else X.dtype

    def _validate_X(self, X, *, reset):
        X = _check_X(X)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X

    def _fit_data(self, X, y, sample_weight):
        """Validate training data: ``(X, y_idx, sample_weight with class weights, dtype)``."""
        X = self._validate_X(X, reset=True)
        y = _check_y(y, X.shape[0])
        self.classes_, y_idx = _encode_labels(y, self)
        dtype = self._param_dtype(X)
        sw = self._weights(y_idx, sample_weight, X.shape[0], dtype)
        return X, y_idx, sw, dtype

    def _weights(self, y_idx, sample_weight, n, dtype):
        sw = check_sample_weight(sample_weight, n, dtype)
        class_weight = _check_class_weight(self.class_weight)
        if class_weight is not None:
            cw = _class_weights(class_weight, self.classes_, y_idx, sw).astype(dtype)[y_idx]
            sw = cw if sw is None else sw * cw  # a new array: the user's weights are never modified
        if sw is not None and not np.sum(sw, dtype=np.float64) > 0:
            raise ValueError(
                "sample_weight (times the class weights) is zero for every sample; "
                "at least one weight must be positive"
            )
        return sw

    # -- prediction ------------------------------------------------------------

    def decision_function(self, X):
        """Confidence scores ``X @ coef_.T + intercept_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            For two classes, the log-odds of ``classes_[1]`` (1-D), as in
            scikit-learn; otherwise one column per class.
        """
        _check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        scores = linear(X, self.coef_.T, self.intercept_)
        return scores.ravel() if self.coef_.shape[0] == 1 else scores

    def predict(self, X):
        """Predicted class labels, taken from ``classes_``.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        index = (scores > 0).astype(np.intp) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]

    def predict_proba(self, X):
        """Class probabilities (columns ordered as ``classes_``).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = sigmoid(scores)
            return np.column_stack([1 - p, p])
        return softmax(scores, axis=1, out=scores)

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities, computed without underflow.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:  # log sigmoid of (-z, z) = log_softmax of (0, z)
            scores = np.column_stack([np.zeros_like(scores), scores])
        return log_softmax(scores, axis=1, out=scores)

    def score(self, X, y, sample_weight=None):
        """Mean accuracy on ``(X, y)`` (weighted by ``sample_weight`` if given).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        accuracy : float
        """
        predicted = self.predict(X)
        y = _check_y(y, predicted.shape[0])
        return float(np.average(predicted == y, weights=sample_weight))

    # -- persistence --------------------------------------------------------------

    def save(self, path):
        """Save the estimator (parameters and fitted state) to a portable ``.npz`` file.

        Load it back with :func:`fastsoftmax.load`.  No pickle is involved.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; ``.npz`` is appended if the name lacks it.

        Returns
        -------
        path : str
            The file written.
        """
        from .persistence import save

        return save(self, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        return tags


# ---------------------------------------------------------------------------
# LogisticRegression


_LBFGS_HINT = (
    "Increase the number of iterations (max_iter) or scale the data, e.g. with "
    "sklearn.preprocessing.StandardScaler, or pixels / 255."
)


class LogisticRegression(_LinearClassifier):
    r"""Logistic regression (L2 or no penalty) by full-batch L-BFGS on fused kernels.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegression`
    with ``solver="lbfgs"`` and the L2 (or no) penalty: it minimises the same
    objective,

    .. math::
        \frac{1}{\sum_i s_i} \sum_i s_i \, \ell(y_i, x_i W + b)
        + \frac{1}{2 C \sum_i s_i} \|W\|^2,

    with :math:`\ell` the sigmoid loss for two classes and the multinomial
    (softmax) cross-entropy for three or more, :math:`s_i` the sample weights
    times the class weights, and the intercept not penalised.  The solver is
    :func:`scipy.optimize.minimize` (L-BFGS-B) with scikit-learn's settings,
    so the coefficients agree with scikit-learn's to within the tolerance.
    float32 data is trained in float32 (``coef_`` is float32).

    Parameters
    ----------
    penalty : {"l2", None}, default="l2"
        ``None`` fits without penalty (the same as ``C=numpy.inf``).
    C : float, default=1.0
        Inverse regularisation strength, > 0 (``numpy.inf``: no penalty).
    tol : float, default=1e-4
        Stop when the largest gradient component is below ``tol`` (L-BFGS-B's
        ``gtol``).
    max_iter : int, default=100
        Maximum number of L-BFGS iterations.
    fit_intercept : bool, default=True
        Learn an intercept (not penalised).
    class_weight : dict, "balanced" or None, default=None
        Weights ``{label: weight}`` multiplied into the sample weights;
        ``"balanced"`` uses ``n_samples / (n_classes * count(label))``.
    random_state : int, RandomState instance or None, default=None
        Unused by L-BFGS (deterministic); kept for compatibility.
    solver : {"lbfgs"}, default="lbfgs"
        Only L-BFGS is implemented.
    verbose : int, default=0
        If positive, print the solver's result (and each iteration for >= 2).
    warm_start : bool, default=False
        Start from the previous solution when refitting.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients; one row (for ``classes_[1]``) for two classes.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
        Number of L-BFGS iterations.
    n_features_in_ : int

    See Also
    --------
    SoftmaxRegression : minibatch training for large data.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import LogisticRegression
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 3))
    >>> y = np.where(X[:, 0] + 0.5 * X[:, 1] > 0, "yes", "no")
    >>> clf = LogisticRegression(C=10.0).fit(X, y)
    >>> clf.classes_
    array(['no', 'yes'], dtype='<U3')
    >>> clf.score(X, y) > 0.95
    True
    >>> clf.predict_proba(X[:2]).sum(axis=1)
    array([1., 1.])
    """

    def __init__(
        self,
        penalty="l2",
        *,
        C=1.0,
        tol=1e-4,
        fit_intercept=True,
        class_weight=None,
        random_state=None,
        solver="lbfgs",
        max_iter=100,
        verbose=0,
        warm_start=False,
    ):
        self.penalty = penalty
        self.C = C
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start

    def _l2_strength(self):
        if self.penalty not in ("l2", None):
            raise ValueError(
                f"penalty must be 'l2' or None, got {self.penalty!r} (fastsoftmax implements the "
                "L2-penalised and unpenalised problems; use scikit-learn for 'l1' or 'elasticnet')"
            )
        C = _check_real("C", self.C, low_open=True, allow_inf=True)
        if self.penalty is None:
            if C != 1.0:
                warnings.warn(
                    "Setting penalty=None will ignore the C parameter", UserWarning, stacklevel=3
                )
            return math.inf
        return C

    def fit(self, X, y, sample_weight=None):
        """Fit the model by L-BFGS.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            float32, float64 or uint8 (read as 0..255, not scaled); other
            numeric dtypes are read as float64.
        y : array_like of shape (n_samples,)
            Class labels (any sortable hashable values: ints, strings, ...).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self : LogisticRegression
        """
        from scipy.optimize import minimize

        C = self._l2_strength()
        tol = _check_real("tol", self.tol)
        max_iter = _check_int("max_iter", self.max_iter, 0)
        fit_intercept = _check_bool("fit_intercept", self.fit_intercept)
        warm_start = _check_bool("warm_start", self.warm_start)
        verbose = _check_verbose(self.verbose)
        if self.solver != "lbfgs":
            raise ValueError(
                f"solver must be 'lbfgs' (the only solver implemented), got {self.solver!r}"
            )
        previous = None
        if warm_start and hasattr(self, "coef_"):
            previous = (self.coef_, self.intercept_, self.classes_)

        X, y_idx, sw, dtype = self._fit_data(X, y, sample_weight)
        n, d = X.shape
        n_classes = self.classes_.shape[0]
        k = 1 if n_classes == 2 else n_classes
        sw_sum = float(n if sw is None else np.sum(sw, dtype=np.float64))
        l2 = 0.0 if math.isinf(C) else 1.0 / (C * sw_sum)

        # parameters: W (d, k) flattened, then b (k,) when fitted; scipy works in float64
        n_params = d * k + (k if fit_intercept else 0)
        theta0 = np.zeros(n_params)
        same_problem = previous is not None and previous[0].shape == (k, d)
        if same_problem and np.array_equal(previous[2], self.classes_):
            theta0[: d * k] = previous[0].T.ravel()
            if fit_intercept:
                theta0[d * k :] = previous[1]
        zero_b = np.zeros(k, dtype)

        if k == 1:
            target = y_idx.astype(dtype)

            def objective(theta):
                # the parameters are converted to X's dtype; X itself never is
                w = theta[:d].astype(dtype)
                b = float(theta[d]) if fit_intercept else 0.0
                loss, dw, db = logistic_loss_grad(X, w, b, target, l2=l2, sample_weight=sw)
                grad = np.empty(n_params)
                grad[:d] = dw
                if fit_intercept:
                    grad[d] = db
                return loss, grad

        else:

            def objective(theta):
                W = theta[: d * k].reshape(d, k).astype(dtype)
                b = theta[d * k :].astype(dtype) if fit_intercept else zero_b
                loss, dW, db = softmax_cross_entropy_grad(X, W, b, y_idx, l2=l2, sample_weight=sw)
                grad = np.empty(n_params)
                grad[: d * k] = dW.ravel()
                if fit_intercept:
                    grad[d * k :] = db
                return loss, grad

        callback = None
        if verbose >= 2:
            iteration = [0]

            def callback(intermediate_result):
                iteration[0] += 1
                print(f"L-BFGS iteration {iteration[0]}: loss {intermediate_result.fun:.6g}")

        # scikit-learn's settings, so that both stop at the same point
        result = minimize(
            objective,
            theta0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxiter": max_iter,
                "maxls": 50,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        n_iter = min(int(result.nit), max_iter)
        if result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {n_iter} iteration(s) (status={result.status}): "
                f"{result.message}. {_LBFGS_HINT}",
                ConvergenceWarning,
                stacklevel=2,
            )
        if verbose:
            print(f"L-BFGS: {n_iter} iterations, loss {result.fun:.6g}, {result.message}")
        theta = result.x
        self.coef_ = np.ascontiguousarray(theta[: d * k].reshape(d, k).T, dtype=dtype)
        self.intercept_ = (theta[d * k :] if fit_intercept else np.zeros(k)).astype(dtype)
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self


# ---------------------------------------------------------------------------
# SoftmaxRegression


#: learning rates of ``learning_rate="auto"``, tuned for minibatch softmax
#: regression on data scaled to about [0, 1]; other learners use their own defaults
_AUTO_LEARNING_RATE = {"sgd": 0.5, "adam": 0.003}
#: the schedule of ``schedule="auto"``: halve the learning rate every epoch
_AUTO_SCHEDULE = {"kind": "exponential", "gamma": 0.5}


class SoftmaxRegression(_LinearClassifier):
    r"""Softmax (multinomial logistic) regression trained by minibatch gradient descent.

    The model is ``P = softmax(X W + b)`` with the mean cross-entropy plus
    ``0.5 * l2 * ||W||^2`` as the loss, trained for ``max_epochs`` passes over
    shuffled minibatches with a learner from :mod:`fastsoftmax.learners`.  The
    loop is per minibatch, each minibatch one fused kernel call, never per
    sample.  float32 data is trained in float32, and uint8 pixel arrays are
    read as they are (0..255; scale them, e.g. ``X / 255``, for the default
    learning rates).

    Parameters
    ----------
    optimizer : str or Learner, default="sgd"
        ``"sgd"``, ``"momentum"``, ``"nesterov"``, ``"adagrad"``,
        ``"adadelta"``, ``"rmsprop"``, ``"adam"`` or a
        :class:`~fastsoftmax.learners.Learner` instance (copied, never
        modified).
    learning_rate : float or "auto", default="auto"
        Base learning rate.  ``"auto"``: 0.5 for SGD, 0.003 for Adam, the
        learner's own default for the others (an instance keeps its rate).
    schedule : str, dict, Schedule, None or "auto", default="auto"
        Per-epoch learning-rate schedule (see
        :func:`fastsoftmax.learners.get_schedule`; ``None`` is constant).
        ``"auto"``: the rate halves every epoch (``ExponentialDecay(0.5)``),
        except that an optimizer instance keeps its own schedule.
    batch_size : int, default=32
        Minibatch size (the last minibatch of an epoch may be smaller).
    max_epochs : int, default=5
        Number of passes over the training data.  With the default halving
        schedule later epochs change little: five reach about 92.4% test
        accuracy on MNIST (pixels / 255).
    shuffle : bool, default=True
        Visit the samples in a new random order every epoch.
    random_state : int, numpy Generator/RandomState or None, default=None
        Seed of the shuffling and of the validation split: the same seed
        gives the same model.
    l2 : float, default=0.0
        L2 penalty on the weights (not on the intercepts).
    fit_intercept : bool, default=True
        Learn the intercepts.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (or use
        ``validation_data``), stop when the validation loss has not improved
        by ``tol`` for ``n_iter_no_change`` epochs, and restore the weights of
        the best epoch.
    validation_fraction : float, default=0.1
        Fraction of the training data held out for early stopping, in (0, 1).
    n_iter_no_change : int, default=5
        Epochs without improvement before stopping early.
    tol : float, default=1e-4
        Minimum decrease of the validation loss that counts as improvement.
    class_weight : dict, "balanced" or None, default=None
        Weights ``{label: weight}`` multiplied into the sample weights.
    warm_start : bool, default=False
        Start ``fit`` from the previous coefficients.
    verbose : int, default=0
        0: silent; 1: a progress bar per epoch with the loss (tqdm);
        2: one line per epoch with the training loss, validation loss and
        error and the epoch's time.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        For two classes one row, the difference of the two softmax rows (the
        log-odds of ``classes_[1]``), as in scikit-learn.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : int
        Number of epochs run by the last ``fit`` (or ``partial_fit``) call.
    n_features_in_ : int
    history_ : dict of lists
        Per epoch: ``"train_loss"`` (mean minibatch loss), ``"val_loss"`` and
        ``"val_error"`` (NaN without validation data) and ``"epoch_time"``
        (seconds).
    best_epoch_ : int
        Index (into the ``history_`` lists) of the epoch with the lowest
        validation loss (training loss without validation data).

    Notes
    -----
    With a built-in learner, an epoch is one call of the backend's compiled
    whole-epoch kernel when it has one (the numba kernel is used under the
    Cython backend if that has none); otherwise the :class:`~fastsoftmax.Trainer`
    runs one fused kernel call per minibatch.  Both give the same model.

    With ``sample_weight`` or ``class_weight`` the data term of each
    minibatch is ``sum_i s_i l_i / (batch_size * mean(s))``, an unbiased
    estimate of scikit-learn's weighted objective (so a weight of 2 acts like
    a duplicated sample), rather than the minibatch's weighted mean.

    See Also
    --------
    LogisticRegression : full-batch L-BFGS, scikit-learn's objective.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import SoftmaxRegression
    >>> rng = np.random.default_rng(0)
    >>> centers = np.array([[0.0, 2.0], [2.0, 0.0], [-2.0, -2.0]], dtype=np.float32)
    >>> y = rng.integers(0, 3, size=300)
    >>> X = centers[y] + rng.standard_normal((300, 2)).astype(np.float32)
    >>> clf = SoftmaxRegression(max_epochs=5, random_state=0).fit(X, y)
    >>> clf.coef_.shape, clf.coef_.dtype, len(clf.history_["train_loss"])
    ((3, 2), dtype('float32'), 5)
    >>> clf.score(X, y) > 0.9
    True
    """

    _uint8_dtype = np.float32  # pixels train in float32, the fast path

    def __init__(
        self,
        optimizer="sgd",
        *,
        learning_rate="auto",
        schedule="auto",
        batch_size=32,
        max_epochs=5,
        shuffle=True,
        random_state=None,
        l2=0.0,
        fit_intercept=True,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        tol=1e-4,
        class_weight=None,
        warm_start=False,
        verbose=0,
    ):
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.schedule = schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.shuffle = shuffle
        self.random_state = random_state
        self.l2 = l2
        self.fit_intercept = fit_intercept
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.warm_start = warm_start
        self.verbose = verbose

    # -- pieces -----------------------------------------------------------------

    def _make_learner(self):
        from .learners import Learner, get_learner, get_schedule

        optimizer = self.optimizer
        auto_lr = isinstance(self.learning_rate, str) and self.learning_rate == "auto"
        auto_schedule = isinstance(self.schedule, str) and self.schedule == "auto"
        lr = None if auto_lr else _check_real("learning_rate", self.learning_rate, low_open=True)
        if isinstance(optimizer, Learner):
            # a copy (of the user's class, which may be a subclass) with a fresh state;
            # the user's instance is never modified
            learner = copy.deepcopy(optimizer)
            learner.reset()
            if lr is not None:
                learner.learning_rate = lr
            if not auto_schedule:
                learner.schedule = get_schedule(self.schedule)
            return learner
        if not isinstance(optimizer, str):
            raise TypeError(
                "optimizer must be a learner name or a Learner instance, "
                f"got {type(optimizer).__name__}"
            )
        kind = optimizer.strip().lower()
        config = {"kind": kind}
        if lr is not None:
            config["learning_rate"] = lr
        elif kind in _AUTO_LEARNING_RATE:
            config["learning_rate"] = _AUTO_LEARNING_RATE[kind]
        config["schedule"] = dict(_AUTO_SCHEDULE) if auto_schedule else self.schedule
        return get_learner(**config)

    def _rng(self):
        rs = self.random_state
        if isinstance(rs, (np.random.Generator, np.random.RandomState)):
            return rs
        if rs is not None:
            _check_int("random_state", rs, 0)
        return np.random.default_rng(rs)

    def _new_model(self, n_features, dtype):
        from .trainer import SoftmaxModel

        return SoftmaxModel(
            n_features,
            max(2, self.classes_.shape[0]),
            dtype=dtype,
            l2=check_l2(self.l2),
            fit_intercept=_check_bool("fit_intercept", self.fit_intercept),
        )

    def _load_params(self, model):
        """Set the model's ``W, b`` from ``coef_, intercept_`` (two classes: antisymmetric)."""
        coef, intercept = self.coef_, self.intercept_
        if coef.shape[0] == 1:
            # the softmax gradient of a two-class model is antisymmetric, so training from
            # zero keeps W = [-c/2, c/2]: this is the exact training state, not an approximation
            half = coef[0] / 2
            model.W[...] = np.column_stack([-half, half])
            model.b[...] = [-intercept[0] / 2, intercept[0] / 2]
        else:
            model.W[...] = coef.T
            model.b[...] = intercept

    def _store_params(self, model):
        W, b = model.W, model.b if model.fit_intercept else np.zeros_like(model.b)
        if W.shape[1] == 2:
            self.coef_ = (W[:, 1] - W[:, 0])[None, :].copy()
            self.intercept_ = np.array([b[1] - b[0]], dtype=W.dtype)
        else:
            self.coef_ = np.ascontiguousarray(W.T)
            self.intercept_ = b.copy()

    def _encode_known(self, y, name="y"):
        """Indices of labels ``y`` in ``classes_``; unknown labels raise."""
        idx = np.searchsorted(self.classes_, y)
        idx = np.clip(idx, 0, self.classes_.shape[0] - 1)
        unknown = self.classes_[idx] != y
        if np.any(unknown):
            raise ValueError(
                f"{name} contains label {_plain(y[unknown][0])!r}, which is not in classes_ "
                f"{self.classes_.tolist()}"
            )
        return np.ascontiguousarray(idx, dtype=np.intp)

    def _check_training_params(self):
        return dict(
            batch_size=_check_int("batch_size", self.batch_size, 1),
            max_epochs=_check_int("max_epochs", self.max_epochs, 1),
            shuffle=_check_bool("shuffle", self.shuffle),
            early_stopping=_check_bool("early_stopping", self.early_stopping),
            validation_fraction=_check_real(
                "validation_fraction", self.validation_fraction, low_open=True, high=1.0
            ),
            n_iter_no_change=_check_int("n_iter_no_change", self.n_iter_no_change, 1),
            tol=_check_real("tol", self.tol),
            verbose=_check_verbose(self.verbose),
            warm_start=_check_bool("warm_start", self.warm_start),
        )

    # -- fitting ------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, validation_data=None):
        """Train for ``max_epochs`` epochs (fewer with early stopping).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            float32, float64 or uint8 (read as 0..255, not scaled).
        y : array_like of shape (n_samples,)
            Class labels (ints, strings, ...).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights; each minibatch loss is a weighted mean.
        validation_data : tuple (X_val, y_val), optional
            Held-out data evaluated after every epoch (``history_``); with
            ``early_stopping`` it is the data monitored instead of a split of
            the training data.

        Returns
        -------
        self : SoftmaxRegression
        """
        opts = self._check_training_params()
        # warm start: _load_params reads coef_ and intercept_, which stay until _store_params
        previous = None
        if opts["warm_start"] and hasattr(self, "coef_"):
            previous = (self.classes_, self.n_features_in_)
        X, y_idx, sw, dtype = self._fit_data(X, y, sample_weight)
        rng = self._rng()

        X_val = y_val = None
        if validation_data is not None:
            try:
                X_val, y_val = validation_data
            except (TypeError, ValueError):
                raise ValueError("validation_data must be a pair (X_val, y_val)") from None
            X_val = self._validate_X(X_val, reset=False)
            y_val = self._encode_known(_check_y(y_val, X_val.shape[0]), "validation_data's y")
        elif opts["early_stopping"]:
            n = X.shape[0]
            n_val = int(round(opts["validation_fraction"] * n))
            if n_val < 1 or n_val >= n:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} of {n} samples leaves "
                    f"{n_val} for validation and {n - n_val} for training; both need at least one"
                )
            order = rng.permutation(n)
            val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
            X_val, y_val = X[val], y_idx[val]
            X, y_idx = X[train], y_idx[train]
            sw = None if sw is None else sw[train]

        model = self._new_model(X.shape[1], dtype)
        # like LogisticRegression: other classes or features start again from zero
        if (
            previous is not None
            and np.array_equal(previous[0], self.classes_)
            and previous[1] == self.n_features_in_
        ):
            self._load_params(model)
        self._learner = self._make_learner()
        self.history_ = _new_history()
        self._run_epochs(model, X, y_idx, sw, X_val, y_val, opts, rng, opts["max_epochs"])
        return self

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train for one epoch on ``(X, y)``, continuing from the current state.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,)
        classes : array_like of shape (n_classes,), optional
            All the labels that will ever appear; required on the first call
            (and, if given later, equal to ``classes_``).
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        self : SoftmaxRegression
        """
        opts = self._check_training_params()
        first = not hasattr(self, "_learner")
        if first:
            if classes is None:
                raise ValueError(
                    "classes must be given on the first call to partial_fit "
                    "(all the labels that will appear)"
                )
            classes = np.asarray(classes)
            if classes.ndim != 1:
                raise ValueError(
                    f"classes must be a 1-D array of labels, got shape {classes.shape}"
                )
            self.classes_, _ = _encode_labels(classes, self)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={np.unique(classes).tolist()} differs from "
                f"classes_={self.classes_.tolist()} of the first partial_fit call"
            )
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' needs all the data; pass a dict to partial_fit, "
                "or use fit"
            )
        X = self._validate_X(X, reset=first)
        y_idx = self._encode_known(_check_y(y, X.shape[0]))
        dtype = self._param_dtype(X) if first else self.coef_.dtype
        sw = self._weights(y_idx, sample_weight, X.shape[0], dtype)
        model = self._new_model(X.shape[1], dtype)
        if first:
            self._learner = self._make_learner()
            self.history_ = _new_history()
        else:
            self._load_params(model)
        opts["early_stopping"] = False
        self._run_epochs(model, X, y_idx, sw, None, None, opts, self._rng(), 1)
        return self

    def _run_epochs(self, model, X, y_idx, sw, X_val, y_val, opts, rng, n_epochs):
        """The epoch loop: train, evaluate, record, report, stop early."""
        from .trainer import Trainer

        trainer = Trainer(model, self._learner, track_train_error=False)
        X = np.ascontiguousarray(X)  # one copy at most, not one per epoch
        history = self.history_
        first_epoch = len(history["train_loss"])
        monitor = history["val_loss"] if X_val is not None else history["train_loss"]
        best_loss, best_params, stall = min(monitor, default=math.inf), None, 0
        n_batches = -(-X.shape[0] // opts["batch_size"])
        epochs_run = 0
        for epoch in range(first_epoch, first_epoch + n_epochs):
            start = time.perf_counter()
            trainer.epoch = epoch  # the learning-rate schedule is per epoch
            bar = None
            if opts["verbose"] == 1:
                from tqdm.auto import tqdm

                bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}", unit="batch", leave=True)
            train_loss = self._train_epoch(trainer, X, y_idx, sw, opts, rng, bar)
            if not math.isfinite(train_loss):
                raise ValueError(
                    f"the training loss became {train_loss} in epoch {epoch + 1}: "
                    "the learning rate is too large for this data. Lower learning_rate or "
                    "scale X (e.g. pixels / 255, or sklearn.preprocessing.StandardScaler)."
                )
            val_loss = val_error = math.nan
            if X_val is not None:
                val_loss, val_error = trainer.evaluate(X_val, y_val, batch_size=65536)
            elapsed = time.perf_counter() - start
            history["train_loss"].append(float(train_loss))
            history["val_loss"].append(float(val_loss))
            history["val_error"].append(float(val_error))
            history["epoch_time"].append(float(elapsed))
            epochs_run += 1
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.4f}")
                bar.close()
            elif opts["verbose"] >= 2:
                validation = "no validation data"
                if X_val is not None:
                    validation = f"val loss {val_loss:.4f}, val error {val_error:.2%}"
                line = f"epoch {epoch + 1}: train loss {train_loss:.4f}, {validation}"
                print(f"{line}, {elapsed:.2f} s")
            # as scikit-learn: improvement means beating the best by tol; the best is the minimum
            current = monitor[-1]
            stall = stall + 1 if current > best_loss - opts["tol"] else 0
            if current < best_loss:
                best_loss = current
                if opts["early_stopping"]:
                    best_params = [model.W.copy(), model.b.copy()]
            if opts["early_stopping"] and stall >= opts["n_iter_no_change"]:
                if opts["verbose"]:
                    print(f"early stopping: the validation loss stalled for {stall} epochs")
                break
        if best_params is not None:  # restore the best epoch's weights
            model.W[...], model.b[...] = best_params
        finite = np.isfinite(monitor).any()
        self.best_epoch_ = int(np.nanargmin(monitor)) if finite else len(monitor) - 1
        self.n_iter_ = epochs_run
        self._store_params(model)

    def _train_epoch(self, trainer, X, y_idx, sw, opts, rng, bar):
        """One pass over shuffled minibatches; returns the mean minibatch loss."""
        n, batch_size = X.shape[0], opts["batch_size"]
        order = rng.permutation(n) if opts["shuffle"] else None
        mean_weight = None if sw is None else float(np.mean(sw, dtype=np.float64))
        kernel = _epoch_kernel(trainer, X)
        if kernel is not None:
            return _compiled_epoch(
                kernel, trainer, X, y_idx, sw, mean_weight, order, batch_size, bar
            )
        total = 0.0
        report_every = _report_every(n, batch_size, bar)
        for i, begin in enumerate(range(0, n, batch_size), 1):
            stop = begin + batch_size
            rows = slice(begin, stop) if order is None else order[begin:stop]
            yb = y_idx[rows]
            if sw is None:
                loss = trainer.train_minibatch(X[rows], yb)
            else:
                loss = _weighted_step(trainer, X[rows], yb, sw[rows], mean_weight)
            total += loss * yb.shape[0]
            if bar is not None and (i % report_every == 0 or stop >= n):
                _report(bar, i, total / min(stop, n))
        return total / n


def _new_history():
    """An empty ``history_``: one list a key, one entry an epoch."""
    return {"train_loss": [], "val_loss": [], "val_error": [], "epoch_time": []}


def _epoch_kernel(trainer, X):
    """The compiled whole-epoch kernel to train with, or None for the Python minibatch loop.

    The kernel implements the built-in learners only (not subclasses).  It is taken
    from the current backend; a Cython build without ``train_epoch`` borrows numba's,
    since the per-minibatch Python overhead would otherwise be the bottleneck.
    """
    from ._backends import get_backend, get_module
    from .learners import LEARNERS

    learner, model = trainer.learner, trainer.model
    if type(learner) is not LEARNERS.get(learner.kind):
        return None
    if X.dtype != np.uint8 and X.dtype != model.W.dtype:
        return None  # e.g. partial_fit with float64 data on a float32 model
    module = get_module()
    if not hasattr(module, "train_epoch") and get_backend() == "cython":
        try:
            module = get_module("numba")
        except ImportError:
            return None
    return getattr(module, "train_epoch", None)


def _compiled_epoch(kernel, trainer, X, y_idx, sw, mean_weight, order, batch_size, bar):
    """Run an epoch with the compiled kernel (in a few chunks when a progress bar shows)."""
    model, learner = trainer.model, trainer.learner
    params = model.parameters()
    if learner.state is None:
        learner.init_state(params)
    n = X.shape[0]
    if order is None:
        order = np.arange(n)
    n_batches = -(-n // batch_size)
    # whole minibatches per call, so chunking does not change the minibatches
    per_call = _report_every(n, batch_size, bar) if bar is not None else n_batches
    total = 0.0
    done = 0
    for first in range(0, n_batches, per_call):
        rows = order[first * batch_size : (first + per_call) * batch_size]
        loss, learner.t = kernel(
            X, y_idx, sw, model.W, model.b, rows, batch_size, model.l2, model.fit_intercept,
            learner.kind, learner.hyperparameters(), learner.lr_at(trainer.epoch), learner.t,
            learner.state, weight_mean=mean_weight,
        )  # fmt: skip
        total += loss * rows.shape[0]
        done += rows.shape[0]
        if bar is not None:
            _report(bar, min(first + per_call, n_batches), total / done)
    return total / n


def _report_every(n, batch_size, bar):
    """Minibatches between two progress-bar updates: about 50 updates per epoch."""
    return 1 if bar is None else max(1, -(-n // batch_size) // 50)


def _report(bar, batches_done, running_loss):
    bar.update(batches_done - bar.n)
    bar.set_postfix(loss=f"{running_loss:.4f}", refresh=False)


def _weighted_step(trainer, X, y, sample_weight, mean_weight):
    """A learner step on a weighted minibatch, scaled to estimate the full weighted objective.

    The kernel's loss is the weighted mean over the minibatch, ``sum s_i l_i / sum s_i``;
    a minibatch of low-weight samples would then count as much as any other.  Scaling
    the data term by ``sum s_i / (len(batch) * mean weight)`` makes it an unbiased
    estimate of scikit-learn's objective ``sum_all s_i l_i / sum_all s_i``, so that
    ``class_weight`` and ``sample_weight`` act as they do in scikit-learn (a weight of 2
    counts like a duplicated sample).
    """
    model = trainer.model
    loss, dW, db = model.loss_grad(X, y, sample_weight)
    factor = float(np.sum(sample_weight, dtype=np.float64)) / (y.shape[0] * mean_weight)
    penalty = 0.0
    if model.l2:  # the penalty is not a data term: keep it unscaled
        l2 = dW.dtype.type(model.l2)
        dW -= l2 * model.W
        penalty = model._l2_penalty()
    dW *= dW.dtype.type(factor)
    if model.l2:
        dW += l2 * model.W
    db *= db.dtype.type(factor)
    params = model.parameters()
    trainer.learner.step(params, [dW, db][: len(params)], epoch=trainer.epoch)
    return factor * (loss - penalty) + penalty
