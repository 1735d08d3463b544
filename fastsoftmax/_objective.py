"""The training objectives, built once on top of the backends' data-term sums.

Private and non-validating: callers (the public functions, the estimators,
the Trainer, the epoch driver) pass arrays that are already checked: ``X``
2-D C-contiguous float32/float64/uint8 or a CSR matrix checked by
:func:`fastsoftmax._validation.check_sparse_matrix` (data of ``coef``'s
dtype), ``coef`` C-contiguous in the layout of
``coef_``, (n_classes, n_features) (a vector (n_features,) for the binary
model), ``intercept`` of ``coef``'s dtype or None, ``y`` intp labels in range
(float 0/1 targets for the binary model), ``sample_weight`` None or a
non-negative vector of ``coef``'s dtype.

The objective of a block of rows is

    data_sum / normalizer + penalty(coef)

where the backend kernel (``softmax_ce_sums`` / ``logistic_sums``, see
:mod:`fastsoftmax._backends`) returns ``data_sum`` (the weighted loss sum and
its gradient sums) and the weight total.  This module is the only place that
normalises, adds the penalty or applies the rules below; a new penalty for the
full-batch path goes here and nowhere else.

- ``normalizer`` defaults to the weight total (the weighted mean); the
  estimators' minibatch rule passes ``len(batch) * mean_weight`` instead.
- A normalizer of 0 (no rows, or all weights 0) leaves only the penalty.
- Rows of weight 0 contribute nothing, even when their features are NaN or
  infinite (they are dropped before the kernel, like ``cross_entropy`` drops
  their losses); so all weights 0 give only the penalty.
- The penalty ``0.5 * l2 * ||coef||^2`` is accumulated in float64 and is
  exactly 0 for ``l2 == 0`` (whatever the weights: no ``0 * inf``).
"""

from __future__ import annotations

import numpy as np

from ._backends import get_module
from ._loss_options import weighted


def _data_kernel(kernels, name, X, *args, **options):
    """Kernel ``name`` on a dense ``X``, or its CSR counterpart ``name_csr`` on a CSR ``X``.

    The only place that tells dense from sparse input: everything around the
    kernels (normalisation, penalties, the rules above) is shared.
    """
    if isinstance(X, np.ndarray):
        return getattr(kernels, name)(X, *args, **options)
    return getattr(kernels, name + "_csr")(X.data, X.indices, X.indptr, *args, **options)


def l2_penalty(coef, l2):
    """``0.5 * l2 * ||coef||^2`` as a float (accumulated in float64)."""
    if not l2:
        return 0.0
    flat = coef.reshape(-1).astype(np.float64)
    return 0.5 * float(l2) * float(np.dot(flat, flat))


def _add_l2_gradient(coef_grad, coef, l2):
    # the gradient of l2_penalty, in coef's dtype
    if l2:
        coef_grad += coef.dtype.type(l2) * coef


def _without_zero_weights(X, y, sample_weight):
    """The rows of weight > 0 (a copy only when some weight is 0)."""
    if sample_weight is None:
        return X, y, sample_weight
    keep = sample_weight != 0
    if keep.all():
        return X, y, sample_weight
    return X[keep], y[keep], sample_weight[keep]


def _inverse_normalizer(weight_total, normalizer):
    norm = weight_total if normalizer is None else float(normalizer)
    return 1.0 / norm if norm > 0 else 0.0


def _scale(grad, scale):
    # scale 0: no data term, even where the sums are not finite
    if scale:
        grad *= grad.dtype.type(scale)
    else:
        grad.fill(0)


def cross_entropy_sum(logits, y, sample_weight=None, *, backend=None):
    """The weighted sum of the rows' cross-entropies, a Python float (float64 sum).

    ``logits`` C-contiguous (n, C) float; a zero weight drops its row even when
    its loss is infinite, as :func:`fastsoftmax.cross_entropy` does.
    """
    n = logits.shape[0]
    if not n:
        return 0.0
    losses = get_module(backend).cross_entropy(logits, y, np.empty(n, logits.dtype))
    return float(np.sum(weighted(losses, sample_weight), dtype=np.float64))


def decision(X, coef, intercept=None, *, out=None, backend=None):
    """Logits ``X coef^T + intercept``, shape (n_samples, n_classes), in coef's dtype.

    A vector ``coef`` (the binary model, ``intercept`` a float or None) gives
    the margins, shape (n_samples,).
    """
    kernels = get_module(backend)
    if coef.ndim == 1:
        bias = None if intercept is None else np.full(1, intercept, coef.dtype)
        column = _data_kernel(
            kernels, "linear", X, coef[None, :], bias, np.empty((X.shape[0], 1), coef.dtype)
        )
        if out is None:
            return column[:, 0]
        out[...] = column[:, 0]
        return out
    if out is None:
        out = np.empty((X.shape[0], coef.shape[0]), coef.dtype)
    return _data_kernel(kernels, "linear", X, coef, intercept, out)


def softmax_loss_grad(X, coef, intercept, y, sample_weight=None, l2=0.0, *, normalizer=None,
                      label_smoothing=0.0, smoothing_weight=None, class_weight=None,
                      backend=None, coef_grad_out=None, intercept_grad_out=None,
                      skip_negligible=True):  # fmt: skip
    """Softmax regression objective and its gradients.

    Returns ``(loss, coef_grad, intercept_grad)``: a float, an array like
    ``coef`` (C, d) and one of shape (C,) (the gradient for a zero intercept
    when ``intercept`` is None).  ``coef_grad_out`` / ``intercept_grad_out``
    (C-contiguous, of coef's dtype) are written and returned when given.

    With ``label_smoothing = eps > 0`` the data term is PyTorch's smoothed
    cross-entropy ``(1 - eps) sum_i s_i CE_i + eps / C sum_i u_i sum_c w_c
    (lse_i - z_ic)`` (``s`` = sample_weight, ``u`` = smoothing_weight, ``w`` =
    class_weight; None means ones), still divided by ``sum_i s_i`` by default.
    The kernel runs once with the row weights ``a_i = (1 - eps) s_i + eps / C
    u_i sum_c w_c``; :func:`_add_smoothing_sums` adds the rest, which is linear
    in the rows (no logits).  Rows with ``a_i = 0`` are dropped.

    ``skip_negligible`` goes to the kernel: with many classes (its tiled
    regime) it leaves out the (row, class tile) pairs whose probabilities are
    all below the float epsilon (see :mod:`fastsoftmax._backends._tiling` for
    the bound); False gives the exact sums.
    """
    dtype = coef.dtype
    coef_grad = np.empty(coef.shape, dtype) if coef_grad_out is None else coef_grad_out
    intercept_grad = (
        np.empty(coef.shape[0], dtype) if intercept_grad_out is None else intercept_grad_out
    )
    if label_smoothing:
        weight_total = float(X.shape[0]) if sample_weight is None else float(
            np.sum(sample_weight, dtype=np.float64))  # fmt: skip
        kernel_weight, smoothing_rows, w_sum = _smoothed_row_weights(
            X.shape[0], coef.shape[0], dtype, sample_weight, label_smoothing, smoothing_weight,
            class_weight,
        )  # fmt: skip
        keep = kernel_weight != 0
        if not keep.all():
            X, y, kernel_weight, smoothing_rows = X[keep], y[keep], kernel_weight[keep], smoothing_rows[keep]
        loss_sum, _ = _data_kernel(
            get_module(backend), "softmax_ce_sums", X, coef, intercept, y, kernel_weight,
            coef_grad, intercept_grad, skip_negligible=skip_negligible,
        )  # fmt: skip
        loss_sum += _add_smoothing_sums(X, coef, intercept, y, smoothing_rows, class_weight, w_sum,
                                        coef_grad, intercept_grad)  # fmt: skip
    else:
        X, y, sample_weight = _without_zero_weights(X, y, sample_weight)
        loss_sum, weight_total = _data_kernel(
            get_module(backend), "softmax_ce_sums", X, coef, intercept, y, sample_weight, coef_grad,
            intercept_grad, skip_negligible=skip_negligible,
        )  # fmt: skip
    scale = _inverse_normalizer(weight_total, normalizer)
    _scale(coef_grad, scale)
    _scale(intercept_grad, scale)
    _add_l2_gradient(coef_grad, coef, l2)
    return loss_sum * scale + l2_penalty(coef, l2), coef_grad, intercept_grad


def _smoothed_row_weights(n, n_classes, dtype, sample_weight, eps, smoothing_weight, class_weight):
    """The kernel's row weights ``a_i`` and the smoothing rows ``q_i = eps / C u_i`` (float64)."""
    s = np.ones(n) if sample_weight is None else sample_weight.astype(np.float64)
    u = np.ones(n) if smoothing_weight is None else smoothing_weight.astype(np.float64)
    w_sum = float(n_classes) if class_weight is None else float(np.sum(class_weight, dtype=np.float64))
    q = (eps / n_classes) * u
    return ((1 - eps) * s + w_sum * q).astype(dtype), q, w_sum


# classes per tile of the smoothing correction: its temporaries stay about 8 MB
_SMOOTHING_TILE_ENTRIES = 1 << 20


def _add_smoothing_sums(X, coef, intercept, y, q, class_weight, w_sum, coef_grad, intercept_grad):
    """Add what the kernel with weights ``a_i`` misses of the smoothed objective; return its loss.

    The smoothing term of row ``i`` minus its share in the kernel's sums is
    ``q_i (w_sum z_{i,y_i} - w . z_i)``, whose gradient is ``q_i (w_sum e_{y_i} -
    w) x_i^T``.  With ``S_c = sum_{y_i = c} q_i x_i`` and ``T = sum_c S_c``:
    ``coef_grad += w_sum S - w T^T``, ``intercept_grad += w_sum cnt - w sum(q)``
    (``cnt_c = sum_{y_i = c} q_i``) and the loss gains ``w_sum sum_c coef_c . S_c
    - (w coef) . T`` plus the intercept's share.  ``S`` is formed (in float64)
    only for the classes that occur, in tiles, so the extra memory stays
    bounded for any number of classes; the ``T`` part is a rank-1 update.
    """
    import scipy.sparse as sp

    n_classes, d = coef.shape
    dtype = coef.dtype
    present, row_class = np.unique(y, return_inverse=True)
    # row k holds q_i at the columns i of the rows of class present[k]
    indicator = sp.csr_matrix((q, (row_class.reshape(-1), np.arange(y.shape[0]))),
                              shape=(present.shape[0], y.shape[0]))  # fmt: skip
    tile = max(1, _SMOOTHING_TILE_ENTRIES // max(d, 1))
    row_sum = np.zeros(d)  # T
    loss = 0.0
    for k0 in range(0, present.shape[0], tile):
        classes = present[k0 : k0 + tile]
        class_sums = indicator[k0 : k0 + tile] @ X  # S of these classes
        if not isinstance(class_sums, np.ndarray):  # CSR X gives a sparse product
            class_sums = class_sums.toarray()
        class_sums = np.asarray(class_sums, dtype=np.float64)
        coef_grad[classes] += (w_sum * class_sums).astype(dtype)
        loss += w_sum * float(np.sum(coef[classes] * class_sums))
        row_sum += class_sums.sum(axis=0)
    if class_weight is None:  # w = 1: subtract T from every row, no temporaries
        coef_grad -= row_sum.astype(dtype)
        loss -= float(coef.sum(axis=0, dtype=np.float64) @ row_sum)
        w = np.ones(n_classes)
    else:
        from scipy.linalg import blas

        w = class_weight.astype(np.float64)
        # (w coef) . T: a matrix-vector product in coef's dtype (no copy of coef)
        loss -= float((class_weight @ coef).astype(np.float64) @ row_sum)
        # coef_grad -= w T^T in place: BLAS ger on the Fortran view coef_grad.T
        ger = blas.dger if dtype == np.float64 else blas.sger
        ger(-1.0, row_sum.astype(dtype), class_weight, a=coef_grad.T, overwrite_a=True)
    class_counts = np.bincount(y, weights=q, minlength=n_classes)
    q_total = float(np.sum(q))
    intercept_grad += (w_sum * class_counts - w * q_total).astype(dtype)
    if intercept is not None:
        b = intercept.astype(np.float64)
        loss += w_sum * float(b @ class_counts) - float(w @ b) * q_total
    return loss


def logistic_loss_grad(X, coef, intercept, y, sample_weight=None, l2=0.0, *, normalizer=None,
                       backend=None, coef_grad_out=None):  # fmt: skip
    """Binary logistic regression objective and its gradients.

    ``coef`` is (d,), ``intercept`` a float or None; returns
    ``(loss, coef_grad (d,), intercept_grad float)``.
    """
    coef_grad = np.empty(coef.shape, coef.dtype) if coef_grad_out is None else coef_grad_out
    X, y, sample_weight = _without_zero_weights(X, y, sample_weight)
    loss_sum, intercept_grad_sum, weight_total = _data_kernel(
        get_module(backend), "logistic_sums", X, coef, 0.0 if intercept is None else float(intercept),
        y, sample_weight, coef_grad,
    )  # fmt: skip
    scale = _inverse_normalizer(weight_total, normalizer)
    _scale(coef_grad, scale)
    _add_l2_gradient(coef_grad, coef, l2)
    intercept_grad = intercept_grad_sum * scale if scale else 0.0
    return loss_sum * scale + l2_penalty(coef, l2), coef_grad, intercept_grad


def softmax_loss_grad_flat_csr(X, theta, n_classes, fit_intercept, y, sample_weight, l2, weights,
                               weights_grad, grad_out=None, backend=None):  # fmt: skip
    """:func:`softmax_loss_grad` on a solver's flat float64 parameters, for a CSR ``X``.

    ``theta`` is ``[coef (C, d) flattened, intercept (C,) when fitted]``;
    returns ``(loss, grad)``, ``grad`` a float64 vector like ``theta``:
    ``grad_out`` when given (the solvers copy the gradient before the next
    call).  ``weights`` and ``weights_grad`` are (d, C) buffers of X's dtype,
    reused from call to call.  At millions of parameters the dense passes around
    the sparse data term cost more than the term itself, so they are fused:
    one pass turns ``theta`` into the kernels' (d, C) weights with the sum of
    squares of the L2 penalty, the kernel writes the data term's gradient in
    that layout (the transposed views of the CSR kernel protocol), and one
    pass turns it back into ``grad`` with the L2 gradient, both in float64
    on ``theta`` itself.
    """
    d = X.shape[1]
    n_coef = n_classes * d
    sum_squares = _theta_to_weights(theta, weights)
    intercept = theta[n_coef:].astype(weights.dtype) if fit_intercept else None
    loss, _, intercept_grad = softmax_loss_grad(
        X, weights.T, intercept, y, sample_weight, 0.0, backend=backend,
        coef_grad_out=weights_grad.T,
    )  # fmt: skip
    grad = np.empty(theta.shape[0]) if grad_out is None else grad_out
    _weights_grad_to_theta(weights_grad, theta, l2, grad)
    if fit_intercept:
        grad[n_coef:] = intercept_grad
    return loss + 0.5 * float(l2) * sum_squares, grad


def _compiled_sparse():
    try:
        from . import _sparse_kernels
    except ImportError:  # pure-Python install
        return None
    return _sparse_kernels


def _theta_to_weights(theta, weights):
    # weights (d, C) = theta[:C d].reshape(C, d).T in weights' dtype; returns ||theta[:C d]||^2
    d, C = weights.shape
    kernels = _compiled_sparse()
    if kernels is not None:
        from ._threads import get_num_threads

        return kernels.theta_to_weights(theta, weights, get_num_threads())
    coef = theta[: C * d].reshape(C, d)
    weights[...] = coef.T
    return float(np.dot(theta[: C * d], theta[: C * d]))


def _weights_grad_to_theta(weights_grad, theta, l2, out):
    # out[:C d] = weights_grad.T flattened + l2 theta[:C d], in float64
    d, C = weights_grad.shape
    kernels = _compiled_sparse()
    if kernels is not None:
        from ._threads import get_num_threads

        kernels.weights_grad_to_theta(weights_grad, theta, float(l2), out, get_num_threads())
        return
    grad = out[: C * d].reshape(C, d)
    grad[...] = weights_grad.T
    if l2:
        grad += float(l2) * theta[: C * d].reshape(C, d)
