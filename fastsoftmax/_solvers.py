"""Full-batch solvers for the estimators: L-BFGS-B, smooth or with an L1 term.

Private.  Each solver takes ``fun(theta) -> (loss, grad)``, the smooth part
of the objective on a flat float64 parameter vector (the fused objective of
:mod:`fastsoftmax._objective`, L2 term included), and returns a
:class:`SolverResult`.

The L1 term ``l1 * ||theta[:n_penalized]||_1`` is not differentiable at 0.
:func:`minimize_l1` removes the kink by the classical split
``theta = pos - neg`` with ``pos, neg >= 0``: the term becomes the linear
``l1 * sum(pos + neg)`` and the problem a smooth one with bounds, which
L-BFGS-B solves with the same settings as the smooth problem.  At a solution
``pos * neg == 0`` (lowering both by their minimum lowers the objective by
``2 * l1 * min``), so ``||theta||_1 == sum(pos + neg)``, and the coefficients
whose both halves end at their bound 0 are exactly 0: the sparsity pattern of
the L1 optimum, not a thresholded approximation.  L-BFGS-B's projected
gradient, which the tolerance bounds, is then the minimum-norm subgradient of
the non-smooth objective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _threads

__all__ = [
    "SolverResult", "diagonal_preconditioner", "l1_penalty", "minimize_l1", "minimize_smooth",
]

#: :func:`diagonal_preconditioner` is used on sparse input (a switch for the tests of the
#: unpreconditioned wide path, which takes scipy's steps)
PRECONDITION_SPARSE = True

#: correction pairs of the preconditioned wide L-BFGS (scipy's and scikit-learn's 10 without
#: a preconditioner): the diagonal carries the scales of the features, and at millions of
#: parameters each pair is two vectors the iteration reads twice.  On the Debian corpus
#: (7.3 M parameters) 5 pairs reached scikit-learn's ``max_iter=100`` objective in 27
#: iterations against 25 with 10 pairs, at half the history's memory and traffic.
PRECONDITIONED_MAXCOR = 5


@dataclass
class SolverResult:
    """What a solver returns: the parameters and how the run ended."""

    x: np.ndarray  #: the parameters, float64
    fun: float  #: the objective at ``x`` (the L1 term included)
    n_iter: int  #: iterations, at most ``max_iter``
    status: int  #: 0 when converged (scipy's L-BFGS-B codes)
    message: str


def l1_penalty(coef, l1):
    """``l1 * ||coef||_1`` as a float (accumulated in float64)."""
    if not l1:
        return 0.0
    return float(l1) * float(np.sum(np.abs(coef), dtype=np.float64))


def _lbfgs(fun, x0, tol, max_iter, report, bounds=None):
    """scipy's L-BFGS-B with scikit-learn's settings, so that both stop at the same point."""
    from scipy.optimize import minimize

    callback = None
    if report is not None:
        # The callback takes the iterate x, the one form every supported scipy calls
        # (an `intermediate_result` parameter needs scipy >= 1.11); its loss is that of
        # the last evaluation, which L-BFGS-B makes at the accepted point.
        last = {}
        objective = fun

        def fun(x):
            loss, grad = objective(x)
            last["x"], last["loss"] = x.copy(), loss
            return loss, grad

        def callback(x):
            if "x" not in last or not np.array_equal(x, last["x"]):
                fun(x)
            report(last["loss"])

    with _threads.scipy_blas_single_thread():  # its worker threads would spin on our cores
        return minimize(
            fun,
            x0,
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            callback=callback,
            options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                     "ftol": 64 * np.finfo(float).eps},
        )


def _result(result, x, max_iter):
    return SolverResult(
        x=x,
        fun=float(result.fun),
        n_iter=min(int(result.nit), max_iter),
        status=int(result.status),
        message=str(result.message),
    )


def diagonal_preconditioner(X, sample_weight, l2, n_classes, fit_intercept):
    """The scale of the wide L-BFGS's diagonal preconditioner for linear models on CSR ``X``.

    One over the square root of the Hessian's diagonal at the start (all
    classes equally likely): ``a mean_i(s_i x_ij^2) + l2`` for the weights of
    feature ``j`` of every class, ``a`` for the intercepts, with ``a =
    p (1 - p)``, ``p = 1 / n_classes`` (``n_classes`` 1: the binary model,
    ``p = 1/2``).  On text the feature scales span orders of magnitude (a
    word in half of the documents against one in a single document, whose
    weights only the L2 term holds), which a quasi-Newton matrix started from
    a multiple of the identity learns over many iterations: on the Debian
    corpus (7.3 M parameters) scikit-learn's objective at ``max_iter=100``
    is reached in 25 to 27 iterations (against 100).  Layout of the parameters of
    :class:`~fastsoftmax.estimators.LogisticRegression`: ``coef`` (n_classes,
    d) flattened, then the intercepts.  Returns None for dense ``X`` (scipy's
    steps there) or when :data:`PRECONDITION_SPARSE` is off.
    """
    if isinstance(X, np.ndarray) or not PRECONDITION_SPARSE:
        return None
    n, d = X.shape
    p = 0.5 if n_classes == 1 else 1.0 / n_classes
    a = p * (1.0 - p)
    data = X.data.astype(np.float64) ** 2
    if sample_weight is not None:
        data *= np.repeat(np.asarray(sample_weight, np.float64), np.diff(X.indptr))
        total = float(np.sum(sample_weight, dtype=np.float64))
    else:
        total = float(n)
    column_mean = np.bincount(X.indices, weights=data, minlength=d) / max(total, 1e-300)
    feature = 1.0 / np.sqrt(a * column_mean + max(float(l2), 1e-12))
    parts = [np.tile(feature, n_classes)]
    if fit_intercept:
        parts.append(np.full(n_classes, 1.0 / math.sqrt(a)))
    return np.concatenate(parts)


def minimize_smooth(fun, theta0, *, tol, max_iter, report=None, scale=None):
    """Minimise a smooth ``fun`` by L-BFGS-B from ``theta0``.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> (loss, grad)`` on float64 vectors.
    theta0 : ndarray of shape (n_params,)
        Starting point (float64).
    tol : float
        Stop when the largest gradient component is below ``tol``.
    max_iter : int
        Maximum number of iterations.
    report : callable, optional
        Called with the objective after each iteration.
    scale : ndarray of shape (n_params,), optional
        A diagonal preconditioner (:func:`diagonal_preconditioner`) for the
        wide L-BFGS; the narrow path (scipy's L-BFGS-B) ignores it.

    Returns
    -------
    SolverResult
    """
    from ._lbfgs import WIDE_PROBLEM_PARAMS, minimize_lbfgs

    if theta0.shape[0] >= WIDE_PROBLEM_PARAMS:  # scipy's iterates (unscaled), less work each
        x, f, n_iter, status, message = minimize_lbfgs(
            fun, theta0, tol=tol, max_iter=max_iter, report=report, scale=scale,
            maxcor=10 if scale is None else PRECONDITIONED_MAXCOR,
        )  # fmt: skip
        return SolverResult(x, f, min(n_iter, max_iter), status, message)
    result = _lbfgs(fun, theta0, tol, max_iter, report)
    return _result(result, result.x, max_iter)


def minimize_l1(fun, theta0, l1, n_penalized, *, tol, max_iter, report=None):
    """Minimise ``fun(theta) + l1 * ||theta[:n_penalized]||_1`` by L-BFGS-B on the split.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> (loss, grad)``: the smooth part, on float64 vectors.
    theta0 : ndarray of shape (n_params,)
        Starting point (float64).
    l1 : float
        Strength of the L1 term, >= 0.
    n_penalized : int
        The L1 term covers ``theta[:n_penalized]`` (the coefficients); the
        rest (the intercept) is free.
    tol : float
        Stop when the largest component of the projected gradient of the
        split problem (the minimum-norm subgradient) is below ``tol``.
    max_iter : int
        Maximum number of iterations.
    report : callable, optional
        Called with the objective after each iteration.

    Returns
    -------
    SolverResult
        ``x`` with exact zeros where the L1 term holds a coefficient at 0.
    """
    from scipy.optimize import Bounds

    theta0 = np.asarray(theta0, dtype=np.float64)
    m, n_params = n_penalized, theta0.shape[0]
    l1 = float(l1)
    # z = [pos (m), neg (m), free (n_params - m)]
    z0 = np.concatenate([np.maximum(theta0[:m], 0.0), np.maximum(-theta0[:m], 0.0), theta0[m:]])
    lower = np.concatenate([np.zeros(2 * m), np.full(n_params - m, -np.inf)])
    bounds = Bounds(lower, np.full(z0.shape[0], np.inf))
    theta = np.empty(n_params)
    grad_z = np.empty(z0.shape[0])

    def split_to_theta(z, out):
        np.subtract(z[:m], z[m : 2 * m], out=out[:m])
        out[m:] = z[2 * m :]
        return out

    def objective(z):
        loss, grad = fun(split_to_theta(z, theta))
        np.add(grad[:m], l1, out=grad_z[:m])
        np.subtract(l1, grad[:m], out=grad_z[m : 2 * m])
        grad_z[2 * m :] = grad[m:]
        return loss + l1 * float(np.sum(z[: 2 * m])), grad_z.copy()

    result = _lbfgs(objective, z0, tol, max_iter, report, bounds)
    return _result(result, split_to_theta(result.x, np.empty(n_params)), max_iter)
