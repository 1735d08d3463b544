"""The learners' update rules compiled for the numba whole-epoch kernel.

:func:`_learner_update` holds the compiled copies of the update rules of
:mod:`fastsoftmax.learners`, written with the same floating-point operations
in the same order, so one epoch of ``train_epoch`` (the numba backend's
whole-epoch kernel, at the end of :mod:`fastsoftmax._backends.numba`) and
the Python loop ``Trainer.train_minibatch`` over the same minibatches agree
step for step (up to rounding).  It switches on the learner's ``code`` in
:data:`fastsoftmax.learners.LEARNER_TABLE` and reads its hyper-parameters
from one float64 array, in the table's order.  This module imports nothing
of :mod:`fastsoftmax._backends.numba` (which imports it), so each imports on
its own.

Note that numba's on-disk cache of the epoch kernel does not notice a change
of this file: the kernel reports an update rule that disagrees with the one
called here (see :func:`check_learner`) instead of training silently with it.
"""

from __future__ import annotations

import numpy as np

from .. import learners
from . import _epoch_args
from ._numba_config import njit

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
def _l1_pseudo_gradient(p, g, l1, orthant):
    """``learners.l1_pseudo_gradient`` on flat arrays: ``g`` in place, the orthant into ``orthant``."""
    F = p.dtype.type
    l1_f = F(l1)
    zero = F(0)
    for i in range(p.shape[0]):
        plus = g[i] + l1_f
        minus = g[i] - l1_f
        if p[i] > 0:
            g[i], orthant[i] = plus, 1
        elif p[i] < 0:
            g[i], orthant[i] = minus, -1
        elif plus < 0:
            g[i], orthant[i] = plus, 1
        elif minus > 0:
            g[i], orthant[i] = minus, -1
        else:
            g[i], orthant[i] = zero, 0


@njit
def _l1_orthant_project(p, orthant):
    """``learners.l1_orthant_project`` on flat arrays."""
    for i in range(p.shape[0]):
        o = orthant[i]
        if (o > 0 and not p[i] > 0) or (o < 0 and not p[i] < 0) or o == 0:
            p[i] = 0


@njit
def _sum_abs(p):
    """``sum(|p|)`` of the flat ``p`` in float64 (the L1 term of the loss, divided by l1)."""
    total = 0.0
    for i in range(p.shape[0]):
        total += abs(p[i])
    return total


@njit
def _first_bad_row(order, y, n_rows, n_classes):
    """The first ``k`` whose ``order[k]`` is not a row or ``y[order[k]]`` not a class, or -1."""
    for k in range(order.shape[0]):
        i = order[k]
        if i < 0 or i >= n_rows or y[i] < 0 or y[i] >= n_classes:
            return k
    return -1


def _state_tuple(states, dtype):
    """``states`` padded with empty arrays to the most states of a learner in the table.

    A tuple of one length and array type for every learner, so the epoch
    kernel is compiled once per dtype, not once per learner.
    """
    width = max(1, *(len(row.state_names) for row in learners.LEARNER_TABLE))
    return tuple(states) + (np.empty(0, dtype),) * (width - len(states))


def check_learner(args, n_rows):
    """Check the learner and the rows of an epoch before the kernel runs; return its states.

    Raises ValueError when :func:`_learner_update` has no branch of the
    learner's code, or one that reads other numbers of states or
    hyper-parameters than its row of the table, and when an entry of
    ``args.order`` is not a row or its label not a class (nothing is updated).

    Returns
    -------
    states_W, states_b : tuple
        The learner's state arrays of ``W`` and ``b`` as the kernel takes them.
    """
    spec, WT = args.spec, args.WT
    states_W = _state_tuple(args.states_W, WT.dtype)
    flat = WT.reshape(-1)
    status = _learner_update(spec.code, flat, flat, states_W, len(spec.state_names),
                             args.hyperparameters, 0, 0.0, 0)  # fmt: skip
    _epoch_args.check_update_status(status, spec, "numba", "fastsoftmax/_backends/numba_epoch.py")
    n_classes = WT.shape[0]
    bad = _first_bad_row(args.order, args.y, n_rows, n_classes)
    _epoch_args.check_rows(bad, args.order, args.y, n_rows, n_classes)
    return states_W, _state_tuple(args.states_b, WT.dtype)
