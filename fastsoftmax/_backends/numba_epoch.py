"""Compiled whole-epoch minibatch training of softmax regression (numba).

One call of :func:`train_epoch` runs a full epoch: for every minibatch it
gathers the rows, runs the fused forward and backward pass of
:mod:`fastsoftmax._backends.numba` and applies the learner's update, all in
compiled code.  The update rules are compiled copies of those of
:mod:`fastsoftmax.learners`, written with the same floating-point operations
in the same order, so one epoch here and the Python loop
``Trainer.train_minibatch`` over the same minibatches agree step for step
(up to rounding).  :func:`_learner_update` switches on the learner's ``code``
in :data:`fastsoftmax.learners.LEARNER_TABLE` and reads its hyper-parameters
from one float64 array, in the table's order.  The protocol is described in
:mod:`fastsoftmax._backends` ("Optional whole-epoch kernel").
"""

from __future__ import annotations

import numpy as np

from .. import learners
from . import _epoch_args
from ._numba_config import njit
from .numba import _aligned_empty, _row_scratch, _softmax_grad_range, _sum_squares, _weight_sum

# The learner codes of fastsoftmax.learners.LEARNER_TABLE.  Written out, not
# read from the table: numba's on-disk cache freezes globals, and is renewed
# only when this file changes.
_SGD, _MOMENTUM, _NESTEROV, _ADAGRAD, _ADADELTA, _RMSPROP, _ADAM = range(7)

# Status of _learner_update (see _epoch_args.check_update_status).
_UPDATED, _NO_BRANCH, _OTHER_ARITY = 0, 1, 2


@njit
def _learner_update(code, p, g, states, n_states, hp, size, lr, t):
    """One step of the learner ``code`` on entries ``[0, size)`` of flat arrays.

    ``p`` is the parameter, ``g`` its gradient, ``states[:n_states]`` the
    learner's state arrays and ``hp`` its hyper-parameters, both in the order
    of its row of the learner table.  Mirrors the element-wise operations of
    ``fastsoftmax.learners`` (scalars cast to the parameter dtype as there,
    bias corrections in float64).  Returns ``_UPDATED``, or, updating
    nothing, ``_NO_BRANCH`` for a code without a branch here and
    ``_OTHER_ARITY`` when the table gives the learner other numbers of
    states or hyper-parameters than its branch reads (``size=0`` asks which).
    """
    F = p.dtype.type
    lr_f = F(lr)
    n_hp = hp.shape[0]
    if code == _SGD:
        if n_states != 0 or n_hp != 0:
            return _OTHER_ARITY
        for i in range(size):
            p[i] -= g[i] * lr_f
        return _UPDATED
    if code == _MOMENTUM:
        if n_states != 1 or n_hp != 1:
            return _OTHER_ARITY
        velocity, mu_f = states[0], F(hp[0])
        for i in range(size):
            v = velocity[i] * mu_f - g[i] * lr_f
            velocity[i] = v
            p[i] += v
        return _UPDATED
    if code == _NESTEROV:
        if n_states != 1 or n_hp != 1:
            return _OTHER_ARITY
        # p += -mu v_prev + (1 + mu) v_new, computed as in learners.Nesterov:
        # p -= (1 + mu) lr g; p += mu^2 v_prev; v = mu v_prev - lr g.
        velocity, mu_f = states[0], F(hp[0])
        a = (1 + mu_f) * lr_f
        mu2 = mu_f * mu_f
        for i in range(size):
            v = velocity[i]
            p[i] = (p[i] - g[i] * a) + v * mu2
            velocity[i] = v * mu_f - g[i] * lr_f
        return _UPDATED
    if code == _ADAGRAD:
        if n_states != 1 or n_hp != 1:
            return _OTHER_ARITY
        sum_sq, eps_f = states[0], F(hp[0])
        for i in range(size):
            s = sum_sq[i] + g[i] * g[i]
            sum_sq[i] = s
            p[i] -= (g[i] / (np.sqrt(s) + eps_f)) * lr_f
        return _UPDATED
    if code == _ADADELTA:
        if n_states != 2 or n_hp != 2:
            return _OTHER_ARITY
        sq_grad_avg, sq_update_avg = states[0], states[1]
        rho_f, omr, eps_f = F(hp[0]), F(1.0 - hp[0]), F(hp[1])
        for i in range(size):
            eg = sq_grad_avg[i] * rho_f + (g[i] * g[i]) * omr
            sq_grad_avg[i] = eg
            dx = -((np.sqrt(sq_update_avg[i] + eps_f) / np.sqrt(eg + eps_f)) * g[i])
            sq_update_avg[i] = sq_update_avg[i] * rho_f + (dx * dx) * omr
            p[i] += dx * lr_f
        return _UPDATED
    if code == _RMSPROP:
        if n_states != 1 or n_hp != 2:
            return _OTHER_ARITY
        sq_grad_avg = states[0]
        rho_f, omr, eps_f = F(hp[0]), F(1.0 - hp[0]), F(hp[1])
        for i in range(size):
            eg = sq_grad_avg[i] * rho_f + (g[i] * g[i]) * omr
            sq_grad_avg[i] = eg
            p[i] -= (g[i] / (np.sqrt(eg) + eps_f)) * lr_f
        return _UPDATED
    if code == _ADAM:  # t has already been incremented for this step
        if n_states != 2 or n_hp != 3:
            return _OTHER_ARITY
        m_avg, v_avg = states[0], states[1]
        beta1, beta2 = hp[0], hp[1]
        b1, omb1, b2, omb2 = F(beta1), F(1.0 - beta1), F(beta2), F(1.0 - beta2)
        eps_f = F(hp[2])
        inv_c2 = F(1.0 / (1.0 - beta2**t))
        step = F(float(lr_f) / (1.0 - beta1**t))
        for i in range(size):
            m = m_avg[i] * b1 + g[i] * omb1
            v = v_avg[i] * b2 + (g[i] * g[i]) * omb2
            m_avg[i] = m
            v_avg[i] = v
            p[i] -= (m / (np.sqrt(v * inv_c2) + eps_f)) * step
        return _UPDATED
    return _NO_BRANCH


@njit
def _first_bad_row(order, y, n_rows, n_classes):
    """The first ``k`` whose ``order[k]`` is not a row or ``y[order[k]]`` not a class, or -1."""
    for k in range(order.shape[0]):
        i = order[k]
        if i < 0 or i >= n_rows or y[i] < 0 or y[i] >= n_classes:
            return k
    return -1


@njit
def _train_epoch_kernel(
    X, y, sw, weight_mean, WT, b, order, batch_size, l2, fit_intercept,
    code, hp, lr, t, states_W, states_b, n_states, G, Xb,
):  # fmt: skip
    """One epoch over ``order`` in minibatches.

    ``WT`` and the gradient buffer ``G`` are (C, d), transposed, the
    ``states_W`` flat views of (C, d) arrays; ``Xb`` is the aligned row
    scratch of ``_softmax_grad_range``.  An empty ``sw`` means unit weights.
    """
    C, d = WT.shape
    F = WT.dtype.type
    n = order.shape[0]
    weighted = sw.shape[0] > 0
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
        _learner_update(code, p_flat, g_flat, states_W, n_states, hp, C * d, lr, t)
        if fit_intercept:
            for c in range(C):
                gb[c] = F(gb_sum[c] * scale)
            _learner_update(code, b, gb, states_b, n_states, hp, C, lr, t)
    return (total / n if n > 0 else 0.0), t


def _state_tuple(states, dtype):
    """``states`` padded with empty arrays to the most states of a learner in the table.

    A tuple of one length and array type for every learner, so the kernel is
    compiled once per dtype, not once per learner.
    """
    width = max(1, *(len(row.state_names) for row in learners.LEARNER_TABLE))
    return tuple(states) + (np.empty(0, dtype),) * (width - len(states))


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
        X, y, sample_weight, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state
    )
    WT, spec = args.WT, args.spec
    dtype = WT.dtype
    n_states = len(spec.state_names)
    states_W = _state_tuple(args.states_W, dtype)
    states_b = _state_tuple(args.states_b, dtype)
    flat = WT.reshape(-1)
    status = _learner_update(spec.code, flat, flat, states_W, n_states, args.hyperparameters, 0,
                             0.0, 0)  # fmt: skip
    _epoch_args.check_update_status(status, spec, "numba", "fastsoftmax/_backends/numba_epoch.py")
    C = WT.shape[0]
    bad = _first_bad_row(args.order, args.y, X.shape[0], C)
    _epoch_args.check_rows(bad, args.order, args.y, X.shape[0], C)
    G = _aligned_empty(WT.shape, dtype)
    Xb = _row_scratch((), X.shape[1], dtype)
    loss, t_new = _train_epoch_kernel(
        X, args.y, args.sample_weight, 0.0 if weight_mean is None else float(weight_mean),
        WT, args.b, args.order, args.batch_size, float(l2), bool(fit_intercept),
        spec.code, args.hyperparameters, float(lr), int(t),
        states_W, states_b, n_states, G, Xb,
    )  # fmt: skip
    _epoch_args.store(args)
    return float(loss), int(t_new)
