"""Arguments of the compiled whole-epoch kernels, shared by the cython and numba backends.

Both backends export ``train_epoch`` with the same arguments (see "Optional
whole-epoch kernel" in :mod:`fastsoftmax._backends`).  :func:`prepare` checks
them and lays out the learner's state arrays the way both kernels read them;
:func:`store` copies the results back into the caller's ``W`` and states.
This module imports neither numba nor the compiled extension.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

#: Learner kind -> (kernel code, names of its state arrays, hyper-parameters it needs).
#: The codes are those of both kernels' update switch.
LEARNER_KINDS = {
    "sgd": (0, (), ()),
    "momentum": (1, ("velocity",), ("momentum",)),
    "nesterov": (2, ("velocity",), ("momentum",)),
    "adagrad": (3, ("sum_sq",), ("eps",)),
    "adadelta": (4, ("sq_grad_avg", "sq_update_avg"), ("rho", "eps")),
    "rmsprop": (5, ("sq_grad_avg",), ("rho", "eps")),
    "adam": (6, ("m", "v"), ("beta1", "beta2", "eps")),
}

#: The hyper-parameters the kernels take, in their argument order (0.0 where unused).
HYPERPARAMETER_NAMES = ("momentum", "rho", "beta1", "beta2", "eps")


class EpochArgs(NamedTuple):
    code: int  # the learner's kernel code
    hyperparameters: tuple  # floats, in the order of HYPERPARAMETER_NAMES
    order: np.ndarray  # intp, C-contiguous
    batch_size: int
    names: tuple  # names of the learner's state arrays
    state: list  # the caller's list of state dicts
    state_W: list  # W's states transposed to (C, d), C-contiguous copies
    state_b: list  # b's states, C-contiguous (empty without fit_intercept)
    flat_state_W: list  # two flat arrays for the kernel (the empty array where unused)
    flat_state_b: list


def state_array(state, name, like, what):
    """Return ``state[name]``, checked to be an array of ``like``'s shape and dtype."""
    try:
        a = state[name]
    except (KeyError, TypeError, IndexError):
        raise ValueError(f"state for {what} has no array {name!r}") from None
    if not isinstance(a, np.ndarray) or a.shape != like.shape or a.dtype != like.dtype:
        raise ValueError(
            f"state[{name!r}] for {what} must be an array of shape {like.shape} and dtype "
            f"{like.dtype}, got {getattr(a, 'shape', type(a).__name__)} "
            f"{getattr(a, 'dtype', '')}".rstrip()
        )
    return a


def prepare(X, W, b, order, batch_size, fit_intercept, kind, hyperparameters, state):
    """Check the arguments of ``train_epoch`` and lay out the learner's states.

    Raises ValueError naming the argument for an unknown ``kind``, a missing
    hyper-parameter, ``batch_size < 1``, an ``order`` that is not 1-D or
    indexes outside ``X``, or missing or mis-shaped state arrays.

    Examples
    --------
    >>> import numpy as np
    >>> W, b = np.zeros((3, 2), np.float32), np.zeros(2, np.float32)
    >>> state = [{"velocity": np.zeros_like(W)}, {"velocity": np.zeros_like(b)}]
    >>> args = prepare(np.zeros((4, 3)), W, b, [3, 0], 2, True, "momentum",
    ...                {"momentum": 0.9}, state)
    >>> args.code, args.hyperparameters, args.state_W[0].shape
    (1, (0.9, 0.0, 0.0, 0.0, 0.0), (2, 3))
    """
    if kind not in LEARNER_KINDS:
        raise ValueError(f"unknown learner kind {kind!r}; expected one of {sorted(LEARNER_KINDS)}")
    code, names, needed = LEARNER_KINDS[kind]
    hp = dict.fromkeys(HYPERPARAMETER_NAMES, 0.0)
    for key in needed:
        if key not in hyperparameters:
            raise ValueError(f"learner {kind!r} needs hyperparameter {key!r}")
        hp[key] = float(hyperparameters[key])
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.ascontiguousarray(order, dtype=np.intp)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {order.shape}")
    if order.size and (order.min() < 0 or order.max() >= X.shape[0]):
        raise ValueError(f"order must index rows of X in [0, {X.shape[0]})")

    state = [] if state is None else list(state)
    n_params = 2 if fit_intercept else 1
    if names and len(state) < n_params:
        raise ValueError(f"state must hold one dict per parameter ({n_params}), got {len(state)}")
    # W's states are used transposed, (C, d), like W itself in both kernels.
    state_W = [np.ascontiguousarray(state_array(state[0], nm, W, "W").T) for nm in names]
    state_b = []
    if fit_intercept:
        state_b = [np.ascontiguousarray(state_array(state[1], nm, b, "b")) for nm in names]
    empty = np.empty(0, W.dtype)
    return EpochArgs(
        code=code,
        hyperparameters=tuple(hp[key] for key in HYPERPARAMETER_NAMES),
        order=order,
        batch_size=batch_size,
        names=names,
        state=state,
        state_W=state_W,
        state_b=state_b,
        flat_state_W=[a.reshape(-1) for a in state_W] + [empty] * (2 - len(state_W)),
        flat_state_b=state_b + [empty] * (2 - len(state_b)),
    )


def store(args, W, WT):
    """Copy the epoch's results back: ``WT`` (C, d) into ``W`` and the states into ``args.state``."""
    W[...] = WT.T
    for nm, a in zip(args.names, args.state_W):
        args.state[0][nm][...] = a.T
    for nm, a in zip(args.names, args.state_b):
        if a is not args.state[1][nm]:  # a copy was made of a non-contiguous state
            args.state[1][nm][...] = a
