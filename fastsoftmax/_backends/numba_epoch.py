"""Compiled whole-epoch minibatch training of softmax regression (numba).

One call of :func:`train_epoch` runs a full epoch: for every minibatch it
gathers the rows, runs the fused forward and backward pass of
:mod:`fastsoftmax._backends.numba` and applies the learner's update, all in
compiled code.  The update rules are those of :mod:`fastsoftmax.learners`,
written with the same floating-point operations in the same order, so one
epoch here and the Python loop ``Trainer.train_minibatch`` over the same
minibatches agree step for step (up to rounding).  The protocol is described
in :mod:`fastsoftmax._backends` ("Optional whole-epoch kernel").
"""

from __future__ import annotations

import numpy as np

from . import _epoch_args
from ._numba_config import njit
from .numba import (
    _aligned_empty,
    _aligned_transpose,
    _row_scratch,
    _softmax_grad_range,
    _sum_squares,
    _weight_sum,
)

# The learner codes of fastsoftmax._backends._epoch_args.LEARNER_KINDS
_SGD, _MOMENTUM, _NESTEROV, _ADAGRAD, _ADADELTA, _RMSPROP, _ADAM = range(7)


@njit
def _learner_update(kind, p, g, s1, s2, lr, mu, rho, beta1, beta2, eps, t):
    """One learner step on flat arrays ``p`` (param), ``g`` (grad), ``s1``/``s2`` (states).

    Mirrors the element-wise operations of ``fastsoftmax.learners`` (scalars
    cast to the parameter dtype as there, bias corrections in float64).
    """
    F = p.dtype.type
    lr_f = F(lr)
    if kind == _SGD:
        for i in range(p.shape[0]):
            p[i] -= g[i] * lr_f
    elif kind == _MOMENTUM:
        mu_f = F(mu)
        for i in range(p.shape[0]):
            v = s1[i] * mu_f - g[i] * lr_f
            s1[i] = v
            p[i] += v
    elif kind == _NESTEROV:
        # p += -mu v_prev + (1 + mu) v_new, computed as in learners.Nesterov:
        # p -= (1 + mu) lr g; p += mu^2 v_prev; v = mu v_prev - lr g.
        mu_f = F(mu)
        a = (1 + mu_f) * lr_f
        mu2 = mu_f * mu_f
        for i in range(p.shape[0]):
            v = s1[i]
            p[i] = (p[i] - g[i] * a) + v * mu2
            s1[i] = v * mu_f - g[i] * lr_f
    elif kind == _ADAGRAD:
        eps_f = F(eps)
        for i in range(p.shape[0]):
            s = s1[i] + g[i] * g[i]
            s1[i] = s
            p[i] -= (g[i] / (np.sqrt(s) + eps_f)) * lr_f
    elif kind == _ADADELTA:
        rho_f = F(rho)
        omr = F(1.0 - rho)
        eps_f = F(eps)
        for i in range(p.shape[0]):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            dx = -((np.sqrt(s2[i] + eps_f) / np.sqrt(eg + eps_f)) * g[i])
            s2[i] = s2[i] * rho_f + (dx * dx) * omr
            p[i] += dx * lr_f
    elif kind == _RMSPROP:
        rho_f = F(rho)
        omr = F(1.0 - rho)
        eps_f = F(eps)
        for i in range(p.shape[0]):
            eg = s1[i] * rho_f + (g[i] * g[i]) * omr
            s1[i] = eg
            p[i] -= (g[i] / (np.sqrt(eg) + eps_f)) * lr_f
    else:  # Adam; t has already been incremented for this step
        b1 = F(beta1)
        omb1 = F(1.0 - beta1)
        b2 = F(beta2)
        omb2 = F(1.0 - beta2)
        eps_f = F(eps)
        inv_c2 = F(1.0 / (1.0 - beta2**t))
        step = F(float(lr_f) / (1.0 - beta1**t))
        for i in range(p.shape[0]):
            m = s1[i] * b1 + g[i] * omb1
            v = s2[i] * b2 + (g[i] * g[i]) * omb2
            s1[i] = m
            s2[i] = v
            p[i] -= (m / (np.sqrt(v * inv_c2) + eps_f)) * step


@njit
def _train_epoch_kernel(
    X, y, sw, weighted, weight_mean, WT, b, order, batch_size, l2, fit_intercept,
    kind, lr, mu, rho, beta1, beta2, eps, t, sW1, sW2, sb1, sb2, G, Xb,
):  # fmt: skip
    """One epoch over ``order`` in minibatches.

    ``WT``, the ``sW*`` states and the gradient buffer ``G`` are (C, d),
    transposed; ``Xb`` is the aligned row scratch of ``_softmax_grad_range``.
    """
    C, d = WT.shape
    F = WT.dtype.type
    n = order.shape[0]
    gb_sum = np.empty(C, np.float64)
    gb = np.zeros(C, WT.dtype)
    p_flat = WT.reshape(C * d)
    g_flat = G.reshape(C * d)
    l2_f = F(l2)
    total = 0.0
    for lo in range(0, n, batch_size):
        hi = min(lo + batch_size, n)
        G[:] = 0
        gb_sum[:] = 0.0
        data = _softmax_grad_range(X, order, True, lo, hi, WT, b, y, sw, weighted, G, gb_sum, Xb)
        if weighted and weight_mean > 0:
            m = (hi - lo) * weight_mean  # the estimator's unbiased-estimate convention
        else:
            m = _weight_sum(order, True, lo, hi, sw, weighted)
        scale = 1.0 / m if m > 0 else 0.0
        loss = data * scale
        if l2 != 0:
            loss += 0.5 * l2 * _sum_squares(WT)
        total += loss * (hi - lo)
        scale_f = F(scale)
        for i in range(g_flat.shape[0]):
            g_flat[i] = g_flat[i] * scale_f + l2_f * p_flat[i]
        t += 1
        _learner_update(kind, p_flat, g_flat, sW1, sW2, lr, mu, rho, beta1, beta2, eps, t)
        if fit_intercept:
            for c in range(C):
                gb[c] = F(gb_sum[c] * scale)
            _learner_update(kind, b, gb, sb1, sb2, lr, mu, rho, beta1, beta2, eps, t)
    return (total / n if n > 0 else 0.0), t


def train_epoch(
    X, y, sample_weight, W, b, order, batch_size, l2, fit_intercept,
    kind, hyperparameters, lr, t, state, weight_mean=None,
):  # fmt: skip
    """Run one epoch of minibatch training of softmax regression in compiled code.

    See "Optional whole-epoch kernel" in :mod:`fastsoftmax._backends` for the
    contract.  ``W``, ``b`` and the ``state`` arrays are updated in place.

    Returns
    -------
    loss : float
        Mean over the epoch's minibatches, weighted by their number of rows,
        of each minibatch's loss before its update.
    t : int
        The step counter after the epoch (``t + number of minibatches``).
    """
    args = _epoch_args.prepare(
        X, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state
    )
    F = W.dtype
    # W is used transposed, (C, d), so the update loops are flat.
    WT = _aligned_transpose(W)
    G = _aligned_empty(WT.shape, WT.dtype)
    Xb = _row_scratch((), X.shape[1], WT.dtype)
    weighted = sample_weight is not None
    sw = sample_weight if weighted else np.empty(0, F)
    loss, t_new = _train_epoch_kernel(
        X, y, sw, weighted, 0.0 if weight_mean is None else float(weight_mean),
        WT, b, args.order, args.batch_size, float(l2), bool(fit_intercept),
        args.code, float(lr), *args.hyperparameters, int(t),
        *args.flat_state_W, *args.flat_state_b, G, Xb,
    )  # fmt: skip
    _epoch_args.store(args, W, WT)
    return float(loss), int(t_new)
