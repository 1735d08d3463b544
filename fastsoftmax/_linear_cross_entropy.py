"""``linear_cross_entropy``: PyTorch's fused linear layer + cross-entropy, on the objective layer.

The loss and the gradients of ``weight`` and ``bias`` come from the fused
``softmax_ce_sums`` kernel through :func:`fastsoftmax._objective.softmax_loss_grad`
(which never forms the logits of all rows); the per-row losses
(``reduction="none"``), the loss alone and the gradient of ``input`` come from
one pass over row blocks that forms one block of logits at a time.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from . import _loss_options, _objective
from ._array_api import caller_namespace
from ._backends import get_module
from ._validation import (
    as_numeric_array,
    check_bool,
    check_data_matrix,
    check_reduction,
    check_sample_weight,
    compute_dtype,
    is_sparse,
)

__all__ = ["linear_cross_entropy"]

GRAD_NAMES = ("weight", "bias", "input")


def _check_grad(grad):
    """``grad`` as a tuple of names from GRAD_NAMES (``None``: no gradient)."""
    if grad is None:
        return ()
    names = (grad,) if isinstance(grad, str) else grad
    if not isinstance(names, Iterable):
        raise TypeError(
            f"grad must be None, a name or a sequence of names from {GRAD_NAMES}, got {grad!r}"
        )
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or name not in GRAD_NAMES:
            raise ValueError(
                f"grad must name arguments among {', '.join(map(repr, GRAD_NAMES))}, got {name!r}"
            )
    return tuple(dict.fromkeys(names))  # unique, in the order given


def _check_linear_inputs(input, weight, bias):
    """(X (n, D) dense or CSR, coef (C, D), bias (C,) or None, dtype, leading shape of input)."""
    W = as_numeric_array(weight, "weight")
    if W.ndim != 2:
        raise ValueError(
            f"weight must be a 2-D array of shape (n_classes, n_features), got shape {W.shape}"
        )
    if is_sparse(input):
        X = check_data_matrix(input, "input")
        leading = (X.shape[0],)
    else:
        X = as_numeric_array(input, "input")
        if X.ndim < 1:
            raise ValueError("input must have at least 1 dimension (..., n_features), got a scalar")
        leading = X.shape[:-1]
        X = check_data_matrix(X.reshape(-1, X.shape[-1]) if X.ndim != 2 else X, "input")
    if X.shape[1] != W.shape[1]:
        raise ValueError(
            f"input has {X.shape[1]} features but weight has {W.shape[1]} columns "
            "(weight is (n_classes, n_features), as in PyTorch)"
        )
    dtypes = [W.dtype] if X.dtype == np.uint8 else [W.dtype, X.dtype]
    if bias is not None:
        bias = as_numeric_array(bias, "bias")
        dtypes.append(bias.dtype)
    dtype = compute_dtype(*dtypes)
    n_classes = W.shape[0]
    if bias is not None:
        if bias.shape != (n_classes,):
            raise ValueError(
                f"bias must have shape ({n_classes},) because weight has {n_classes} rows "
                f"(classes), got shape {bias.shape}"
            )
        bias = np.ascontiguousarray(bias, dtype=dtype)
    if is_sparse(X):
        X = X if X.dtype == dtype else X.astype(dtype)
    elif X.dtype != np.uint8:
        X = np.ascontiguousarray(X, dtype=dtype)
    else:
        X = np.ascontiguousarray(X)
    return X, np.ascontiguousarray(W, dtype=dtype), bias, dtype, leading


def _row_block_pass(kernels, X, coef, bias, targets, label_smoothing, *, losses, input_grad,
                    backend, rows_per_block):  # fmt: skip
    """Per-row losses and/or ``d(sum of losses) / d input`` (unnormalised), block by block."""
    n = X.shape[0]
    n_classes = coef.shape[0]
    row_loss = np.empty(n, coef.dtype) if losses else None
    dX = np.empty((n, coef.shape[1]), coef.dtype) if input_grad else None
    rows = rows_per_block or _loss_options.default_rows_per_block(n_classes, n)
    logits = np.empty((min(rows, n), n_classes), coef.dtype)
    for i0 in range(0, n, rows):
        i1 = min(i0 + rows, n)
        z = _objective.decision(X[i0:i1], coef, bias, out=logits[: i1 - i0], backend=backend)
        block = _loss_options.ClassTargets(
            targets.y[i0:i1],
            None if targets.loss_weight is None else targets.loss_weight[i0:i1],
            None if targets.smoothing_weight is None else targets.smoothing_weight[i0:i1],
            targets.class_weight,
            0.0,
        )
        if losses:
            row_loss[i0:i1] = _loss_options.row_losses(kernels, z, block, label_smoothing)
        if input_grad:
            np.matmul(_loss_options.logit_grad(kernels, z, block, label_smoothing), coef,
                      out=dX[i0:i1])  # fmt: skip
    return row_loss, dX


@caller_namespace
def linear_cross_entropy(
    input: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    bias: ArrayLike | None = None,
    *,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    class_weight: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    grad: str | Iterable[str] | None = None,
    rows_per_block: int | None = None,
    skip_negligible: bool = True,
    backend: str | None = None,
) -> float | np.ndarray | tuple[float, dict[str, np.ndarray]]:
    """Cross-entropy of the linear layer ``input @ weight.T + bias``, without forming its logits.

    PyTorch's ``F.cross_entropy(F.linear(input, weight, bias), target, ...)``
    (and ``torch.nn.functional.linear_cross_entropy``) for class labels, with
    the loss's gradients on request.  The loss and the gradients of ``weight``
    and ``bias`` come from the fused kernel of :func:`softmax_cross_entropy_grad`,
    which keeps only a block of logits in memory at a time.

    Parameters
    ----------
    input : array_like of shape (..., n_features) or scipy.sparse matrix (n_samples, n_features)
        Features, float32, float64 or uint8 (PyTorch's ``input``).
    weight : array_like of shape (n_classes, n_features)
        The linear layer's weight in PyTorch's layout (that of ``coef_``).
    target : array_like of shape (...)
        Integer class labels in ``[0, n_classes)`` or ``ignore_index``, one per
        row of ``input`` (the shape of ``input`` without its last axis).
    bias : array_like of shape (n_classes,), optional
        The linear layer's bias; ``None`` means none.
    reduction : {"mean", "sum", "none"}, default "mean"
        As in :func:`cross_entropy` ("mean" divides by the summed weights of the
        labels that are not ignored).  Gradients need "mean" or "sum".
    label_smoothing : float in [0, 1], default 0.0
        PyTorch's label smoothing (see :func:`cross_entropy`).
    ignore_index : int, default -100
        Labels equal to it are left out of the loss and its normaliser.
    class_weight : array_like of shape (n_classes,), optional
        Per-class weights: PyTorch's ``weight=`` of ``cross_entropy``, named
        ``class_weight`` here because ``weight`` is the layer's weight.
    sample_weight : array_like of shape (...), optional
        Non-negative finite weight of each row (the shape of ``target``).
    grad : str or sequence of str, optional
        The gradients to return, by argument name: any of ``"weight"``,
        ``"bias"`` and ``"input"`` (``grad=("weight", "bias")`` for training
        the layer; add ``"input"`` to train an embedding in front of it).
        ``None`` (the default) returns the loss alone.
    rows_per_block : int, optional
        Rows per block of the passes that form logits (the per-row losses and
        the gradient of ``input``); by default about 4 million logits at a time.
    skip_negligible : bool, default True
        With many classes (the fused kernel's tiled regime, from about 2,000
        classes at 256 float32 features), the gradients of ``weight`` and
        ``bias`` leave out every (row, tile of classes) pair that does not hold
        the row's label and whose largest probability is below ``tau =
        np.finfo(dtype).eps``.  The loss stays exact; each entry of the weight
        gradient ``[c, j]`` moves by at most ``tau * sum_i s_i |input[i, j]|``
        and of the bias gradient by ``tau * sum_i s_i`` (``s`` the row weights),
        divided by the normaliser for "mean".  The gradient of ``input`` is
        always exact.  ``False``: every entry.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    loss : float or ndarray
        A Python float for "mean" and "sum", the per-row losses of the shape of
        ``target`` (in the computation dtype) for "none".
    grads : dict of str to ndarray
        Only when ``grad`` names something: ``{"weight": d loss / d weight
        (n_classes, n_features), "bias": (n_classes,), "input": (the shape of
        input)}``, the requested entries only, in the computation dtype.  The
        bias gradient is returned for ``bias=None`` too (that of a zero bias).

    Raises
    ------
    ValueError
        A gradient requested with ``reduction="none"``, a name in ``grad``
        that is no argument, bad labels, weights or shapes (the message names
        the argument).

    See Also
    --------
    cross_entropy : The loss of given logits, with every PyTorch option.
    softmax_cross_entropy_grad : The same loss and gradients in the layout of
        ``W`` (n_features, n_classes), with an L2 penalty.

    Notes
    -----
    The computation dtype is ``weight``'s promoted with ``input``'s and
    ``bias``'s (a uint8 input is read as 0..255 and takes no part), so float32
    stays float32.  The gradient of ``input`` costs two more matrix products
    (the logits of each block are formed again); the loss alone, or "none",
    one.  Extra memory: one block of logits, and for label smoothing a
    bounded tile of class sums.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import linear_cross_entropy
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> weight = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])  # 3 classes, 2 features
    >>> round(linear_cross_entropy(x, weight, [0, 1, 2]), 6)
    0.901719
    >>> loss, grads = linear_cross_entropy(x, weight, [0, 1, -100], grad=("weight", "bias"))
    >>> grads["weight"].shape, grads["bias"].shape
    ((3, 2), (3,))
    >>> loss, grads = linear_cross_entropy(x, weight, [0, 1, 2], label_smoothing=0.1,
    ...                                    grad="input")
    >>> grads["input"].shape
    (3, 2)
    """
    reduction = check_reduction(reduction)
    wanted = _check_grad(grad)
    if wanted and reduction == "none":
        raise ValueError(
            "reduction='none' gives no scalar loss to differentiate: "
            "use reduction='mean' or 'sum' with grad="
        )
    label_smoothing = _loss_options.check_label_smoothing(label_smoothing)
    ignore_index = _loss_options.check_ignore_index(ignore_index)
    skip_negligible = check_bool("skip_negligible", skip_negligible)
    if rows_per_block is not None:
        from ._validation import check_int

        rows_per_block = check_int("rows_per_block", rows_per_block, 1)
    X, coef, bias_arr, dtype, leading = _check_linear_inputs(input, weight, bias)
    n, n_classes = X.shape[0], coef.shape[0]
    target_arr: np.ndarray = np.asarray(target)
    if target_arr.shape != leading:
        raise ValueError(
            f"target must have shape {leading} (one label per row of input), "
            f"got shape {target_arr.shape}"
        )
    row_weight = None
    if sample_weight is not None:
        given: np.ndarray = as_numeric_array(sample_weight, "sample_weight")
        if given.shape != leading:
            raise ValueError(
                f"sample_weight must have shape {leading} (one weight per row of input), "
                f"got shape {given.shape}"
            )
        row_weight = check_sample_weight(given.reshape(-1), n, dtype)
    class_weights = _loss_options.check_class_weight(class_weight, n_classes, dtype, "class_weight")
    targets = _loss_options.class_targets(
        target_arr.reshape(-1), n, n_classes, dtype, ignore_index=ignore_index,
        class_weight=class_weights, sample_weight=row_weight,
    )  # fmt: skip
    kernels = get_module(backend)
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / targets.normalizer if targets.normalizer > 0 else 0.0

    grads: dict[str, np.ndarray] = {}
    loss: float | None = None
    if "weight" in wanted or "bias" in wanted:
        loss, coef_grad, bias_grad = _objective.softmax_loss_grad(
            X, coef, bias_arr, targets.y, targets.loss_weight, 0.0,
            normalizer=targets.normalizer if reduction == "mean" else 1.0,
            label_smoothing=label_smoothing, smoothing_weight=targets.smoothing_weight,
            class_weight=class_weights, backend=backend, skip_negligible=skip_negligible,
        )  # fmt: skip
        grads["weight"], grads["bias"] = coef_grad, bias_grad
    need_losses = loss is None
    if need_losses or "input" in wanted:
        row_loss, dX = _row_block_pass(
            kernels, X, coef, bias_arr, targets, label_smoothing, losses=need_losses,
            input_grad="input" in wanted, backend=backend, rows_per_block=rows_per_block,
        )  # fmt: skip
        if need_losses:
            if reduction == "none":
                return row_loss.reshape(leading)
            loss = float(np.sum(row_loss, dtype=np.float64)) * scale
        if dX is not None:
            if scale != 1.0:
                dX *= dtype.type(scale)
            grads["input"] = dX.reshape(leading + (coef.shape[1],))
    assert loss is not None
    if not wanted:
        return loss
    return loss, {name: grads[name] for name in wanted}
