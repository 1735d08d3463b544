"""Arguments of the compiled whole-epoch kernels, shared by the cython and numba backends.

Both backends export ``train_epoch`` with the same arguments (see "Optional
whole-epoch kernel" in :mod:`fastsoftmax._backends`).  :func:`prepare` checks
them, takes the learner's code and hyper-parameters from the learner table
(:data:`fastsoftmax.learners.LEARNER_TABLE`) and lays out ``W`` and the
learner's states the way both kernels read them: transposed, (C, d),
C-contiguous.  ``W = coef.T`` (F-contiguous) and states made by
``np.zeros_like(W)`` are used in place; other layouts are copied, and
:func:`store` copies the results back.  This module imports neither numba
nor the compiled extension.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import learners


class EpochArgs(NamedTuple):
    spec: learners.LearnerSpec  # the learner's row of the learner table
    hyperparameters: np.ndarray  # float64, in the order of spec.hyperparameter_names
    y: np.ndarray  # intp, C-contiguous
    sample_weight: np.ndarray  # C-contiguous, or the empty array for unit weights
    order: np.ndarray  # intp, C-contiguous
    batch_size: int  # at most len(order): a larger batch is the full batch
    WT: np.ndarray  # W transposed, (C, d), C-contiguous: W.T itself or a copy
    b: np.ndarray  # C-contiguous: b itself or a copy
    states_W: list  # W's states as flat (C * d,) views of their (C, d) transposes (or copies)
    states_b: list  # b's states, C-contiguous (empty without fit_intercept)
    copies: list  # (caller's array, kernel's array) pairs that store() copies back
    l1: float  # the L1 strength on W (0: none; see learners.l1_pseudo_gradient)


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


def _in_place(a, copies):
    """``a`` if C-contiguous and writeable, else a C-contiguous copy to store back into ``a``."""
    if a.flags.c_contiguous and a.flags.writeable:
        return a
    work = np.ascontiguousarray(a)
    copies.append((a, work))
    return work


def _check_shapes(X, y, sample_weight, W, b):
    """O(1) checks of the arrays against each other (the compiled loops trust them)."""
    if W.ndim != 2 or W.dtype not in (np.float32, np.float64):
        raise TypeError(f"W must be a 2-D float32 or float64 array, got {W.ndim}-D {W.dtype}")
    (d, C), dtype = W.shape, W.dtype
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must be 2-D with {d} columns (the rows of W), got shape {X.shape}")
    if X.dtype != dtype and X.dtype != np.uint8:
        raise TypeError(f"X must be {dtype} (the dtype of W) or uint8, got {X.dtype}")
    if b.shape != (C,) or b.dtype != dtype:
        raise ValueError(f"b must be a ({C},) {dtype} array, got {b.shape} {b.dtype}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) (one label a row of X), got {y.shape}")
    if sample_weight is not None and (
        sample_weight.shape != y.shape or sample_weight.dtype != dtype
    ):
        raise ValueError(
            f"sample_weight must be None or a {y.shape} {dtype} array, got "
            f"{sample_weight.shape} {sample_weight.dtype}"
        )


def prepare(X, y, sample_weight, W, b, order, batch_size, fit_intercept, kind, hyperparameters,
            state, *, l1=0.0):  # fmt: skip
    """Check the arguments of ``train_epoch`` and lay out ``W``, ``b`` and the learner's states.

    Raises ValueError (TypeError for a wrong dtype) naming the argument for an
    unknown ``kind``, a missing hyper-parameter, ``batch_size < 1``, arrays
    whose shapes disagree, an ``order`` that is not 1-D, or missing or
    mis-shaped state arrays, or an ``l1`` that is not finite and >= 0: O(1)
    checks.  The kernels check the rows of the epoch (:func:`check_rows`) in
    their first pass over ``order``.  With ``l1 > 0`` the kernels step ``W``
    along the L1 pseudo-gradient and project it on its orthant
    (:func:`fastsoftmax.learners.l1_pseudo_gradient`).

    Examples
    --------
    >>> import numpy as np
    >>> coef, b = np.zeros((2, 3), np.float32), np.zeros(2, np.float32)
    >>> W = coef.T  # (d, C) view of the (C, d) coefficients
    >>> state = [{"velocity": np.zeros_like(W)}, {"velocity": np.zeros_like(b)}]
    >>> args = prepare(np.zeros((4, 3), np.float32), np.array([0, 1, 1, 0]), None, W, b,
    ...                [3, 0], 10, True, "momentum", {"momentum": 0.9}, state)
    >>> args.spec.code, args.hyperparameters, args.batch_size
    (1, array([0.9]), 2)
    >>> np.shares_memory(args.WT, coef), args.copies  # used in place: nothing to copy back
    (True, [])
    """
    spec = learners.learner_spec(kind)
    missing = [name for name in spec.hyperparameter_names if name not in hyperparameters]
    if missing:
        raise ValueError(f"learner {kind!r} needs hyperparameter {missing[0]!r}")
    hp = np.array([float(hyperparameters[name]) for name in spec.hyperparameter_names])
    l1 = float(l1)
    if not np.isfinite(l1) or l1 < 0:
        raise ValueError(f"l1 must be finite and non-negative, got {l1!r}")

    y = np.ascontiguousarray(y, dtype=np.intp)
    _check_shapes(X, y, sample_weight, W, b)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.ascontiguousarray(order, dtype=np.intp)
    if order.ndim != 1:
        raise ValueError(f"order must be 1-D, got shape {order.shape}")
    # (the kernels check the indices in order and their labels: see check_rows)
    # a batch larger than the epoch is the full batch (and keeps the kernels'
    # per-batch buffers at the size of the data)
    batch_size = min(batch_size, max(1, order.size))

    names = spec.state_names
    state = [] if state is None else list(state)
    n_params = 2 if fit_intercept else 1
    if names and len(state) < n_params:
        raise ValueError(f"state must hold one dict per parameter ({n_params}), got {len(state)}")
    copies = []
    # W and its states are used transposed, (C, d): W = coef.T gives coef itself
    WT = _in_place(W.T, copies)
    states_W = [_in_place(state_array(state[0], nm, W, "W").T, copies).reshape(-1) for nm in names]
    states_b = []
    if fit_intercept:
        states_b = [_in_place(state_array(state[1], nm, b, "b"), copies) for nm in names]
    return EpochArgs(
        spec=spec,
        hyperparameters=hp,
        y=y,
        sample_weight=(
            np.empty(0, W.dtype) if sample_weight is None else np.ascontiguousarray(sample_weight)
        ),
        order=order,
        batch_size=batch_size,
        WT=WT,
        b=_in_place(b, copies),
        states_W=states_W,
        states_b=states_b,
        copies=copies,
        l1=l1,
    )


def store(args):
    """Copy the epoch's results back into the caller's arrays that :func:`prepare` copied."""
    for target, work in args.copies:
        target[...] = work


def check_update_status(status, spec, backend, where):
    """Raise unless ``status`` says the compiled update rule of ``spec`` exists and fits its row.

    ``status`` is what the kernel's ``_learner_update`` returns when asked to
    update 0 entries (before the epoch, so nothing has been updated): 0 for a
    branch that takes the row's numbers of states and hyper-parameters, 1 for
    no branch of ``spec.code``, 2 for a branch that reads other numbers.
    """
    if status == 0:
        return
    row = (
        f"learner {spec.kind!r} (code {spec.code}, states {spec.state_names}, "
        f"hyper-parameters {spec.hyperparameter_names} in fastsoftmax.learners.LEARNER_TABLE)"
    )
    if status == 1:
        raise ValueError(
            f"{row} has no compiled update rule in the {backend} epoch kernel: "
            f"add its branch to _learner_update in {where}"
        )
    raise ValueError(
        f"the {backend} epoch kernel's update rule of code {spec.code} ({where}, "
        f"_learner_update) reads other numbers of states or hyper-parameters than the "
        f"table gives {row}"
    )


def check_rows(bad, order, y, n_rows, n_classes):
    """Raise for ``order[bad]``, the first entry a kernel found not to be a row with a class.

    ``bad`` is -1 when every ``order[k]`` is in ``[0, n_rows)`` and its label
    ``y[order[k]]`` in ``[0, n_classes)``.
    """
    if bad < 0:
        return
    i = int(order[bad])
    if not 0 <= i < n_rows:
        raise ValueError(f"order must index rows of X in [0, {n_rows}): order[{bad}] = {i}")
    raise ValueError(f"y must hold class indices in [0, {n_classes}): y[{i}] = {int(y[i])}")
