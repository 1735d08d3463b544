"""Logistic regression by full-batch L-BFGS: :class:`LogisticRegression`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .. import _dask, _newton, _objective
from .._solvers import SolverResult, diagonal_preconditioner, minimize_l1, minimize_smooth
from .._validation import check_bool, check_int, check_real, check_verbose
from ..persistence import register
from ._base import _dense_coef, _LinearClassifier, _SparseCoefMixin, check_n_jobs
from ._base import kernel_threads
from ._compat import ConvergenceWarning

__all__ = ["LogisticRegression"]


# ---------------------------------------------------------------------------
# the penalty and solver parameters, read as scikit-learn 1.9 reads them

#: solvers of the smooth (L2 or no penalty) problem: all reach its one optimum; "lbfgs" and
#: "sag" run L-BFGS, the Newton solvers are scikit-learn's (fastsoftmax._newton); "saga" also
#: takes the L1 and elastic-net penalties (L-BFGS-B on the split)
_SMOOTH_SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky", "sag")
_NEWTON_SOLVERS = {
    "newton-cholesky": _newton.minimize_newton_cholesky,
    "newton-cg": _newton.minimize_newton_cg,
}
_SOLVERS = _SMOOTH_SOLVERS + ("saga", "liblinear")

_PENALTY_DEPRECATION = (
    "'penalty' was deprecated in version 1.8 and will be removed in 1.10. To avoid this "
    "warning, leave 'penalty' set to its default value and use 'l1_ratio' or 'C' instead. "
    "Use l1_ratio=0 instead of penalty='l2', l1_ratio=1 instead of penalty='l1', l1_ratio "
    "set to a float between 0 and 1 instead of penalty='elasticnet', and C=np.inf instead "
    "of penalty=None."
)


def _resolve_penalty(
    penalty: str | None, C: float, l1_ratio: float | None, solver: str, dual: bool
) -> tuple[str | None, float, float]:
    """``(penalty, C, l1_ratio)`` as scikit-learn 1.9's ``LogisticRegression.fit`` reads them.

    ``penalty`` is deprecated in favour of ``l1_ratio`` (0: L2, 1: L1, between:
    elastic-net) and ``C=inf`` (no penalty); the same warnings and errors as
    scikit-learn.  The returned ``l1_ratio`` is the share of L1 in the penalty
    actually applied (0 for ``penalty="l2"``, 1 for ``"l1"``) and ``C`` is
    ``inf`` when there is no penalty.  The solver is checked at the point
    where scikit-learn checks it, so that the warnings come in the same order.
    """
    resolved: str | None
    if penalty not in ("deprecated", "l1", "l2", "elasticnet", None):
        raise ValueError(
            "The 'penalty' parameter of LogisticRegression must be a str among "
            f"{{'elasticnet', 'l1', 'l2'}} or None. Got {penalty!r} instead."
        )
    C = check_real("C", C, low_open=True, allow_inf=True)
    if l1_ratio is not None:
        l1_ratio = check_real("l1_ratio", l1_ratio, high=1.0)
    if penalty == "deprecated":
        if l1_ratio == 0 or l1_ratio is None:
            resolved = "l2"
            if l1_ratio is None:
                warnings.warn(
                    "'l1_ratio=None' was deprecated in version 1.8 and will trigger an error "
                    "in 1.10. Use 0<=l1_ratio<=1 instead.",
                    FutureWarning,
                    stacklevel=4,
                )
        elif l1_ratio == 1:
            resolved = "l1"
        else:
            resolved = "elasticnet"
        if math.isinf(C):
            resolved = None
    else:
        resolved = penalty
        warnings.warn(_PENALTY_DEPRECATION, FutureWarning, stacklevel=4)
    _check_solver(solver, resolved, dual)
    if resolved != "elasticnet" and l1_ratio is not None and 0 < l1_ratio < 1:
        warnings.warn(
            f"l1_ratio parameter is only used when penalty is 'elasticnet'. Got "
            f"(penalty={resolved})",
            UserWarning,
            stacklevel=4,
        )
    if (penalty == "l2" and l1_ratio != 0) or (penalty == "l1" and l1_ratio != 1):
        warnings.warn(
            f"Inconsistent values: penalty={penalty} with l1_ratio={l1_ratio}. penalty is "
            "deprecated. Please use l1_ratio only.",
            UserWarning,
            stacklevel=4,
        )
    if resolved == "elasticnet" and l1_ratio is None:
        raise ValueError("l1_ratio must be specified when penalty is elasticnet.")
    if penalty is None:
        if C != 1.0:
            warnings.warn(
                "Setting penalty=None will ignore the C and l1_ratio parameters",
                UserWarning,
                stacklevel=4,
            )
        return None, math.inf, 0.0
    share = {"l1": 1.0, "l2": 0.0, None: 0.0}.get(resolved, l1_ratio)
    # share is None only for an elastic-net without l1_ratio, refused above
    return resolved, C, share  # type: ignore[return-value]


def _check_solver(solver: str, penalty: str | None, dual: bool) -> None:
    """scikit-learn's solver/penalty/dual compatibility rules, with its messages."""
    if solver not in _SOLVERS:
        raise ValueError(
            "The 'solver' parameter of LogisticRegression must be a str among "
            f"{set(_SOLVERS)}. Got {solver!r} instead."
        )
    if solver not in ("liblinear", "saga") and penalty not in ("l2", None):
        raise ValueError(
            f"Solver {solver} supports only 'l2' or None penalties, got {penalty} penalty."
        )
    if solver != "liblinear" and dual:
        raise ValueError(f"Solver {solver} supports only dual=False, got dual={dual}")
    if penalty == "elasticnet" and solver != "saga":
        raise ValueError(f"Only 'saga' solver supports elasticnet penalty, got solver={solver}.")
    if solver == "liblinear":
        # liblinear solves a different problem (one-vs-rest, penalised intercept)
        raise ValueError(
            "solver='liblinear' is not implemented by fastsoftmax; use solver='saga' (the "
            "multinomial problem with any penalty) or scikit-learn"
        )


# ---------------------------------------------------------------------------
# LogisticRegression


_LBFGS_HINT = (
    "Increase the number of iterations (max_iter) or scale the data, e.g. with "
    "sklearn.preprocessing.StandardScaler, or pixels / 255."
)


_Self = TypeVar("_Self", bound="LogisticRegression")


@register
class LogisticRegression(_SparseCoefMixin, _LinearClassifier):
    r"""Logistic regression (L2, L1, elastic-net or no penalty) by full-batch L-BFGS on fused kernels.

    A drop-in replacement for :class:`sklearn.linear_model.LogisticRegression`
    (scikit-learn 1.9's signature): it minimises the same objective,

    .. math::
        \frac{1}{\sum_i s_i} \sum_i s_i \, \ell(y_i, x_i W + b)
        + \frac{1}{C \sum_i s_i} \Big( r \|W\|_1 + \frac{1 - r}{2} \|W\|^2 \Big),

    with :math:`\ell` the sigmoid loss for two classes and the multinomial
    (softmax) cross-entropy for three or more, :math:`s_i` the sample weights
    times the class weights, :math:`r` the ``l1_ratio`` and the intercept not
    penalised.  Without the L1 term the solver is
    :func:`scipy.optimize.minimize` (L-BFGS-B) with scikit-learn's settings,
    so the coefficients agree with scikit-learn's to within the tolerance
    (or, for ``solver="newton-cholesky"`` / ``"newton-cg"``, scikit-learn's
    Newton solvers on the same objective); with it, L-BFGS-B on the split
    ``W = P - N``, ``P, N >= 0``, which ends on the exact zeros of the L1
    optimum (the optimum of scikit-learn's ``saga``).  float32 data is
    trained in float32 (``coef_`` is float32).

    Parameters
    ----------
    penalty : {"l1", "l2", "elasticnet", None}, default="deprecated"
        Deprecated, as in scikit-learn 1.8+: use ``l1_ratio`` (0 for "l2", 1
        for "l1", between for "elasticnet") and ``C=numpy.inf`` (None)
        instead; setting it warns with scikit-learn's ``FutureWarning``.
    C : float, default=1.0
        Inverse regularisation strength, > 0 (``numpy.inf``: no penalty).
    l1_ratio : float in [0, 1], default=0.0
        The share of L1 in the penalty: 0 is L2, 1 is L1, between is
        elastic-net.  A positive ``l1_ratio`` needs ``solver="saga"`` (as in
        scikit-learn).
    dual : bool, default=False
        Only ``False``: the dual formulation is liblinear's; ``True`` raises
        scikit-learn's error.
    tol : float, default=1e-4
        Stop when the largest (projected) gradient component is below ``tol``
        (L-BFGS-B's ``gtol``).
    fit_intercept : bool, default=True
        Learn an intercept (not penalised).
    intercept_scaling : float, default=1
        Accepted (> 0) for compatibility; only scikit-learn's liblinear uses it.
    class_weight : dict, "balanced" or None, default=None
        Weights ``{label: weight}`` multiplied into the sample weights;
        ``"balanced"`` uses ``n_samples / (n_classes * count(label))``.
    random_state : int, RandomState instance or None, default=None
        Unused by L-BFGS (deterministic); kept for compatibility.
    solver : {"lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"}, default="lbfgs"
        All solve the same problem, to its one optimum.  "lbfgs" and "sag"
        run L-BFGS; "saga" too, and also takes the L1 and elastic-net
        penalties.  "newton-cholesky" and "newton-cg" are scikit-learn's
        Newton solvers (the same steps, stopping rules, ``n_iter_`` and
        warnings, including newton-cholesky's hand-over to L-BFGS on a
        singular Hessian): newton-cholesky forms the full Hessian, of
        ``(n_classes * (n_features + 1))**2`` float64 entries, at a cost of
        about ``n_samples * n_features**2 * n_classes**2 / 4`` multiply-adds
        per iteration, so it suits a moderate ``n_features * n_classes``;
        newton-cg only takes Hessian-vector products (two passes over
        ``X`` each).  "liblinear" (one-vs-rest, penalised intercept) is not
        implemented.
    max_iter : int, default=100
        Maximum number of iterations of the solver (Newton steps for the
        Newton solvers).
    verbose : int, default=0
        If positive, print the solver's result (and each iteration for >= 2).
    warm_start : bool, default=False
        Start from the previous solution when refitting.
    n_jobs : int or None, default=None
        Threads of the kernels during ``fit`` (as
        :func:`fastsoftmax.set_num_threads`: -1 is all cores; None keeps the
        current setting); the previous setting is restored after the fit.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted.
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Coefficients; one row (for ``classes_[1]``) for two classes.
    intercept_ : ndarray of shape (1,) or (n_classes,)
    n_iter_ : ndarray of shape (1,)
        Number of iterations of the solver, as scikit-learn counts them.
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
        penalty: str | None = "deprecated",
        *,
        C: float = 1.0,
        l1_ratio: float | None = 0.0,
        dual: bool = False,
        tol: float = 1e-4,
        fit_intercept: bool = True,
        intercept_scaling: float = 1,
        class_weight: dict[Any, float] | str | None = None,
        random_state: int | np.random.RandomState | np.random.Generator | None = None,
        solver: str = "lbfgs",
        max_iter: int = 100,
        verbose: int = 0,
        warm_start: bool = False,
        n_jobs: int | None = None,
    ) -> None:
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs

    def _penalty_strengths(self) -> tuple[float, float]:
        """``(l1, l2)``: the penalty per unit of sample weight, as scikit-learn 1.9 reads it.

        Multiply by ``1 / sum(sample_weight)`` to get the objective's strengths.
        """
        dual = check_bool("dual", self.dual)
        _, C, l1_ratio = _resolve_penalty(self.penalty, self.C, self.l1_ratio, self.solver, dual)
        if math.isinf(C):
            return 0.0, 0.0
        return l1_ratio / C, (1.0 - l1_ratio) / C

    def fit(
        self: _Self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
        *, persist: bool = False,
    ) -> _Self:
        """Fit the model by L-BFGS (with an L1 term: L-BFGS-B on the split coefficients).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
            float32, float64 or uint8 (read as 0..255, not scaled); other
            numeric dtypes are read as float64.
        y : array_like of shape (n_samples,)
            Class labels (any sortable hashable values: ints, strings, ...).
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative weights.
        persist : bool, default=False
            Dask input only (ignored for in-memory X): keep X's checked blocks
            in the cluster's memory for the duration of this fit, so that the
            solver's evaluations do not read X from its source again.  Only
            for data that fits in the workers' memory; an X the user persisted
            already is used where it lives either way.  A ``fit`` parameter,
            not an estimator parameter: it says how the data are held, not
            what model is fitted.

        Returns
        -------
        self : LogisticRegression
        """
        return self._fit_with_classes(X, y, sample_weight, None, persist=persist)

    def _fit_with_classes(
        self: _Self, X: Any, y: Any, sample_weight: Any, classes: NDArray[Any] | None,
        *, persist: bool = False,
    ) -> _Self:
        """``fit``; ``classes`` (sorted) fixes ``classes_``, as for LogisticRegressionCV's folds."""
        l1_unit, l2_unit = self._penalty_strengths()
        tol = check_real("tol", self.tol)
        max_iter = check_int("max_iter", self.max_iter, 0)
        fit_intercept = check_bool("fit_intercept", self.fit_intercept)
        check_real("intercept_scaling", self.intercept_scaling, low_open=True)  # liblinear's only
        warm_start = check_bool("warm_start", self.warm_start)
        verbose = check_verbose(self.verbose)
        n_threads = check_n_jobs(self.n_jobs)
        previous = None
        if warm_start and hasattr(self, "coef_"):
            previous = (_dense_coef(self.coef_), self.intercept_, self.classes_)
        with kernel_threads(n_threads):
            return self._fit(X, y, sample_weight, classes, l1_unit, l2_unit, tol, max_iter,
                             fit_intercept, verbose, previous, persist)  # fmt: skip

    def _fit(self: _Self, X: Any, y: Any, sample_weight: Any, classes: NDArray[Any] | None,
             l1_unit: float, l2_unit: float, tol: float, max_iter: int, fit_intercept: bool,
             verbose: int, previous: tuple[Any, Any, Any] | None,
             persist: bool = False) -> _Self:  # fmt: skip
        if _dask.is_dask_collection(X):  # the data term summed where the blocks live
            return _dask.fit_logistic(self, X, y, sample_weight, classes, l1_unit, l2_unit, tol,
                                      max_iter, fit_intercept, verbose, previous,
                                      persist=persist)  # fmt: skip
        X, y_idx, sw, dtype = self._fit_data(X, y, sample_weight, classes)
        n, d = X.shape
        n_classes = self.classes_.shape[0]
        k = 1 if n_classes == 2 else n_classes
        sw_sum = float(n if sw is None else np.sum(sw, dtype=np.float64))
        l1, l2 = self._penalties(l1_unit, l2_unit, sw_sum, dtype)

        # data checked once (C-contiguous, or CSR): the objective calls the non-validating _objective
        # parameters: coef_ (k, d) flattened, then the intercept (k,) when fitted, so that
        # neither the objective nor the warm start transposes; scipy works in float64
        n_coef = k * d
        n_params = n_coef + (k if fit_intercept else 0)
        theta0 = self._initial_theta(previous, k, d, fit_intercept)

        csr_buffers = None
        if k > 1 and not isinstance(X, np.ndarray) and self.solver not in _NEWTON_SOLVERS:
            # the kernels' (d, k) weights and gradient, and the gradient L-BFGS copies (the
            # Newton solvers keep theirs): fresh pages each evaluation would cost more than
            # the sparse data term
            csr_buffers = (np.empty((d, k), dtype), np.empty((d, k), dtype), np.empty(n_params))
        if k == 1:
            target = y_idx.astype(dtype)

            def loss_grad(theta: NDArray[np.float64], coef: NDArray[Any]) -> Any:
                # the binary model: coef (d,) and a scalar intercept, kept in float64
                intercept = float(theta[n_coef]) if fit_intercept else None
                return _objective.logistic_loss_grad(X, coef[0], intercept, target, sw, l2)

        else:

            def loss_grad(theta: NDArray[np.float64], coef: NDArray[Any]) -> Any:
                intercept = theta[n_coef:].astype(dtype, copy=False) if fit_intercept else None
                return _objective.softmax_loss_grad(X, coef, intercept, y_idx, sw, l2)

        def objective(theta: NDArray[np.float64]) -> tuple[Any, NDArray[np.float64]]:
            # the parameters are converted to X's dtype; X itself never is
            if csr_buffers is not None:  # CSR: the fused passes of the flat objective
                return _objective.softmax_loss_grad_flat_csr(
                    X, theta, k, fit_intercept, y_idx, sw, l2, *csr_buffers
                )
            coef = theta[:n_coef].reshape(k, d).astype(dtype, copy=False)
            loss, coef_grad, intercept_grad = loss_grad(theta, coef)
            grad = np.empty(n_params)
            grad[:n_coef] = coef_grad.reshape(-1)
            if fit_intercept:
                grad[n_coef:] = intercept_grad
            return loss, grad

        curvature = None
        if self.solver in _NEWTON_SOLVERS:  # the Hessian of the same objective
            curvature = _newton.LogisticCurvature(X, sw, k, fit_intercept, l2, dtype)
        scale = None if l1 else diagonal_preconditioner(X, sw, l2, k, fit_intercept)
        return self._solve(objective, theta0, l1, k, d, dtype, fit_intercept, tol, max_iter,
                           verbose, curvature=curvature, scale=scale)  # fmt: skip

    def _penalties(
        self, l1_unit: float, l2_unit: float, sw_sum: float, dtype: Any
    ) -> tuple[float, float]:
        """``(l1, l2)``: the objective's penalty strengths for a weight total ``sw_sum``."""
        l1, l2 = l1_unit / sw_sum, l2_unit / sw_sum
        if not max(l1, l2) <= float(np.finfo(dtype).max):
            raise ValueError(
                f"C={self.C!r} is too small: the penalty strength 1 / (C * sum of sample weights) "
                f"= 1 / ({self.C!r} * {sw_sum!r}) overflows {np.dtype(dtype).name}; use a larger C"
            )
        return l1, l2

    def _initial_theta(
        self, previous: Any, k: int, d: int, fit_intercept: bool
    ) -> NDArray[np.float64]:
        """The starting parameters: zeros, or the previous solution of the same problem."""
        n_coef = k * d
        theta0 = np.zeros(n_coef + (k if fit_intercept else 0))
        same_problem = previous is not None and previous[0].shape == (k, d)
        if same_problem and np.array_equal(previous[2], self.classes_):
            theta0[:n_coef] = previous[0].ravel()
            if fit_intercept:
                theta0[n_coef:] = previous[1]
        return theta0

    def _solve(self: _Self, objective: Callable[[NDArray[np.float64]], Any],
               theta0: NDArray[np.float64], l1: float, k: int, d: int, dtype: Any,
               fit_intercept: bool, tol: float, max_iter: int, verbose: int,
               stacklevel: int = 4,
               curvature: _newton.LogisticCurvature | None = None,
               scale: NDArray[np.float64] | None = None) -> _Self:  # fmt: skip
        """Minimise ``objective`` (smooth part, L2 included) plus the L1 term; set the attributes.

        The Newton solvers need the objective's ``curvature``; without it (Dask
        input) they run L-BFGS.  ``scale`` is L-BFGS's diagonal preconditioner (CSR).
        """
        n_coef = k * d
        report: Callable[[float], None] | None = None
        if verbose >= 2:
            iteration = [0]

            def report(loss: float) -> None:
                iteration[0] += 1
                print(f"L-BFGS iteration {iteration[0]}: loss {loss:.6g}")

        method = "lbfgs"
        if curvature is not None and self.solver in _NEWTON_SOLVERS:
            newton = _NEWTON_SOLVERS[self.solver]
            result = newton(objective, curvature, theta0, tol=tol, max_iter=max_iter, dtype=dtype,
                            verbose=verbose)  # fmt: skip
            method = result.method  # "lbfgs" when the Newton solver handed over to it
        elif max_iter == 0 and self.solver != "lbfgs":
            # as scikit-learn's other solvers: no update at all (its lbfgs takes a first step)
            result = SolverResult(theta0, math.nan, 0, 1, "max_iter=0: no iteration")
        elif l1:
            result = minimize_l1(objective, theta0, l1, n_coef, tol=tol, max_iter=max_iter,
                                 report=report)  # fmt: skip
        else:
            result = minimize_smooth(objective, theta0, tol=tol, max_iter=max_iter, report=report,
                                     scale=scale)  # fmt: skip
        n_iter = result.n_iter
        message = _convergence_message(self.solver, method, result, max_iter)
        if message is not None:
            warnings.warn(message, ConvergenceWarning, stacklevel=stacklevel)  # the caller of fit
        if verbose:
            name = "L-BFGS" if method == "lbfgs" else method
            print(f"{name}: {n_iter} iterations, loss {result.fun:.6g}, {result.message}")
        theta = result.x
        self.coef_ = theta[:n_coef].reshape(k, d).astype(dtype)
        self.intercept_ = (theta[n_coef:] if fit_intercept else np.zeros(k)).astype(dtype)
        self.n_iter_ = np.array([n_iter], dtype=np.int32)
        return self


def _convergence_message(
    solver: str, method: str, result: SolverResult, max_iter: int
) -> str | None:
    """scikit-learn's ConvergenceWarning text for a run that did not converge (None if it did).

    ``method`` is the algorithm that ended the run: the Newton solver, or L-BFGS
    (which "sag" and "saga" run, and to which the Newton solvers hand over).
    """
    if method == "newton-cholesky":
        return None if result.status == 0 else (
            f"Newton solver did not converge after {result.n_iter} iterations.")  # fmt: skip
    if method == "newton-cg":  # status 2, a failed line search, was warned about by the solver
        return None if result.status != 1 else (
            f"newton-cg failed to converge at loss = {result.fun}. Increase the number of "
            "iterations.")  # fmt: skip
    if result.status == 0:
        return None
    if solver in ("sag", "saga") and result.n_iter >= max_iter:
        return "The max_iter was reached which means the coef_ did not converge"
    return (
        f"lbfgs failed to converge after {result.n_iter} iteration(s) (status={result.status}): "
        f"{result.message}. {_LBFGS_HINT}"
    )
