"""Second-order solvers of the logistic objective: scikit-learn's newton-cholesky and newton-cg.

Private.  Both minimise the objective of :class:`~fastsoftmax.LogisticRegression`
(the fused data term of :mod:`fastsoftmax._objective` plus the L2 term, on the
estimator's flat float64 parameters ``theta = [coef (k, d) row by row,
intercept (k,)]``) with the steps, stopping rules, iteration counts and
warnings of scikit-learn 1.9's solvers of the same names:

- :func:`minimize_newton_cholesky`: scikit-learn's ``NewtonCholeskySolver``
  (``sklearn/linear_model/_glm/_newton_solver.py``).  Each iteration forms the
  full Hessian (:meth:`LogisticCurvature.hessian`), solves the Newton system
  with ``scipy.linalg.solve(assume_a="sym")`` as scikit-learn does (so that the
  same systems count as singular or ill-conditioned), takes a backtracking
  Armijo line search and stops when ``max|gradient| <= tol`` and half the
  squared Newton decrement is ``<= tol``.  A singular or ill-conditioned
  Hessian (a ``LinAlgWarning``), a step that is not a descent direction or a
  failed line search hand over to L-BFGS for the remaining iterations, as in
  scikit-learn.  The multinomial model is over-parametrised: the last class's
  intercept (and, without penalty, all its coefficients) is held at 0 during
  the iterations and the result is made symmetric at the end, as scikit-learn.
- :func:`minimize_newton_cg`: scikit-learn's ``_newton_cg``
  (``sklearn/utils/optimize.py``): truncated conjugate gradients on
  Hessian-vector products (:meth:`LogisticCurvature.hessp`), a Wolfe line
  search (scipy's), and the stop ``max|gradient| <= tol``.

Cost (why these are for a moderate ``n_params = k * (d + fit_intercept)``):
the Hessian of newton-cholesky takes ``k (k + 1) / 2`` weighted Gram matrices
``X^T diag(h) X`` (symmetric rank-k updates, ``n d^2 / 2`` multiply-adds
each: ``n d^2 k^2 / 4`` in all), ``n_params^2`` float64 entries of memory and
an ``O(n_params^3)`` solve per iteration; newton-cg needs no matrix, each
Hessian-vector product is two passes over ``X`` (``2 n d k``), up to 200 of
them per iteration.  Both use numpy/scipy BLAS (dense ``X`` in row blocks, so
that the temporaries stay a few MB; CSR ``X`` by scipy.sparse products).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _objective
from ._solvers import SolverResult, minimize_smooth

__all__ = [
    "LogisticCurvature",
    "NewtonResult",
    "minimize_newton_cg",
    "minimize_newton_cholesky",
]

# rows of a dense block of X in the Hessian products: temporaries of about 16 MB
_BLOCK_ENTRIES = 1 << 21


@dataclass
class NewtonResult(SolverResult):
    """A :class:`~fastsoftmax._solvers.SolverResult` that says which method ended the run.

    ``method`` is the solver's own name, or ``"lbfgs"`` when it handed over to
    L-BFGS (``status`` and ``message`` are then L-BFGS's).  For newton-cg,
    ``status`` 1 is the iteration limit and 2 a failed line search.
    """

    method: str = "lbfgs"


class LogisticCurvature:
    """The Hessian of the logistic / multinomial objective at a point, in the layout of ``theta``.

    ``n_classes`` is the number of rows of ``coef`` (1: the binary model, a
    sigmoid of one logit); the objective is ``sum_i s_i loss_i / sum_i s_i +
    l2 / 2 ||coef||^2`` (the intercept unpenalised).  :meth:`update` computes
    the probabilities at ``theta``; :meth:`hessian` and :meth:`hessp` use them.

    Parameters
    ----------
    X : ndarray or CSR matrix of shape (n_samples, n_features)
        Checked data: C-contiguous float32/float64/uint8, or a checked CSR
        matrix with data of ``dtype``.
    sample_weight : ndarray of shape (n_samples,) or None
    n_classes : int
        Rows of ``coef``: 1 (binary) or the number of classes.
    fit_intercept : bool
    l2 : float
        The objective's L2 strength.
    dtype : numpy dtype
        The parameters' dtype (that of the kernels and of the BLAS products).
    """

    def __init__(self, X, sample_weight, n_classes, fit_intercept, l2, dtype):
        self.X = X
        self.n_classes = int(n_classes)
        self.n_features = int(X.shape[1])
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.dtype = np.dtype(dtype)
        self.n_coef = self.n_classes * self.n_features
        self.n_params = self.n_coef + (self.n_classes if fit_intercept else 0)
        n = X.shape[0]
        sw = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
        total = float(np.sum(sw))
        # each row's share of the data term (the objective's normalisation)
        self.row_weight = sw / total if total > 0 else np.zeros(n)
        self.proba = None

    def _coef_intercept(self, theta):
        coef = theta[: self.n_coef].reshape(self.n_classes, self.n_features).astype(self.dtype)
        intercept = theta[self.n_coef :].astype(self.dtype) if self.fit_intercept else None
        return coef, intercept

    def _logits(self, theta):
        coef, intercept = self._coef_intercept(theta)
        return _objective.decision(self.X, coef, intercept).astype(np.float64, copy=False)

    def update(self, theta):
        """Compute the probabilities at ``theta`` (float64, shape (n_samples, n_classes))."""
        z = self._logits(theta)
        if self.n_classes == 1:
            from scipy.special import expit

            self.proba = expit(z)  # no overflow warning for large margins
        else:
            z -= z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            self.proba = z
        return self

    # -- X^T products, dense (in row blocks) or CSR --------------------------------

    def _blocks(self):
        """``(rows, X_block)`` in the parameters' dtype: views of float X, or converted blocks."""
        X = self.X
        if not isinstance(X, np.ndarray):
            yield slice(0, X.shape[0]), X
            return
        step = max(1, _BLOCK_ENTRIES // max(1, self.n_features))
        for start in range(0, X.shape[0], step):
            rows = slice(start, min(start + step, X.shape[0]))
            yield rows, X[rows].astype(self.dtype, copy=False)

    def _gram(self, h, negative):
        """``(X^T diag(h) X, X^T h)`` in float64 for ``h`` all >= 0, or all <= 0 (``negative``).

        One pass over X; ``X^T h`` (the intercept's column) only when it is fitted.
        """
        d = self.n_features
        gram, cross = np.zeros((d, d)), np.zeros(d)
        root = np.sqrt(np.abs(h))
        for rows, block in self._blocks():
            if isinstance(block, np.ndarray):
                scaled = block * root[rows, None].astype(self.dtype)
                gram += scaled.T @ scaled  # numpy's symmetric rank-k update
            else:
                scaled = block.multiply(root[rows, None].astype(self.dtype)).tocsr()
                gram += (scaled.T @ scaled).toarray()
            if self.fit_intercept:
                cross += block.T @ h[rows].astype(self.dtype)
        return (-gram if negative else gram), cross

    def _transpose_product(self, r):
        """``X^T r`` for ``r`` of shape (n_samples, m): float64 (d, m)."""
        out = np.zeros((self.n_features, r.shape[1]))
        for rows, block in self._blocks():
            out += np.asarray(block.T @ r[rows].astype(self.dtype))
        return out

    # -- the curvature -------------------------------------------------------------

    def hessian(self):
        """The Hessian at the last :meth:`update`, float64 of shape (n_params, n_params).

        Binary: ``X~^T diag(w p (1 - p)) X~`` (``X~`` = X with a column of
        ones when the intercept is fitted); multinomial: the blocks ``(k, l)``
        ``X~^T diag(w p_k (delta_kl - p_l)) X~``; plus ``l2`` on the
        coefficients' diagonal.  ``w`` are the rows' shares of the data term.
        """
        k, d, n_coef = self.n_classes, self.n_features, self.n_coef
        P, w = self.proba, self.row_weight
        H = np.zeros((self.n_params, self.n_params))
        for a, b in ((a, b) for a in range(k) for b in range(a, k)):  # the upper blocks
            if a == b:  # the binary model too (k = 1)
                h = w * P[:, a] * (1.0 - P[:, a])
            else:
                h = -w * P[:, a] * P[:, b]
            block, cross = self._gram(h, negative=a != b)
            H[a * d : (a + 1) * d, b * d : (b + 1) * d] = block
            H[b * d : (b + 1) * d, a * d : (a + 1) * d] = block.T
            if self.fit_intercept:
                H[a * d : (a + 1) * d, n_coef + b] = cross
                H[b * d : (b + 1) * d, n_coef + a] = cross
                H[n_coef + b, a * d : (a + 1) * d] = cross
                H[n_coef + a, b * d : (b + 1) * d] = cross
                H[n_coef + a, n_coef + b] = H[n_coef + b, n_coef + a] = float(np.sum(h))
        if self.l2:
            H[np.arange(n_coef), np.arange(n_coef)] += self.l2
        return H

    def hessp(self, v):
        """The Hessian at the last :meth:`update` times ``v`` (float64, shape (n_params,)).

        With ``Z = X V^T + v_b`` (V the coefficient part of ``v`` as (k, d)):
        ``R = w p (1 - p) Z`` (binary) or ``R = w P * (Z - rowsum(P * Z))``
        (multinomial), and ``H v = [R^T X + l2 V, sum_i R_i]``.
        """
        P, w = self.proba, self.row_weight
        Z = self._logits(v)
        if self.n_classes == 1:
            R = (w * P[:, 0] * (1.0 - P[:, 0]))[:, None] * Z
        else:
            R = P * (Z - np.sum(P * Z, axis=1, keepdims=True))
            R *= w[:, None]
        out = np.empty(self.n_params)
        coef_part = self._transpose_product(R).T  # (k, d)
        penalty_part = self.l2 * v[: self.n_coef].reshape(coef_part.shape)
        out[: self.n_coef] = (coef_part + penalty_part).ravel()
        if self.fit_intercept:
            out[self.n_coef :] = R.sum(axis=0)
        return out


def _fallback_lbfgs(fun, theta, tol, max_iter, iteration):
    """scikit-learn's fallback: L-BFGS for the iterations left; ``(theta, n_iter, result)``."""
    budget = max_iter - iteration
    result = minimize_smooth(fun, theta, tol=tol, max_iter=budget)
    return result.x, iteration + min(result.n_iter, budget), result


def _free_parameters(curvature):
    """The multinomial parameters the Newton steps move: scikit-learn's choice of the last class.

    Without a penalty the last class's coefficients and intercept are held at
    0; with one (the coefficients are then identified), only its intercept.
    """
    k, d, n_coef = curvature.n_classes, curvature.n_features, curvature.n_coef
    free = np.ones(curvature.n_params, dtype=bool)
    if k == 1:
        return free, False
    if not curvature.l2:
        free[(k - 1) * d : k * d] = False
        if curvature.fit_intercept:
            free[-1] = False
        return free, True
    if curvature.fit_intercept:
        free[-1] = False
    return free, False


def _shift_to_last_class(theta, curvature, whole_class):
    """Make the last class's held parameters 0; the model stays the same (softmax's shift)."""
    k, d, n_coef = curvature.n_classes, curvature.n_features, curvature.n_coef
    if whole_class:
        coef = theta[:n_coef].reshape(k, d)
        coef -= coef[-1].copy()
    if curvature.fit_intercept:
        theta[n_coef:] -= theta[-1]


def _symmetrise(theta, curvature, whole_class):
    """scikit-learn's final convention: the held parameters sum to 0 over the classes."""
    k, d, n_coef = curvature.n_classes, curvature.n_features, curvature.n_coef
    if whole_class:
        coef = theta[:n_coef].reshape(k, d)
        coef -= coef.mean(axis=0)
    if curvature.fit_intercept:
        theta[n_coef:] -= theta[n_coef:].mean()


def minimize_newton_cholesky(fun, curvature, theta0, *, tol, max_iter, dtype, verbose=0):
    """scikit-learn's newton-cholesky: Newton steps on the full Hessian, a backtracking line search.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> (loss, grad)``: the objective on float64 vectors.
    curvature : LogisticCurvature
        The same objective's Hessian.
    theta0 : ndarray of shape (n_params,)
        Starting point (float64; not modified).
    tol : float
        Stop when ``max|gradient| <= tol`` and ``0.5 * step^T H step <= tol``.
    max_iter : int
        Maximum number of Newton iterations (L-BFGS's included after a hand-over).
    dtype : numpy dtype
        The parameters' (and the kernels') dtype: ``16 * finfo(dtype).eps`` is
        the line search's relative resolution of the loss, as in scikit-learn.
    verbose : int

    Returns
    -------
    NewtonResult
        ``status`` 0 when converged; ``n_iter`` counts the Newton steps (and
        L-BFGS's iterations after a hand-over), as scikit-learn's ``n_iter_``.
    """
    import scipy.linalg

    eps = 16 * float(np.finfo(dtype).eps)
    theta = np.array(theta0, dtype=np.float64)
    multinomial = curvature.n_classes > 1
    free, whole_class = _free_parameters(curvature)
    if multinomial:
        _shift_to_last_class(theta, curvature, whole_class)
    loss, grad = fun(theta)
    iteration, converged, fallback = 1, False, False
    while iteration <= max_iter and not converged:
        if verbose:
            print(f"Newton iter={iteration}")
        hessian = curvature.update(theta).hessian()
        # 1. the Newton step on the free parameters
        step = np.zeros_like(theta)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
                step[free] = scipy.linalg.solve(
                    hessian[np.ix_(free, free)], -grad[free], check_finite=False, assume_a="sym"
                )
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning) as error:
            warnings.warn(
                "The inner solver of NewtonCholeskySolver stumbled upon a singular or very "
                f"ill-conditioned Hessian matrix at iteration {iteration}. It will now resort "
                "to lbfgs instead.\nFurther options are to use another solver or to avoid such "
                "situation in the first place. Possible remedies are removing collinear "
                "features of X or increasing the penalization strengths.\nThe original Linear "
                "Algebra message was:\n" + str(error),
                scipy.linalg.LinAlgWarning,
                stacklevel=2,
            )
            fallback = True
            break
        slope = float(grad[free] @ step[free])
        if slope > 0:  # not a descent direction: scikit-learn hands over silently
            fallback = True
            break
        # 2. backtracking line search (Armijo, or no resolvable loss change and smaller |gradient|)
        theta_old, loss_old, grad_old = theta, loss, grad
        t, armijo, sum_abs_grad_old = 1.0, 2.0**-11 * slope, -1.0
        for _ in range(21):  # down to t = 2**-20
            theta = theta_old + t * step
            loss, grad = fun(theta)
            improvement = loss - loss_old
            if improvement <= t * armijo:
                break
            if abs(improvement) <= abs(loss_old * eps):
                if sum_abs_grad_old < 0:
                    sum_abs_grad_old = float(np.sum(np.abs(grad_old)))
                if float(np.sum(np.abs(grad))) < sum_abs_grad_old:
                    break
            t *= 0.5
        else:
            from .estimators._compat import ConvergenceWarning  # not at import: a cycle

            warnings.warn(
                f"Line search of Newton solver NewtonCholeskySolver at iteration #{iteration} "
                "did not converge after 21 line search refinement iterations. It will now "
                "resort to lbfgs instead.",
                ConvergenceWarning,
                stacklevel=2,
            )
            fallback = True
            break
        # 3. convergence: small gradient and small Newton decrement
        if np.max(np.abs(grad)) <= tol and 0.5 * float(step @ hessian @ step) <= tol:
            converged = True
        if verbose:
            print(f"  loss {loss:.10g}, step size {t}, converged {converged}")
        iteration += 1
    method, status, message = "newton-cholesky", 0 if converged else 1, ""
    if not converged and fallback:
        theta, iteration, result = _fallback_lbfgs(fun, theta, tol, max_iter, iteration)
        method, status, message, loss = "lbfgs", result.status, result.message, result.fun
    iteration -= 1
    if multinomial:
        _symmetrise(theta, curvature, whole_class)
    return NewtonResult(theta, float(loss), iteration, status, message, method)


class _Evaluations:
    """``fun`` as separate loss and gradient callables, evaluating each point once."""

    def __init__(self, fun):
        self.fun = fun
        self.x = None

    def _at(self, x):
        if self.x is None or not np.array_equal(x, self.x):
            self.loss, self.grad = self.fun(x)
            self.x = np.array(x, copy=True)

    def loss_at(self, x):
        self._at(x)
        return self.loss

    def grad_at(self, x):
        self._at(x)
        return self.grad.copy()


def _truncated_cg(hessp, grad, max_inner, tol, eps):
    """scikit-learn's ``_cg``: approximately solve ``H x = -grad``, stopping at small or negative
    curvature.

    ``eps`` (16 finfo.eps) scales the test for a direction of (numerically) no curvature.
    """
    x = np.zeros_like(grad)
    residual = grad.copy()
    direction = -residual
    i = 0
    rr = residual @ residual
    direction_norm2 = rr
    while i <= max_inner:
        if np.sum(np.abs(residual)) <= tol:
            break
        Ap = hessp(direction)
        curvature = direction @ Ap
        if 0 <= curvature <= eps * direction_norm2:
            break
        if curvature < 0:
            if i == 0:  # steepest descent
                x += rr / curvature * direction
            break
        alpha = rr / curvature
        x += alpha * direction
        residual += alpha * Ap
        rr_new = residual @ residual
        beta = rr_new / rr
        direction = -residual + beta * direction
        direction_norm2 = rr_new + beta**2 * direction_norm2
        i += 1
        rr = rr_new
    return x


def _wolfe_line_search(evaluations, xk, pk, gfk, old_fval, old_old_fval, eps):
    """scikit-learn's ``_line_search_wolfe12``: scipy's Wolfe searches and its tiny-loss rule.

    Returns ``(alpha, fval, old_fval)`` or None when no step is found.
    """
    from scipy.optimize._linesearch import line_search_wolfe1, line_search_wolfe2

    f, fprime = evaluations.loss_at, evaluations.grad_at
    ret = line_search_wolfe1(f, fprime, xk, pk, gfk, old_fval, old_old_fval)
    if ret[0] is None:
        # the loss change is below the resolution: accept a full step that lowers sum|gradient|
        fval = f(xk + pk)
        if abs(fval - old_fval) <= abs(old_fval * eps):
            if np.sum(np.abs(fprime(xk + pk))) < np.sum(np.abs(gfk)):
                ret = (1.0, None, None, fval, old_fval, None)
    if ret[0] is None:
        ret = line_search_wolfe2(f, fprime, xk, pk, gfk, old_fval, old_old_fval)
    if ret[0] is None:
        return None
    return ret[0], ret[3], ret[4]


def minimize_newton_cg(fun, curvature, theta0, *, tol, max_iter, dtype, verbose=0, max_inner=200):
    """scikit-learn's newton-cg: truncated-CG Newton steps on Hessian-vector products.

    Parameters
    ----------
    fun : callable
        ``fun(theta) -> (loss, grad)``: the objective on float64 vectors.
    curvature : LogisticCurvature
        The same objective's Hessian-vector products.
    theta0 : ndarray of shape (n_params,)
        Starting point (float64; not modified).
    tol : float
        Stop when ``max|gradient| <= tol``.
    max_iter : int
        Maximum number of Newton iterations.
    dtype : numpy dtype
        The parameters' dtype: ``16 * finfo(dtype).eps`` is the resolution of
        the loss and of the curvature, as in scikit-learn.
    verbose : int
    max_inner : int
        Maximum number of CG iterations per Newton step.

    Returns
    -------
    NewtonResult
        ``status`` 0 when converged, 1 at ``max_iter`` (scikit-learn warns),
        2 when the line search failed (warned here, as scikit-learn).
    """
    eps = 16 * float(np.finfo(dtype).eps)
    evaluations = _Evaluations(fun)
    xk = np.array(theta0, dtype=np.float64)
    old_fval, old_old_fval = evaluations.loss_at(xk), None
    k, status = 0, 0
    while k < max_iter:
        fgrad = evaluations.grad_at(xk)
        if verbose:
            print(f"Newton-CG iter = {k}: loss {old_fval:.10g}, "
                  f"max |gradient| {np.max(np.abs(fgrad)):.3g}")
        if np.max(np.abs(fgrad)) <= tol:
            break
        curvature.update(xk)
        abs_sum = float(np.sum(np.abs(fgrad)))
        inner_tol = min(0.5, np.sqrt(abs_sum)) * abs_sum
        step = _truncated_cg(curvature.hessp, fgrad, max_inner, inner_tol, eps)
        found = _wolfe_line_search(evaluations, xk, step, fgrad, old_fval, old_old_fval, eps)
        if found is None:
            warnings.warn("Line Search failed", stacklevel=2)
            status = 2
            break
        alpha, old_fval, old_old_fval = found
        xk += alpha * step
        k += 1
    if k >= max_iter:
        status = 1
    return NewtonResult(xk, float(old_fval), k, status, "", "newton-cg")
