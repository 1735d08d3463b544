"""PyTorch's target and weight options of the cross-entropy, written once above the kernels.

``torch.nn.functional.cross_entropy`` takes per-class weights (``weight``), an
``ignore_index`` and ``label_smoothing``.  Here they become what the thin
kernels already understand, so no kernel changes and every backend (and CSR
data) gets them:

- class weights ``w``, an ignored target and ``sample_weight`` ``s`` become one
  per-row weight of the cross-entropy term, ``r_i = s_i w[y_i]`` (0 for an
  ignored row), and ``reduction="mean"`` divides by ``sum_i r_i``, as PyTorch
  divides by the summed weights of the targets that are not ignored;
- label smoothing ``eps`` mixes in PyTorch's smoothing term
  ``eps / C * sum_c w_c (-log p_ic)`` per row, weighted by ``u_i = s_i`` (0
  for an ignored row) and divided by the same normaliser; the fused gradient
  adds it as a cheap correction above the kernel
  (:func:`fastsoftmax._objective.softmax_loss_grad`).

Where PyTorch's mean divides 0 by 0 (every target ignored, no rows) the result
is 0, the rule of ``sample_weight`` in fastsoftmax.

Private: the public functions call :func:`class_targets` and the per-row helpers
with arrays they have checked.
"""

from __future__ import annotations

import numbers
import operator
from dataclasses import dataclass

import numpy as np

from ._validation import as_numeric_array, check_labels, check_sample_weight

__all__ = [
    "ClassTargets",
    "check_class_axis",
    "check_class_weight",
    "check_ignore_index",
    "check_label_smoothing",
    "check_position_weight",
    "class_targets",
    "default_rows_per_block",
    "logit_grad",
    "probability_losses",
    "row_losses",
    "weighted",
]


def check_label_smoothing(value, name: str = "label_smoothing") -> float:
    """A smoothing amount: a real number in [0, 1], as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(value).__name__}")
    value = float(value)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return value


def check_ignore_index(value, name: str = "ignore_index") -> int:
    """The label value to ignore: an integer (any value, as in PyTorch)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}") from None


def check_class_weight(weight, n_classes: int, dtype, name: str = "weight") -> np.ndarray | None:
    """Per-class weights: None, or ``n_classes`` finite non-negative numbers in ``dtype``."""
    if weight is None:
        return None
    w = as_numeric_array(weight, name)
    if w.shape != (n_classes,):
        raise ValueError(
            f"{name} must have shape ({n_classes},) (one weight per class), got shape {w.shape}"
        )
    return check_sample_weight(w, n_classes, dtype, name)  # finite and non-negative


def check_class_axis(axis, ndim: int, name: str = "logits") -> int:
    """The class axis of K-dimensional logits: PyTorch's axis 1 by default.

    Logits must have at least 2 dimensions, (n_samples, n_classes, d1, ...).
    """
    if ndim < 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (n_samples, n_classes) "
            f"(or K-dimensional, (n_samples, n_classes, d1, ...)), got {ndim} dimension(s)"
        )
    if axis is None:
        return 1
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError("axis must be an integer (the class axis) or None, got bool")
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer (the class axis) or None, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of bounds for {name} of {ndim} dimensions")
    return axis % ndim


def check_position_weight(sample_weight, loss_shape, dtype, name: str = "sample_weight"):
    """``sample_weight`` of the per-position losses, flattened to one weight per row.

    For 2-D logits this is :func:`check_sample_weight` (shape ``(n_samples,)``);
    for K-dimensional ones the weights have the losses' shape
    ``(n_samples, d1, ...)``, or ``(n_samples,)`` to weight every position of a
    sample alike.
    """
    if sample_weight is None or len(loss_shape) == 1:
        return check_sample_weight(sample_weight, loss_shape[0] if loss_shape else 1, dtype, name)
    sw = as_numeric_array(sample_weight, name)
    if sw.shape == (loss_shape[0],):
        sw = sw.reshape((loss_shape[0],) + (1,) * (len(loss_shape) - 1))
    elif sw.shape != tuple(loss_shape):
        raise ValueError(
            f"{name} must have the shape of the losses {tuple(loss_shape)} or ({loss_shape[0]},) "
            f"(one weight per sample), got shape {sw.shape}"
        )
    flat = np.broadcast_to(sw, loss_shape).reshape(-1)
    return check_sample_weight(flat, flat.shape[0], dtype, name)


@dataclass(frozen=True)
class ClassTargets:
    """Class labels with PyTorch's options resolved into per-row weights.

    ``y``: intp labels in ``[0, C)`` (an ignored row holds 0);
    ``loss_weight``: ``r_i = s_i w[y_i]`` (0 when ignored), None for all ones;
    ``smoothing_weight``: ``u_i = s_i`` (0 when ignored), None for all ones;
    ``class_weight``: ``w`` or None; ``normalizer``: ``sum_i r_i``, the divisor of
    ``reduction="mean"``.
    """

    y: np.ndarray
    loss_weight: np.ndarray | None
    smoothing_weight: np.ndarray | None
    class_weight: np.ndarray | None
    normalizer: float


def class_targets(target, n_rows: int, n_classes: int, dtype, *, ignore_index: int,
                  class_weight=None, sample_weight=None, name: str = "target",
                  classes_from: str = "logits has") -> ClassTargets:  # fmt: skip
    """Check labels (``ignore_index`` allowed) and build the per-row weights.

    ``class_weight`` and ``sample_weight`` are checked arrays of ``dtype`` (or
    None).  Labels other than ``ignore_index`` must lie in ``[0, n_classes)``.
    """
    y = np.asarray(target)
    ignored = None
    # the mask only when ignore_index lies within the labels' range (not for -100 and valid labels)
    if y.dtype.kind in "iuf" and y.ndim == 1 and y.size and y.min() <= ignore_index <= y.max():
        ignored = y == ignore_index
        y = np.where(ignored, 0, y)
    y = check_labels(y, n_rows, n_classes, name, classes_from=classes_from)
    keep = None if ignored is None else ~ignored
    smoothing_weight = sample_weight
    if keep is not None:
        smoothing_weight = keep.astype(dtype) if sample_weight is None else sample_weight * keep
    loss_weight = smoothing_weight
    if class_weight is not None:
        row_class_weight = class_weight[y]
        loss_weight = row_class_weight if loss_weight is None else loss_weight * row_class_weight
    if loss_weight is None:
        normalizer = float(n_rows)
    else:
        normalizer = float(np.sum(loss_weight, dtype=np.float64))
    return ClassTargets(y, loss_weight, smoothing_weight, class_weight, normalizer)


def _smoothing_losses(log_proba, class_weight):
    # sum_c w_c (-log p_ic) per row; a class of weight 0 adds nothing, even at log p = -inf
    if class_weight is None:
        return -np.sum(log_proba, axis=1)
    terms = np.multiply(log_proba, class_weight, out=np.zeros_like(log_proba),
                        where=class_weight != 0)  # fmt: skip
    return -np.sum(terms, axis=1)


def weighted(losses, weight):
    # a zero weight drops its row, even one whose loss is infinite (0 * inf)
    if weight is None:
        return losses
    return np.multiply(losses, weight, out=np.zeros_like(losses), where=weight != 0)


def row_losses(kernels, logits: np.ndarray, targets: ClassTargets, label_smoothing: float):
    """Per-row weighted losses ``(1 - eps) r_i CE_i + eps / C u_i sum_c w_c (-log p_ic)``.

    ``logits`` is C-contiguous (n, C) of a float dtype; the losses have its dtype.
    """
    n, n_classes = logits.shape
    losses = np.empty(n, logits.dtype)
    if n:
        kernels.cross_entropy(logits, targets.y, losses)
    losses = weighted(losses, targets.loss_weight)
    if not label_smoothing:
        return losses
    log_proba = np.empty_like(logits)
    if n:
        kernels.log_softmax(logits, log_proba)
    smooth = weighted(_smoothing_losses(log_proba, targets.class_weight),
                       targets.smoothing_weight)  # fmt: skip
    eps = logits.dtype.type(label_smoothing)
    return (1 - eps) * losses + (eps / n_classes) * smooth


def probability_losses(kernels, logits: np.ndarray, proba: np.ndarray, label_smoothing: float,
                       class_weight):  # fmt: skip
    """Per-row ``-sum_c w_c t_ic log p_ic`` for probability targets ``t`` (unweighted rows).

    With label smoothing the targets are ``(1 - eps) t + eps / C``, as in PyTorch.
    A zero target (or class weight) contributes 0 even where ``log p`` is ``-inf``.
    """
    n_classes = logits.shape[1]
    if label_smoothing:
        eps = logits.dtype.type(label_smoothing)
        proba = (1 - eps) * proba + eps / n_classes
    if class_weight is not None:
        proba = proba * class_weight
    log_proba = np.empty_like(logits)
    if logits.size:
        kernels.log_softmax(logits, log_proba)
    terms = np.multiply(proba, log_proba, out=np.zeros_like(log_proba), where=proba != 0)
    return -np.sum(terms, axis=1)


def logit_grad(kernels, logits: np.ndarray, targets: ClassTargets, label_smoothing: float):
    """``d(sum of row_losses) / d logits`` (n, C), written into a new array.

    Per row ``a_i p_i - (1 - eps) r_i e_{y_i} - eps / C u_i w`` with
    ``a_i = (1 - eps) r_i + eps / C u_i sum_c w_c``; rows of weight 0 give 0.
    """
    n, n_classes = logits.shape
    dtype = logits.dtype
    grad = np.empty_like(logits)
    if n:
        kernels.softmax(logits, grad)
    eps = float(label_smoothing)
    r = np.ones(n) if targets.loss_weight is None else targets.loss_weight.astype(np.float64)
    u = np.ones(n) if targets.smoothing_weight is None else targets.smoothing_weight
    w = targets.class_weight
    w_sum = float(n_classes) if w is None else float(np.sum(w, dtype=np.float64))
    q = (eps / n_classes) * np.asarray(u, np.float64)
    a = (1 - eps) * r + w_sum * q
    grad *= a.astype(dtype)[:, None]
    grad[a == 0] = 0  # no NaN from rows that are dropped
    grad[np.arange(n), targets.y] -= ((1 - eps) * r).astype(dtype)
    if eps:
        grad -= np.outer(q, np.ones(n_classes) if w is None else w).astype(dtype)
    return grad


def default_rows_per_block(n_classes: int, n_rows: int) -> int:
    """Rows per block for passes that form a block of logits: about 4M logits at a time."""
    return max(1, min(n_rows, max(16, (1 << 22) // max(n_classes, 1))))

