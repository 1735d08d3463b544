"""L-BFGS for wide problems: millions of parameters, little work per iteration.

Private.  :func:`minimize_lbfgs` is scipy's unconstrained L-BFGS-B step for
step (the same quasi-Newton direction with ``maxcor`` pairs, the same
Moré-Thuente line search and the same stopping rules, so the two stop at the
same point), organised around the memory traffic that dominates it when
``n_params`` is large.  scipy's driver makes some twenty passes over its
``2 * maxcor * n_params`` history per iteration (about 300 ms at 4.5 million
parameters); here an iteration makes two:

- one blocked product of the stacked history ``[s_i; y_i]`` with the new
  gradient and the new ``y`` (every inner product the update needs), and
- one blocked combination of the history that forms the direction,

from the compact representation of Byrd, Nocedal and Schnabel (1994):
``H g = gamma g + S p - gamma Y u`` with ``u = R^-1 S^T g`` and
``p = R^-T ((D + gamma Y^T Y) u - gamma Y^T g)``, ``R`` the upper triangle of
``S^T Y`` and ``D`` its diagonal, all ``maxcor x maxcor`` and updated from the
products above.  The history is float64, written in place into a ring
buffer; besides it the solver keeps five vectors of ``n_params``.  The
passes run in compiled code (``src_cython/_lbfgs_kernels.pyx``: the new pair
is written in the pass that takes the products, ``g . d`` and ``d . d`` come
with the direction, ``max |g|`` with the copy of the gradient), or as
blocked numpy passes without the extension.

With ``scale`` the same iteration runs on ``v = x / scale`` (a diagonal
preconditioner: the quasi-Newton matrix starts from ``gamma diag(scale^2)``),
the steps are no longer scipy's but the minimum and the stopping rules (on
``f`` and on the gradient in ``x``) are the same.

References
----------
R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton
matrices and their use in limited memory methods", Math. Programming 63,
1994.  J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed
sufficient decrease", ACM TOMS 20, 1994 (MINPACK-2 ``dcsrch``/``dcstep``,
as in L-BFGS-B).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import solve_triangular

__all__ = ["WIDE_PROBLEM_PARAMS", "minimize_lbfgs"]

#: from this many parameters on, :func:`fastsoftmax._solvers.minimize_smooth` uses
#: :func:`minimize_lbfgs` (measured 1.4-2x less driver time per iteration than scipy's at
#: 131,072 to 4.5 million parameters; below, scipy's compiled driver has less overhead)
WIDE_PROBLEM_PARAMS = 1 << 17

# the columns of a blocked pass: the block of the history and of the vectors it meets stay
# in cache (2 maxcor rows of 8192 float64 = 1.3 MB)
_BLOCK = 8192
_NO_COEFS = np.zeros(0)

# scipy's L-BFGS-B settings of its line search (lnsrlb): sufficient decrease, curvature, and
# the relative width of the bracket below which the search stops
_FTOL, _GTOL, _XTOL = 1e-3, 0.9, 0.1
_STPMAX = 1e10
_EPS = np.finfo(np.float64).eps

MSG_PGTOL = "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL"
MSG_FTOL = "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH"
MSG_MAXITER = "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT"
MSG_MAXFUN = "STOP: TOTAL NO. OF F AND G EVALUATIONS EXCEEDS LIMIT"
MSG_LINESEARCH = "ABNORMAL: THE LINE SEARCH FOUND NO ACCEPTABLE STEP"


def _blocks(n):
    return ((lo, min(lo + _BLOCK, n)) for lo in range(0, n, _BLOCK))


def _compiled():
    """The compiled passes (src_cython/_lbfgs_kernels.pyx), or None without the extension."""
    try:
        from . import _lbfgs_kernels
    except ImportError:  # pure-Python install: the numpy passes below
        return None
    return _lbfgs_kernels


def _threads():
    from ._threads import get_num_threads

    return get_num_threads()


def _products(history, rows, slot, stp, direction, g, g_old, out):
    """With ``slot`` not None first write the pair ``s = stp direction``, ``y = g - g_old``
    into that slot's rows; then ``out[:rows, 0] = history[:rows] @ g`` and (with a slot)
    ``out[:rows, 1] = history[:rows] @ y``: one pass over the history."""
    kernels = _compiled()
    if kernels is not None:
        kernels.products(history, rows, -1 if slot is None else slot, stp, direction, g, g_old,
                         out, _threads())  # fmt: skip
        return
    y = None
    if slot is not None:
        np.multiply(direction, stp, out=history[2 * slot])
        y = np.subtract(g, g_old, out=history[2 * slot + 1])
    out = out[:rows]
    out.fill(0.0)
    part = np.empty(rows)
    for lo, hi in _blocks(g.shape[0]):
        block = history[:rows, lo:hi]
        out[:, 0] += np.dot(block, g[lo:hi], out=part)
        if y is not None:
            out[:, 1] += np.dot(block, y[lo:hi], out=part)


def _combination(history, rows, coefs, gamma, g, out):
    """``out = history[:rows].T @ coefs - gamma g``: one pass over the history.  Returns
    ``(g . out, out . out)``."""
    kernels = _compiled()
    if kernels is not None:
        return kernels.combine(history, rows, coefs, gamma, g, out, _threads())
    for lo, hi in _blocks(g.shape[0]):
        block = out[lo:hi]
        if rows:
            np.dot(coefs[:rows], history[:rows, lo:hi], out=block)
            block -= gamma * g[lo:hi]
        else:
            np.multiply(g[lo:hi], -gamma, out=block)
    return float(np.dot(g, out)), float(np.dot(out, out))


def _trial_point(x, stp, direction, scale, out):
    """``out = x + stp (scale direction)`` (``scale`` None: ones)."""
    kernels = _compiled()
    if kernels is not None:
        kernels.axpy(x, stp, direction, scale, out, _threads())
        return out
    for lo, hi in _blocks(x.shape[0]):
        block = out[lo:hi]
        np.multiply(direction[lo:hi], stp, out=block)
        if scale is not None:
            block *= scale[lo:hi]
        block += x[lo:hi]
    return out


def _copy_and_dot(grad, direction, scale, out):
    """``out = scale grad`` (``scale`` None: ones); ``(out . direction, max |grad|)``, in one
    pass."""
    grad = np.ascontiguousarray(grad, dtype=np.float64)
    kernels = _compiled()
    if kernels is not None:
        return kernels.copy_dot(grad, direction, scale, out, _threads())
    total, g_max = 0.0, 0.0
    for lo, hi in _blocks(grad.shape[0]):
        block = out[lo:hi]
        if scale is None:
            np.copyto(block, grad[lo:hi])
        else:
            np.multiply(grad[lo:hi], scale[lo:hi], out=block)
        total += float(np.dot(block, direction[lo:hi]))
        g_max = max(g_max, _max_abs(grad[lo:hi]))
    return total, g_max


def _max_abs(g):
    return max(float(np.max(g)), -float(np.min(g))) if g.shape[0] else 0.0


class _LineSearch:
    """Moré-Thuente search for a step satisfying the strong Wolfe conditions.

    MINPACK-2's ``dcsrch`` as L-BFGS-B drives it: :meth:`start` takes
    ``phi(0)``, ``phi'(0) < 0`` and the first step and returns it; each
    :meth:`next` takes ``phi(stp), phi'(stp)`` of the last step and returns
    ``(stp, done)``, where ``done`` means that the last step is accepted
    (converged or, as L-BFGS-B accepts them too, a warning: rounding errors
    or a bracket narrower than ``xtol``).
    """

    def start(self, f0, g0, stp, stpmax):
        self.brackt, self.stage = False, 1
        self.finit, self.ginit, self.gtest = f0, g0, _FTOL * g0
        self.width = stpmax
        self.width1 = 2.0 * self.width
        self.stx, self.fx, self.gx = 0.0, f0, g0
        self.sty, self.fy, self.gy = 0.0, f0, g0
        self.stmin, self.stmax = 0.0, stp + 4.0 * stp
        self.stpmax = stpmax
        self.stp = stp
        return stp

    def next(self, f, g):
        stp = self.stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0:
            self.stage = 2
        if (
            (self.brackt and (stp <= self.stmin or stp >= self.stmax))
            or (self.brackt and self.stmax - self.stmin <= _XTOL * self.stmax)
            or (stp == self.stpmax and f <= ftest and g <= self.gtest)
            or (stp == 0.0 and (f > ftest or g >= self.gtest))
            or (f <= ftest and abs(g) <= _GTOL * -self.ginit)
        ):
            return stp, True
        if self.stage == 1 and self.fx >= f > ftest:
            # the modified function psi(stp) = phi(stp) - phi(0) - ftol stp phi'(0)
            gt = self.gtest
            stx, fxm, gxm, sty, fym, gym, stp, self.brackt = _dcstep(
                self.stx, self.fx - self.stx * gt, self.gx - gt, self.sty,
                self.fy - self.sty * gt, self.gy - gt, stp, f - stp * gt, g - gt,
                self.brackt, self.stmin, self.stmax,
            )  # fmt: skip
            self.stx, self.sty = stx, sty
            self.fx, self.fy = fxm + stx * gt, fym + sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            (self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, self.brackt) = _dcstep(
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, f, g, self.brackt,
                self.stmin, self.stmax,
            )  # fmt: skip
        if self.brackt:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = stp + 1.1 * (stp - self.stx)
            self.stmax = stp + 4.0 * (stp - self.stx)
        stp = min(max(stp, 0.0), self.stpmax)
        if self.brackt and (
            stp <= self.stmin or stp >= self.stmax or self.stmax - self.stmin <= _XTOL * self.stmax
        ):
            stp = self.stx
        self.stp = stp
        return stp, False


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    # MINPACK-2 dcstep: a safeguarded cubic/quadratic step and the new bracket
    sgnd = math.copysign(1.0, dp) * math.copysign(1.0, dx) if dp and dx else 0.0
    if fp > fx:
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp < stx:
            gamma = -gamma
        r = ((gamma - dx) + theta) / (((gamma - dx) + gamma) + dp)
        stpc = stx + r * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) <= abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dx)
        stpc = stp + r * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        r = ((gamma - dp) + theta) / ((gamma + (dx - dp)) + gamma)
        if r < 0 and gamma != 0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = min(max(stpf, stpmin), stpmax)
    elif brackt:
        theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
        s = max(abs(theta), abs(dy), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dy / s) * (dp / s)))
        if stp > sty:
            gamma = -gamma
        r = ((gamma - dp) + theta) / (((gamma - dp) + gamma) + dy)
        stpf = stp + r * (sty - stp)
    else:
        stpf = stpmax if stp > stx else stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


class _History:
    """The last ``m`` pairs ``(s_i, y_i)`` in a ring buffer and their inner products."""

    def __init__(self, m, n):
        self.m = m
        # rows 2k and 2k + 1 hold s and y of slot k: the first 2 count rows are the ones in use
        self.rows = np.empty((2 * m, n))
        self.sy = np.zeros((m, m))  # sy[i, j] = s_i . y_j, by slot
        self.yy = np.zeros((m, m))
        self.order = []  # slots, oldest first

    def reset(self):
        self.order = []

    def __len__(self):
        return len(self.order)

    def next_slot(self):
        if len(self.order) < self.m:
            return len(self.order)
        return self.order[0]

    def push(self, slot, products):
        """Record the pair just written to ``slot``; ``products`` = ``rows @ [g, y_slot]``."""
        if len(self.order) == self.m:
            self.order.pop(0)
        self.order.append(slot)
        k = 2 * len(self.order)
        dots_y = products[:k, 1]
        for other in self.order:
            # rows are in slot order: slot `other` has its s at 2 other, its y at 2 other + 1
            self.sy[other, slot] = dots_y[2 * other]
            self.yy[other, slot] = self.yy[slot, other] = dots_y[2 * other + 1]

    def direction(self, products, g, out):
        """``out = -H g`` from ``products[:, 0]`` = ``rows @ g``."""
        order = self.order
        k = len(order)
        newest = order[-1]
        gamma = self.sy[newest, newest] / self.yy[newest, newest]
        s_g = products[[2 * i for i in order], 0]
        y_g = products[[2 * i + 1 for i in order], 0]
        sy = self.sy[np.ix_(order, order)]
        upper = np.triu(sy)
        u = solve_triangular(upper, s_g, lower=False, check_finite=False)
        yy = self.yy[np.ix_(order, order)]
        p = solve_triangular(
            upper, np.diag(sy) * u + gamma * (yy @ u) - gamma * y_g, lower=False, trans="T",
            check_finite=False,
        )  # fmt: skip
        coefs = np.zeros(2 * k)
        slots = np.asarray(order)
        coefs[2 * slots] = -p
        coefs[2 * slots + 1] = gamma * u
        return _combination(self.rows, 2 * k, coefs, gamma, g, out)


def minimize_lbfgs(fun, x0, *, tol, max_iter, maxcor=10, ftol=64 * _EPS, maxls=50,
                   maxfun=15000, report=None, scale=None):  # fmt: skip
    """Minimise a smooth ``fun`` by L-BFGS, as scipy's L-BFGS-B without bounds.

    Parameters
    ----------
    fun : callable
        ``fun(x) -> (f, grad)`` on float64 vectors; ``x`` must not be kept
        (its buffer is reused) and ``grad`` is copied.
    x0 : ndarray of shape (n,)
        Starting point.
    tol : float
        Converged when ``max |grad| <= tol`` (L-BFGS-B's ``pgtol``).
    max_iter : int
        Maximum number of iterations; 0 makes one, as scipy's L-BFGS-B does.
    maxcor : int, default 10
        Number of correction pairs kept.
    ftol : float, default ``64 * eps``
        Converged when ``(f_old - f) <= ftol * max(|f_old|, |f|, 1)``.
    maxls : int, default 50
        Maximum evaluations per line search.
    maxfun : int, default 15000
        Maximum number of evaluations.
    report : callable, optional
        Called with ``f`` after each iteration.
    scale : ndarray of shape (n,), optional
        A diagonal preconditioner: the iteration runs on ``v = x / scale``
        (the quasi-Newton matrix starts from ``gamma diag(scale^2)`` instead
        of ``gamma I``), the same minimum, the same stopping rules on ``f``
        and on the gradient in ``x``.  Without it, scipy's steps.

    Returns
    -------
    x, f, n_iter, status, message
        ``status`` 0 when converged, 1 at ``max_iter`` or ``maxfun``, 2 when a
        line search from the steepest-descent direction fails (scipy's codes).
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    n = x.shape[0]
    history = _History(maxcor, n)
    # the vectors besides the history: x, the trial point, g, the trial gradient, the direction
    x_trial, g, g_trial, direction = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    products = np.zeros((2 * maxcor, 2))
    search = _LineSearch()

    if scale is not None:
        scale = np.ascontiguousarray(scale, dtype=np.float64)
        if scale.shape != x.shape:
            raise ValueError(f"scale has shape {scale.shape}, expected {x.shape}")
    # x is kept in its own space; the direction, g and the history are in v = x / scale

    f, grad = fun(x)
    f = float(f)
    direction.fill(0.0)
    _, g_max = _copy_and_dot(grad, direction, scale, g)
    del grad  # the objective's buffer: not kept alive beside ours
    n_fun, n_iter = 1, 0
    status, message = (0, MSG_PGTOL) if g_max <= tol else (None, None)

    while status is None:
        if len(history):
            slope0, dd = history.direction(products, g, direction)
        else:
            slope0, dd = _combination(history.rows, 0, _NO_COEFS, 1.0, g, direction)
        if not slope0 < 0:
            # not a descent direction (rounding): restart from steepest descent, as L-BFGS-B
            if len(history):
                history.reset()
                continue
            status, message = 2, MSG_LINESEARCH
            break
        stp = 1.0 if n_iter else min(1.0 / math.sqrt(dd), _STPMAX)
        stp = search.start(f, slope0, stp, _STPMAX)
        accepted = False
        for _ in range(maxls):
            f_trial, grad = fun(_trial_point(x, stp, direction, scale, x_trial))
            f_trial = float(f_trial)
            slope, g_max = _copy_and_dot(grad, direction, scale, g_trial)
            del grad
            n_fun += 1
            if not (math.isfinite(f_trial) and math.isfinite(slope)):
                # a step too long for the objective: halve it (dcsrch would produce NaN)
                stp = search.stp = 0.5 * stp
                continue
            stp, accepted = search.next(f_trial, slope)
            if accepted:
                break
        if not accepted:
            if len(history):
                history.reset()
                continue
            status, message = 2, MSG_LINESEARCH
            break

        f_old, f = f, f_trial
        x, x_trial = x_trial, x
        g_old, g, g_trial = g, g_trial, g
        n_iter += 1
        if report is not None:
            report(f)
        if n_iter >= max(max_iter, 1):
            status, message = 1, MSG_MAXITER
        elif n_fun > maxfun:
            status, message = 1, MSG_MAXFUN
        if status is not None:
            break
        # the pair s = stp d, y = g - g_old, skipped (as L-BFGS-B does) without enough
        # curvature, written in the pass that takes the history's products with g and y
        # and max |g|
        if stp * (slope - slope0) > _EPS * (-slope0 * stp):
            slot = history.next_slot()
            rows = 2 * min(len(history) + 1, maxcor)
            _products(history.rows, rows, slot, stp, direction, g, g_old, products)
            history.push(slot, products)
        else:
            _products(history.rows, 2 * len(history), None, 0.0, direction, g, g_old, products)
        if g_max <= tol:
            status, message = 0, MSG_PGTOL
        elif f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            status, message = 0, MSG_FTOL
    return x, f, n_iter, status, message
