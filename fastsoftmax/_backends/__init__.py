"""Backend registry: four modules that export the same kernel names.

Every backend module (``naive``, ``numpy``, ``cython``, ``numba``) implements
the kernel protocol below with identical names and signatures, so that
switching a backend swaps a module and nothing else.  The public functions in
:mod:`fastsoftmax.functions` validate input, allocate outputs and dispatch
here; users never call a backend directly.

Kernel protocol
---------------
Arguments arrive already validated: arrays are C-contiguous, floating arrays
share one dtype ``F`` (float32 or float64), ``X`` is ``F`` or uint8, labels
``y`` are ``np.intp`` in ``[0, C)``, ``sample_weight`` is ``None`` or a
non-negative ``F`` vector, and every ``out``/``*_out`` buffer is C-contiguous
of the right shape and dtype ``F`` (it may alias ``x`` only where noted).
Kernels never write into their inputs.  Float32 data is computed in float32;
scalar losses are accumulated in float64 and returned as Python floats.

softmax(x, out) -> out
    Row-wise softmax of a 2-D ``x`` of shape (n, k), max-shifted.  ``out`` may
    be ``x`` itself.  A row that contains NaN or +inf comes out all NaN, as in
    scipy.special.softmax (so does a row of all ``-inf``: 0/0).
log_softmax(x, out) -> out
    Row-wise log-softmax of a 2-D ``x``.  ``out`` may be ``x``.
logsumexp(x, out) -> out
    Row-wise log-sum-exp of a 2-D ``x`` (n, k) into ``out`` of shape (n,).
    Rows of all ``-inf`` give ``-inf``; a ``+inf`` gives ``+inf``; NaN
    propagates.
linear(X, coef, intercept, out) -> out
    ``out = X @ coef.T + intercept``; ``X`` (n, d), ``coef`` (C, d) in the
    layout of ``coef_``, ``intercept`` (C,) or None.
cross_entropy(logits, y, out) -> out
    Per-sample softmax cross-entropy ``logsumexp(z_i) - z_i[y_i]`` into
    ``out`` (n,).
softmax_ce_sums(X, coef, intercept, y, sample_weight, coef_grad_out, \
intercept_grad_out, *, skip_negligible=True) -> (loss_sum, weight_total)
    The hot sums of the softmax regression data term over the rows of ``X``
    (a whole data set or one block of it).  ``coef`` is (C, d), ``intercept``
    (C,) or None (zeros).  With ``z_i = coef x_i + intercept``,
    ``p_i = softmax(z_i)``, ``e_i`` the one-hot row of ``y_i`` and ``s_i``
    the weights (1 when ``sample_weight`` is None), writes
    ``coef_grad_out = sum_i s_i (p_i - e_i) x_i^T`` (C, d) and
    ``intercept_grad_out = sum_i s_i (p_i - e_i)`` (C,), and returns
    ``sum_i s_i CE_i`` (accumulated in float64) and ``sum_i s_i`` (``n``
    unweighted) as floats.  No rows give zeros.  Nothing is normalised or
    penalised and nothing is transposed here: :mod:`fastsoftmax._objective`
    turns the sums into the objective.

    Two regimes, chosen from the shapes by :func:`._tiling.plan` (the same
    rule in every backend): when a block of rows' logits fits in L2 (block
    rows x C x itemsize at most 1 MiB, e.g. up to 2,048 classes for 256
    float32 features), a single pass per block of rows; beyond that the
    *tiled* regime, which never holds more than a tile of logits: for each
    block of rows, pass A over tiles of classes keeps each (row, tile)'s
    logit maximum and sum of exponentials, combined into the row's
    log-sum-exp and loss; pass B recomputes each logit tile, forms
    ``s (P - Y)`` and accumulates the tile's rows of the gradients.  Extra
    memory is O(block rows x (tile + number of tiles)), independent of the
    number of rows (the compiled backend keeps a block's logits for pass B
    instead of recomputing them when they take at most 40 MB).  In the compiled backends threads own rows (per-thread
    gradient accumulators) in the single pass and class tiles (disjoint rows
    of the gradient, no accumulators, no atomics) in the tiled one.  (From
    200 classes the cython backend computes the single-pass regime with its
    tiled kernel, without skipping: :func:`._tiling.compiled_tiles_for_single_pass`.)

    Skipping (tiled regime only, ``skip_negligible=True`` by default): pass
    B leaves out a (row, tile) pair whose largest softmax entry is below
    ``eps = np.finfo(F).eps`` (2**-23 for float32, 2**-52 for float64;
    :func:`._tiling.skip_threshold`) and whose tile does not hold the row's
    label; its residual counts as zero.  The loss is unaffected (pass A is
    exact) and each skipped entry is below ``s_i eps``, so every entry of
    ``coef_grad_out`` moves by at most ``eps * sum_i s_i |x_ij|`` and of
    ``intercept_grad_out`` by at most ``eps * sum_i s_i``.  The naive
    backend, the reference, skips the same pairs for the same tile size.
    ``skip_negligible=False`` gives the plain sums.
    :func:`._tiling.forced` forces a regime, tile and row-block size (for
    tests).  The compiled tiled passes flush denormals to zero.
sigmoid(x, out) -> out
    Element-wise logistic sigmoid of a 1-D ``x``; ``out`` may be ``x``.
binary_cross_entropy(logits, y, out) -> out
    Per-sample ``log(1 + exp(z)) - y z`` for 1-D ``logits`` and ``F`` targets
    ``y`` in [0, 1], computed without overflow.  Infinite logits give the
    limits: ``z = +inf`` gives ``(1 - y) * inf`` (0 when ``y == 1``) and
    ``z = -inf`` gives ``y * inf`` (0 when ``y == 0``).
logistic_sums(X, coef, intercept, y, sample_weight, coef_grad_out) \
-> (loss_sum, intercept_grad_sum, weight_total)
    Binary counterpart: ``coef`` (d,), ``intercept`` a float, ``y`` an ``F``
    vector of 0/1 targets.  Writes ``coef_grad_out = sum_i s_i (p_i - y_i)
    x_i`` (d,) and returns ``sum_i s_i BCE_i``, ``sum_i s_i (p_i - y_i)`` and
    ``sum_i s_i`` as floats.
classification_error(logits, y) -> float
    Fraction of rows whose (first) argmax differs from ``y``; 0.0 if n == 0.

Sparse (CSR) data kernels
-------------------------
``linear_csr``, ``softmax_ce_sums_csr`` and ``logistic_sums_csr`` are the
data kernels above for a CSR matrix ``X`` of shape (n, d), given by its three
arrays in place of ``X``; every other argument, the result and the rules are
those of the dense kernel of the same name (``n`` is ``indptr.size - 1``,
``d`` is ``coef.shape[-1]``):

linear_csr(data, indices, indptr, coef, intercept, out) -> out
softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out, *, skip_negligible=True) -> (loss_sum, weight_total)
logistic_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out) -> (loss_sum, intercept_grad_sum, weight_total)

``data`` is a C-contiguous ``F`` vector (float32 stays float32), ``indices``
and ``indptr`` C-contiguous vectors of one dtype, int32 or int64; row ``i``
holds the entries ``k`` in ``indptr[i] <= k < indptr[i + 1]`` at columns
``indices[k]`` (checked to lie in ``[0, d)``).  Indices may be unsorted,
duplicated (the entries are summed, as scipy does) or hold explicit zeros;
rows may be empty.  The kernels never read a dense form of ``X`` and never
sort or otherwise modify the arrays.  Unlike the dense kernels,
``softmax_ce_sums_csr`` also takes ``coef`` and ``coef_grad_out`` as the
transposed views of C-contiguous (d, C) arrays (F-contiguous (C, d)): the
layout in which its rows of weights are read and its gradient rows are
updated, so that the public functions pass their ``W`` and ``dW`` without a
transpose.  ``softmax_ce_sums_csr`` has the two
regimes of the dense kernel too, chosen by :func:`._tiling.plan_csr` (tiled
beyond 4,096 float32 or 2,048 float64 classes, tiles of 1,024 / 512
classes), with the same skipping and bound; its tiled regime holds no more
than a tile of logits per block of rows (the compiled one: weights and
gradient in transposed class tiles, two more arrays of coef's size).

Optional whole-epoch kernel
---------------------------
A backend module MAY also export ``train_epoch`` (the numba backend does;
``hasattr(module, "train_epoch")`` tells).  It runs one epoch of minibatch
training of softmax regression with a built-in learner in compiled code:

train_epoch(X, y, sample_weight, W, b, order, batch_size, l2, fit_intercept, \
kind, hyperparameters, lr, t, state, weight_mean=None, l1=0.0) -> (loss, t)
    ``X`` (n, d) ``F`` or uint8, ``y`` (n,) intp labels, ``sample_weight``
    None or an ``F`` (n,) vector, ``W`` (d, C) and ``b`` (C,) ``F`` arrays
    updated in place.  ``W`` is normally ``SoftmaxModel.W``, the view
    ``coef.T`` of the (C, d) weights, and is then used without a copy (so are
    learner states of the same layout); another layout is copied in and back.
    ``order`` is a 1-D integer array of
    row indices of ``X``: the epoch visits ``X[order]`` in that order, in
    consecutive minibatches of ``batch_size`` rows (the last may be shorter;
    a ``batch_size`` above ``len(order)`` is the full batch).
    Shuffling is the caller's job (e.g. ``order = rng.permutation(n)``), so
    the random stream stays the caller's and the epoch is reproducible.
    Each minibatch runs the forward/backward pass of
    ``_objective.softmax_loss_grad`` (with ``l2``; the bias gradient is not
    used when ``fit_intercept`` is false and ``b`` is then left unchanged),
    increments the step counter ``t`` and applies the learner's update with
    learning rate ``lr`` (the rate of this epoch, e.g. ``learner.lr_at(epoch)``).
    ``kind`` is a row of :data:`fastsoftmax.learners.LEARNER_TABLE` (which
    gives the kernels its code, state names and hyper-parameter names),
    ``hyperparameters`` the learner's ``.hyperparameters()`` dict, ``t`` its
    ``.t`` and ``state`` its ``.state`` list
    (one dict of state arrays for ``W`` and, with ``fit_intercept``, one for
    ``b``; None or empty dicts for "sgd"), whose arrays are updated in
    place.  The updates are those of :mod:`fastsoftmax.learners` step for
    step, so one call equals the Python loop of ``Trainer.train_minibatch``
    over the same minibatches (up to rounding).  With ``sample_weight``,
    each minibatch loss is the weighted mean over its rows (divided by the
    sum of its weights); given ``weight_mean`` (a positive float), the data
    term is divided by ``len(batch) * weight_mean`` instead (an unbiased
    estimate of the full weighted objective, the estimators' convention).
    With ``l1 > 0`` the loss gains ``l1 * ||W||_1`` and ``W`` steps along the
    L1 pseudo-gradient, within its orthant
    (:func:`fastsoftmax.learners.l1_pseudo_gradient`).
    Bad shapes, row indices or labels, and a learner code without a compiled
    branch, raise before anything is updated.
    Returns the mean of the minibatch losses (each before its update,
    penalty included) weighted by their number of rows (0.0 for an empty
    ``order``) and the new ``t`` (``t`` + number of minibatches).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
from collections.abc import Iterator
from types import ModuleType
from typing import cast

import numpy as np

#: Backend names, fastest first: the default is the first one that imports.
BACKEND_NAMES = ("cython", "numba", "numpy", "naive")

KERNEL_NAMES = (
    "softmax",
    "log_softmax",
    "logsumexp",
    "linear",
    "cross_entropy",
    "softmax_ce_sums",
    "sigmoid",
    "binary_cross_entropy",
    "logistic_sums",
    "classification_error",
    "linear_csr",
    "softmax_ce_sums_csr",
    "logistic_sums_csr",
)



def weight_total(sample_weight: np.ndarray | None, n: int) -> float:
    """The weight total of ``n`` rows as a float: ``n`` unweighted, else the float64 sum."""
    return float(n) if sample_weight is None else float(np.sum(sample_weight, dtype=np.float64))


_modules: dict[str, ModuleType | None] = {}
_import_errors: dict = {}
# the backend chosen by use_backend: per context, so that asyncio tasks on one thread don't
# see each other's choice (a new thread starts with an empty context, so threads are isolated too)
_context_name: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fastsoftmax_backend", default=None
)
_global: dict[str, str | None] = {"name": None}


def _load(name: str) -> ModuleType | None:
    if name in _modules:
        return _modules[name]
    if name in _import_errors:
        return None
    try:
        module = importlib.import_module(f"{__name__}.{name}")
    except ImportError as exc:  # e.g. the compiled extension was not built
        _import_errors[name] = exc
        return None
    _modules[name] = module
    return module


def _check_name(name: str) -> str:
    if name not in BACKEND_NAMES:
        raise ValueError(
            f"unknown backend {name!r}; expected one of {', '.join(map(repr, BACKEND_NAMES))}"
        )
    if _load(name) is None:
        raise ImportError(f"backend {name!r} is not available: {_import_errors[name]}")
    return name


def backends() -> list[str]:
    """List the names of the backends that can be used here, fastest first.

    Examples
    --------
    >>> import fastsoftmax
    >>> "numpy" in fastsoftmax.backends()
    True
    """
    return [name for name in BACKEND_NAMES if _load(name) is not None]


def _default_name() -> str:
    env = os.environ.get("FASTSOFTMAX_BACKEND")
    if env:
        return _check_name(env.strip().lower())
    return backends()[0]


def get_backend() -> str:
    """Return the name of the backend in use (context, then global, then default)."""
    name = _context_name.get() or _global["name"]
    if name is None:
        name = _global["name"] = _default_name()
    return name


def set_backend(name: str) -> None:
    """Make ``name`` the default backend for this process.

    Parameters
    ----------
    name : {"cython", "numba", "numpy", "naive"} or None
        ``None`` restores the automatic choice (``$FASTSOFTMAX_BACKEND`` if
        set, else the fastest available backend).

    Examples
    --------
    >>> import fastsoftmax
    >>> fastsoftmax.set_backend("numpy")
    >>> fastsoftmax.get_backend()
    'numpy'
    >>> fastsoftmax.set_backend(None)
    """
    _global["name"] = None if name is None else _check_name(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager that uses backend ``name`` within its block, in this thread or task.

    Examples
    --------
    >>> import fastsoftmax
    >>> with fastsoftmax.use_backend("naive"):
    ...     fastsoftmax.get_backend()
    'naive'
    """
    _check_name(name)
    token = _context_name.set(name)
    try:
        yield name
    finally:
        _context_name.reset(token)


def get_module(name: str | None = None) -> ModuleType:
    """Return the kernel module of backend ``name`` (``None``: the current one)."""
    # _check_name loaded it
    return cast(ModuleType, _modules[_check_name(get_backend() if name is None else name)])
