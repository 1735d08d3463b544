"""Logistic regression by full-batch L-BFGS: :class:`LogisticRegression`."""

from __future__ import annotations

import math
import warnings

import numpy as np

from .. import _objective
from ..persistence import register
from .._validation import check_bool, check_int, check_real, check_verbose
from ._base import _LinearClassifier
from ._compat import ConvergenceWarning

__all__ = ["LogisticRegression"]


# ---------------------------------------------------------------------------
# LogisticRegression


_LBFGS_HINT = (
    "Increase the number of iterations (max_iter) or scale the data, e.g. with "
    "sklearn.preprocessing.StandardScaler, or pixels / 255."
)


@register
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
        C = check_real("C", self.C, low_open=True, allow_inf=True)
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
        tol = check_real("tol", self.tol)
        max_iter = check_int("max_iter", self.max_iter, 0)
        fit_intercept = check_bool("fit_intercept", self.fit_intercept)
        warm_start = check_bool("warm_start", self.warm_start)
        verbose = check_verbose(self.verbose)
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
        l2 = 0.0 if math.isinf(C) else 1.0 / (C * sw_sum) if C * sw_sum > 0 else math.inf
        if not l2 <= float(np.finfo(dtype).max):
            raise ValueError(
                f"C={C!r} is too small: the penalty strength 1 / (C * sum of sample weights) "
                f"= 1 / ({C!r} * {sw_sum!r}) overflows {np.dtype(dtype).name}; use a larger C"
            )

        # data checked once (C-contiguous, or CSR): the objective calls the non-validating _objective
        # parameters: coef_ (k, d) flattened, then the intercept (k,) when fitted, so that
        # neither the objective nor the warm start transposes; scipy works in float64
        n_coef = k * d
        n_params = n_coef + (k if fit_intercept else 0)
        theta0 = np.zeros(n_params)
        same_problem = previous is not None and previous[0].shape == (k, d)
        if same_problem and np.array_equal(previous[2], self.classes_):
            theta0[:n_coef] = previous[0].ravel()
            if fit_intercept:
                theta0[n_coef:] = previous[1]

        if k == 1:
            target = y_idx.astype(dtype)

            def loss_grad(theta, coef):
                # the binary model: coef (d,) and a scalar intercept, kept in float64
                intercept = float(theta[n_coef]) if fit_intercept else None
                return _objective.logistic_loss_grad(X, coef[0], intercept, target, sw, l2)

        else:

            def loss_grad(theta, coef):
                intercept = theta[n_coef:].astype(dtype, copy=False) if fit_intercept else None
                return _objective.softmax_loss_grad(X, coef, intercept, y_idx, sw, l2)

        def objective(theta):
            # the parameters are converted to X's dtype; X itself never is
            coef = theta[:n_coef].reshape(k, d).astype(dtype, copy=False)
            loss, coef_grad, intercept_grad = loss_grad(theta, coef)
            grad = np.empty(n_params)
            grad[:n_coef] = coef_grad.reshape(-1)
            if fit_intercept:
                grad[n_coef:] = intercept_grad
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
        self.coef_ = theta[:n_coef].reshape(k, d).astype(dtype)
        self.intercept_ = (theta[n_coef:] if fit_intercept else np.zeros(k)).astype(dtype)
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self
