"""Public array functions: softmax family, linear layer, losses and their gradients.

Every function validates its input, allocates its outputs and dispatches the
work to the kernels of a backend (``backend=None``: the current one, see
:func:`fastsoftmax.get_backend`).  ``softmax``, ``log_softmax`` and
``logsumexp`` are drop-in replacements for the functions of the same names in
:mod:`scipy.special`.

dtypes: float32 and float64 are kept (float32 is never upcast); bool and
integer input is read as float64, except a data matrix ``X`` of dtype uint8,
which is read as its values 0..255 and computed in the dtype of the weights.
Where floating arrays meet (``X``, ``W``, ``b``) the computation runs in their
promoted dtype, so float64 data is never silently downcast; labels, targets
and sample weights are cast to it.  Inputs are never written to; ``out=``
must have exactly the result's shape and dtype (it may be the input itself).
Invalid input raises ``TypeError`` (wrong kind of object or dtype) or
``ValueError`` (wrong shape or value) with a message naming the argument.

Arrays of other libraries that export DLPack (a PyTorch CPU tensor, a JAX
array, an array-api-strict array) are read without a copy and the results
come back in the caller's library, as SciPy's functions do (a scalar result
as a 0-d array); see :mod:`fastsoftmax._array_api`.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import _loss_options, _objective
from ._array_api import caller_namespace
from ._backends import get_module as _get_module
from ._backends import weight_total
from ._linear_cross_entropy import linear_cross_entropy
from ._validation import (
    as_numeric_array,
    check_2d,
    check_axis,
    check_binary_targets,
    check_bool,
    check_l2,
    check_labels,
    check_model_inputs,
    check_out,
    check_reduction,
    check_sample_weight,
    float_dtype,
    result_dtype,
)

__all__ = [
    "softmax",
    "log_softmax",
    "logsumexp",
    "linear",
    "cross_entropy",
    "softmax_cross_entropy_grad",
    "sigmoid",
    "binary_cross_entropy",
    "logistic_loss_grad",
    "classification_error",
    "log_expit",
    "linear_cross_entropy",
]


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _kernels(backend):
    return _get_module(backend)


def _coef_layout(W):
    """Weights (n_features, n_classes) in the kernels' layout of ``coef_``, (n_classes, n_features)."""
    return np.ascontiguousarray(W.T)


def _is_real_array(value):
    """A NumPy array (0-d here) of a real number dtype: float, int or unsigned."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "fiu"


def _scalar_if_0d(arr):
    # scipy.special returns NumPy scalars, not 0-d arrays, for 0-d results.
    return arr[()] if arr.ndim == 0 else arr


def _as_rows(x, axes, dtype):
    """View/copy ``x`` as a C-contiguous (n, k) array whose rows are the reduced slices.

    Returns ``(x2, perm, moved_shape)``: ``x.transpose(perm)`` has the reduced
    axes last (``perm`` is None when they already are), ``moved_shape`` is its
    shape.  No copy is made when ``x`` is
    already C-contiguous of ``dtype`` with the reduced axes last.
    """
    n_kept = x.ndim - len(axes)
    if axes == tuple(range(n_kept, x.ndim)):  # the reduced axes are already last
        perm, moved = None, x
    else:
        perm = tuple(i for i in range(x.ndim) if i not in axes) + axes
        moved = x.transpose(perm)
    n = math.prod(moved.shape[:n_kept])
    k = math.prod(moved.shape[n_kept:])
    x2 = np.ascontiguousarray(moved, dtype=dtype).reshape(n, k)
    return x2, perm, moved.shape


def _inverse(perm):
    inverse = [0] * len(perm)
    for i, p in enumerate(perm):
        inverse[p] = i
    return tuple(inverse)


def _same_buffer(a, b):
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _out_view(out, perm, x2):
    """``out`` in the layout of the kernel's input ``x2``, or None where a kernel can't write it.

    The kernel writes straight into ``out`` when its memory already has that
    layout and dtype, unless that would overlap the input in any way other
    than exact aliasing.
    """
    if out is None or out.dtype != x2.dtype:
        return None
    moved = out if perm is None else out.transpose(perm)
    if not moved.flags.c_contiguous:
        return None
    view = moved.reshape(x2.shape)
    if np.may_share_memory(view, x2) and not _same_buffer(view, x2):
        return None
    return view


def _deliver(result, out, rdtype):
    """Return ``result`` through ``out``, or as an array (scalar if 0-d) of dtype ``rdtype``."""
    with np.errstate(over="ignore"):  # float16 results may round to -inf
        if out is not None:
            np.copyto(out, result, casting="unsafe")
            return out
        return _scalar_if_0d(result.astype(rdtype, copy=False))


def _checked_input(x, out, name="x"):
    """``x`` as a numeric array, its result and compute dtypes, with ``out`` checked against them."""
    x = as_numeric_array(x, name)
    rdtype = result_dtype(x.dtype)
    if out is not None:
        check_out(out, x.shape, rdtype)
    return x, rdtype, float_dtype(x.dtype)


def _rowwise(kernel_name, x, axis, out, backend, name="x"):
    """Shared body of softmax and log_softmax: an elementwise-shaped row-wise kernel."""
    x, rdtype, cdtype = _checked_input(x, out, name)
    axes = check_axis(axis, x.ndim)
    kernel = getattr(_kernels(backend), kernel_name)
    x2, perm, moved_shape = _as_rows(x, axes, cdtype)

    out2 = _out_view(out, perm, x2)
    direct = out2 is not None
    if not direct:
        out2 = np.empty(x2.shape, cdtype)
    if x2.size:
        kernel(x2, out2)
    if direct:
        return out
    result = out2.reshape(moved_shape)
    if perm is not None:
        result = result.transpose(_inverse(perm))
    return _deliver(result, out, rdtype)


# ---------------------------------------------------------------------------
# softmax family (scipy.special drop-ins)
# ---------------------------------------------------------------------------


@caller_namespace
def softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = None,
    *,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    r"""Compute the softmax function, a drop-in for :func:`scipy.special.softmax`.

    Parameters
    ----------
    x : array_like
        Input array (bool, integer or float).
    axis : None or int or tuple of ints, optional
        Axis or axes along which the softmax is normalised.  ``None`` (the
        default) normalises over the entire array, like scipy.
    out : ndarray, optional
        Array of the same shape as ``x`` and of the result dtype to write the
        result into.  It may be ``x`` itself (in-place softmax).
    backend : str, optional
        Backend to compute with; ``None`` means :func:`fastsoftmax.get_backend`.

    Returns
    -------
    s : ndarray or scalar
        Array of the shape of ``x`` whose slices along ``axis`` sum to 1.
        float32 and float16 inputs keep their dtype; bool and integer inputs
        give float64.  A 0-d input gives a NumPy scalar (``out`` when given).

    Notes
    -----
    Computes :math:`\sigma(x)_j = e^{x_j - m} / \sum_k e^{x_k - m}` with
    :math:`m = \max_k x_k`, so no exponential overflows (float32 logits up to
    ±3e38 are fine).  Edge values follow scipy: a slice holding NaN or
    ``+inf``, or only ``-inf``, gives NaN.  Unlike scipy, empty arrays give an
    empty result instead of an error, and complex input is rejected.

    The reduced axes are moved last and the data is handled as a C-contiguous
    ``(n, k)`` matrix, which is free for C-contiguous input reduced over the
    last axis (the fast path); other layouts cost one copy.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the
       log-sum-exp and softmax functions", IMA Journal of Numerical Analysis
       41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import softmax
    >>> softmax(np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]), axis=1).round(4)
    array([[0.09  , 0.2447, 0.6652],
           [0.3333, 0.3333, 0.3333]])
    >>> softmax(np.array([1000.0, 1000.0], dtype=np.float32))
    array([0.5, 0.5], dtype=float32)
    """
    return _rowwise("softmax", x, axis, out, backend)


@caller_namespace
def log_softmax(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = None,
    *,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    r"""Compute the logarithm of the softmax, a drop-in for :func:`scipy.special.log_softmax`.

    Parameters
    ----------
    x : array_like
        Input array (bool, integer or float).
    axis : None or int or tuple of ints, optional
        Axis or axes along which to normalise; ``None`` (the default) means
        the entire array.
    out : ndarray, optional
        Array of the shape of ``x`` and of the result dtype to write into; may
        be ``x`` itself.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    s : ndarray or scalar
        ``x - logsumexp(x, axis, keepdims=True)``, same shape and dtype rules
        as :func:`softmax`.

    Notes
    -----
    More accurate than ``np.log(softmax(x))`` where the softmax underflows:
    the result stays finite.  A non-finite slice maximum is replaced by 0
    before shifting, exactly like scipy, so a slice of only ``-inf`` gives NaN
    and ``[inf, 1]`` gives ``[nan, -inf]``.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the
       log-sum-exp and softmax functions", IMA Journal of Numerical Analysis
       41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import log_softmax
    >>> log_softmax(np.array([1000.0, 1.0]))
    array([   0., -999.])
    >>> log_softmax(np.log(np.array([[1.0, 3.0], [2.0, 2.0]])), axis=-1).round(4)
    array([[-1.3863, -0.2877],
           [-0.6931, -0.6931]])
    """
    return _rowwise("log_softmax", x, axis, out, backend)


@caller_namespace
def logsumexp(
    a: ArrayLike,
    axis: int | tuple[int, ...] | None = None,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    *,
    backend: str | None = None,
) -> Any:
    r"""Compute ``log(sum(b * exp(a)))`` stably, a drop-in for :func:`scipy.special.logsumexp`.

    Parameters
    ----------
    a : array_like
        Input array (bool, integer or float).
    axis : None or int or tuple of ints, optional
        Axis or axes to sum over; ``None`` (the default) sums all elements.
    b : array_like, optional
        Scaling factors for ``exp(a)``, broadcastable to ``a``; may be
        negative to implement subtraction.  A zero weight removes its term,
        even where ``a`` is infinite or NaN.
    keepdims : bool, optional
        Keep the reduced axes as dimensions of size one.
    return_sign : bool, optional
        Also return the sign of the sum; otherwise a negative sum gives NaN.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    res : ndarray or scalar
        The log of the (absolute value of the) sum.  Same dtype rules as scipy:
        float32 stays float32, bool and integers give float64.
    sgn : ndarray or scalar
        Only with ``return_sign=True``: +1, 0 or -1, the sign of the sum.

    Notes
    -----
    Without ``b`` and ``return_sign`` the backend's row-wise kernel computes
    ``m + log(sum(exp(a - m)))`` with ``m`` the slice maximum.  With ``b`` or
    ``return_sign`` the scipy algorithm is evaluated with NumPy (correct for
    every backend, not a fast path).  Empty slices give ``-inf``.

    References
    ----------
    .. [1] P. Blanchard, D. J. Higham, N. J. Higham, "Accurately computing the
       log-sum-exp and softmax functions", IMA Journal of Numerical Analysis
       41(4), 2021.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import logsumexp
    >>> round(float(logsumexp(np.arange(10.0))), 6)
    9.45863
    >>> logsumexp(np.array([[0.0, 0.0], [10.0, 10.0]]), axis=1).round(4)
    array([ 0.6931, 10.6931])
    >>> res, sign = logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> round(float(res), 6), float(sign)
    (1.541325, -1.0)
    """
    if _is_complex(a) or (b is not None and _is_complex(b)):
        return _logsumexp_complex(a, axis, b, keepdims, return_sign)
    # Like scipy, a 0-d ``a`` is read as 1-D (so axis=0 is valid for it).
    a = np.atleast_1d(as_numeric_array(a, "a"))
    if b is not None or return_sign:
        return _logsumexp_weighted(a, axis, b, keepdims, return_sign)
    axes = check_axis(axis, a.ndim)
    rdtype = result_dtype(a.dtype)
    cdtype = float_dtype(a.dtype)
    kernel = _kernels(backend).logsumexp
    x2, _, moved_shape = _as_rows(a, axes, cdtype)
    res = np.empty(x2.shape[0], cdtype)
    if x2.shape[1] == 0:
        res.fill(-np.inf)  # the sum of no terms is 0
    elif x2.shape[0]:
        kernel(x2, res)
    res = res.reshape(moved_shape[: a.ndim - len(axes)])
    if keepdims:
        res = res.reshape([1 if i in axes else s for i, s in enumerate(a.shape)])
    if rdtype != cdtype:
        with np.errstate(over="ignore"):
            res = res.astype(rdtype)
    return _scalar_if_0d(res)


def _is_complex(value):
    return np.asarray(value).dtype.kind == "c" if not isinstance(value, np.ndarray) else value.dtype.kind == "c"


def _wrap_radians(x):
    # to (-pi, pi], keeping the relative precision of angles already inside
    wrapped = -((-x + np.pi) % (2 * np.pi) - np.pi)
    return np.where(np.abs(x) < np.pi, x, wrapped)


def _logsumexp_complex(a, axis, b, keepdims, return_sign):
    # scipy.special.logsumexp (1.15+) for complex input, in NumPy: the term of
    # largest real part is separated out of the sum; the imaginary part of the
    # result (or the sign, a unit complex number) is wrapped to (-pi, pi].
    a = np.atleast_1d(np.asarray(a))
    if a.dtype.kind not in "biufc":
        raise TypeError(f"a must be a numeric array, got an array of dtype {a.dtype}")
    dtype = np.result_type(a.dtype, np.complex64 if a.dtype.itemsize <= 8 else np.complex128)
    if b is not None:
        b = np.atleast_1d(np.asarray(b))
        if b.dtype.kind not in "biufc":
            raise TypeError(f"b must be a numeric array, got an array of dtype {b.dtype}")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"b must be broadcastable to the shape of a {a.shape}, got shape {b.shape}"
            ) from None
        dtype = np.result_type(dtype, b.dtype)
        a, b = np.broadcast_to(a, shape).astype(dtype), np.broadcast_to(b, shape).astype(dtype)
    else:
        a = a.astype(dtype)
    if dtype.kind != "c":  # complex b with real a: promote
        dtype = np.result_type(dtype, np.complex64)
        a = a.astype(dtype)
    axes = check_axis(axis, a.ndim)
    if a.size == 0:
        out = np.full([1 if i in axes else s for i, s in enumerate(a.shape)], -np.inf, dtype)
        sgn = np.sign(out)
    else:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            terms = np.exp(a) if b is None else b * np.exp(a)
            total = np.sum(terms, axis=axes, keepdims=True)
            sgn_inf = np.sign(total) if return_sign else None
            out_inf = np.log(np.abs(total) if return_sign else total)
            if b is not None:
                a = np.where(b == 0, -np.inf, a)
            # one element of largest real part per slice (the last one, as scipy picks)
            real = a.real
            is_max = real == np.max(real, axis=axes, keepdims=True)
            index = np.where(is_max, np.arange(a.size).reshape(a.shape), -1)
            is_max = index == np.max(index, axis=axes, keepdims=True)
            a_max = np.sum(np.where(is_max, a, 0), axis=axes, keepdims=True, dtype=dtype)
            a = np.where(is_max, -np.inf, a)
            m = np.sum(is_max if b is None else b * is_max, axis=axes, keepdims=True, dtype=dtype)
            shifted = np.exp(a - a_max) if b is None else b * np.exp(a - a_max)
            s = np.sum(shifted, axis=axes, keepdims=True, dtype=dtype)
            s = np.where(s == 0, s, s / m)
            sgn = np.sign(s + 1) * np.sign(m) * np.exp(a_max.imag * 1j)
            out = np.log1p(s) + np.log(m) + a_max
            if return_sign:
                out = out.real
            finite = np.isfinite(out)
            out = np.where(finite, out, out_inf)
            if return_sign:
                sgn = np.where(finite, sgn, sgn_inf)
    if out.dtype.kind == "c":
        out = out.real + _wrap_radians(out.imag) * 1j
    if return_sign and sgn.dtype.kind == "c":
        sgn = sgn.real + _wrap_radians(sgn.imag) * 1j
    if not keepdims:
        out, sgn = out.squeeze(axis=axes), sgn.squeeze(axis=axes)
    out, sgn = _scalar_if_0d(out), _scalar_if_0d(sgn)
    return (out, sgn) if return_sign else out


def _logsumexp_weighted(a, axis, b, keepdims, return_sign):
    # Port of scipy.special.logsumexp (real inputs) in NumPy: the maximum term
    # is separated out of the sum for accuracy, a zero weight drops its term.
    rdtype = result_dtype(a.dtype)
    if b is not None:
        b = as_numeric_array(b, "b")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"b must be broadcastable to the shape of a {a.shape}, got shape {b.shape}"
            ) from None
        rdtype = np.result_type(rdtype, result_dtype(b.dtype))
    cdtype = float_dtype(rdtype)
    # ``a`` is at least 1-D (see logsumexp), so the broadcast shape is too
    if b is not None:
        a = np.broadcast_to(a, shape).astype(cdtype)
        b = np.broadcast_to(b, shape).astype(cdtype)
    else:
        a = a.astype(cdtype)
    axes = check_axis(axis, a.ndim)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if a.size == 0:
            out = np.full([1 if i in axes else s for i, s in enumerate(a.shape)], -np.inf, cdtype)
            sgn = np.sign(out)
        else:
            out, sgn = _logsumexp_core(a, b, axes, return_sign)
        if not keepdims:
            out = out.squeeze(axis=axes)
            sgn = sgn.squeeze(axis=axes)
        out = out.astype(rdtype, copy=False)
        sgn = sgn.astype(rdtype, copy=False)
    out, sgn = _scalar_if_0d(out), _scalar_if_0d(sgn)
    return (out, sgn) if return_sign else out


def _logsumexp_core(a, b, axes, return_sign):
    # Direct evaluation, used where the shifted one is not finite (infinities).
    terms = np.exp(a) if b is None else b * np.exp(a)
    direct = np.sum(terms, axis=axes, keepdims=True)
    sgn_direct = np.sign(direct)
    out_direct = np.log(np.abs(direct))

    if b is not None:
        a = np.where(b == 0, -np.inf, a)
    a_max = np.max(a, axis=axes, keepdims=True)
    is_max = a == a_max
    a = np.where(is_max, -np.inf, a)
    m = np.sum(is_max if b is None else b * is_max, axis=axes, keepdims=True, dtype=a.dtype)
    shifted = np.exp(a - a_max) if b is None else b * np.exp(a - a_max)
    s = np.sum(shifted, axis=axes, keepdims=True, dtype=a.dtype)
    s = np.where(s == 0, s, s / m)
    sgn = np.sign(s + 1) * np.sign(m)
    s = np.where(s < -1, -s - 2, s)
    out = np.log1p(s) + np.log(np.abs(m)) + a_max

    finite = np.isfinite(out)
    out = np.where(finite, out, out_direct)
    sgn = np.where(finite, sgn, sgn_direct)
    if not return_sign:  # the log of a negative sum
        out[sgn < 0] = np.nan
    return out, sgn


# ---------------------------------------------------------------------------
# linear layer and multinomial loss
# ---------------------------------------------------------------------------


@caller_namespace
def linear(
    X: ArrayLike,
    W: ArrayLike,
    b: ArrayLike | None = None,
    *,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Fused affine map ``X @ W + b``.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix of shape (n_samples, n_features)
        Data, float32, float64 or uint8 (pixels read as 0..255); other integer
        dtypes are read as float64.  A sparse matrix is read as CSR (never
        densified; its data float32 or float64).
    W : array_like of shape (n_features, n_classes)
        Weights.
    b : array_like of shape (n_classes,), optional
        Intercepts; ``None`` means no intercept.
    out : ndarray of shape (n_samples, n_classes), optional
        Array of the computation dtype to write the result into.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    Z : ndarray of shape (n_samples, n_classes)
        The logits, in the computation dtype: W's dtype promoted with the
        floating dtypes of X and b (float32 stays float32; float64 data with
        float32 weights is computed in float64, never downcast).

    Notes
    -----
    Non-contiguous or Fortran-ordered X and W are copied to C order once;
    C-contiguous inputs of the computation dtype are used without a copy.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, section 4.3.4 (multiclass logistic regression).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import linear
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> W = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    >>> linear(X, W, np.array([0.5, 0.0, -1.0]))
    array([[1.5, 2. , 2. ],
           [3.5, 4. , 6. ]])
    """
    X, W, b, dtype = check_model_inputs(X, W, b)
    shape = (X.shape[0], W.shape[1])
    if out is not None:
        check_out(out, shape, dtype)
        target = out
        # the kernel reads its inputs while it writes out: any overlap goes through a copy
        overlaps = any(np.may_share_memory(out, a) for a in (X, W, b) if a is not None)
        if not out.flags.c_contiguous or overlaps:
            target = np.empty(shape, dtype)
    else:
        target = np.empty(shape, dtype)
    _objective.decision(X, _coef_layout(W), b, out=target, backend=backend)
    if out is not None and target is not out:
        out[...] = target
        return out
    return target


def _check_logits(logits, name="logits"):
    logits = check_2d(as_numeric_array(logits, name), name, "(n_samples, n_classes)")
    return np.ascontiguousarray(logits, dtype=float_dtype(logits.dtype))


def _reduce(losses, reduction, rdtype, normalizer, shape=None):
    # ``losses`` are already weighted.  Scalar reductions accumulate in float64 and
    # return a Python float ("mean": the sum over ``normalizer``, 0 over no weight);
    # "none" returns the losses in rdtype, the result dtype of the logits.
    if reduction == "none":
        with np.errstate(over="ignore"):  # float16 losses may round to inf
            losses = losses.astype(rdtype, copy=False)
        return losses if shape is None else losses.reshape(shape)
    total = float(np.sum(losses, dtype=np.float64))
    if reduction == "sum":
        return total
    return total / normalizer if normalizer > 0 else 0.0


@caller_namespace
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = "mean",
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    axis: int | None = None,
    backend: str | None = None,
) -> float | np.ndarray:
    """Softmax cross-entropy computed from logits, with the options of PyTorch's.

    The options, shapes and reductions are those of
    :func:`torch.nn.functional.cross_entropy` (class weights, ``ignore_index``,
    ``label_smoothing``, K-dimensional logits), with NumPy's ``axis=`` for the
    class axis and ``sample_weight`` on top.

    Parameters
    ----------
    logits : array_like of shape (n_samples, n_classes) or (n_samples, n_classes, d1, ..., dK)
        Unnormalised scores; the class axis is ``axis``.
    target : array_like
        Integer class labels in ``[0, n_classes)`` (or ``ignore_index``), of the
        shape of ``logits`` without its class axis -- ``(n_samples,)`` for 2-D
        logits (floats with integral values are accepted); or class
        probabilities / one-hot rows of the shape of ``logits`` (non-negative,
        finite; they are not required to sum to 1).
    reduction : {"mean", "sum", "none"}, default "mean"
        How to reduce the per-sample losses.  "mean" divides the weighted sum by
        the total weight: the number of labels that are not ignored, or with
        ``weight`` the sum of ``weight[target]`` over them, times
        ``sample_weight`` (as PyTorch does); for probability targets the
        number of samples (or the sum of ``sample_weight``).
    sample_weight : array_like, optional
        Non-negative finite weights, one per sample (``(n_samples,)``) or, for
        K-dimensional logits, one per loss (the shape of the losses).  With
        "none" each loss is multiplied by its weight.  A zero weight drops its
        sample, even one whose loss is infinite.
    weight : array_like of shape (n_classes,), optional
        Non-negative finite weight of each class (PyTorch's ``weight``): the
        loss of a sample of class ``c`` is multiplied by ``weight[c]``; with
        probability targets each class term is.
    ignore_index : int, default -100
        Labels equal to it contribute nothing (loss 0 and no weight in the
        mean), as in PyTorch; not used with probability targets.
    label_smoothing : float in [0, 1], default 0.0
        Mix the targets with the uniform distribution: the loss becomes
        ``(1 - eps) CE + eps / C * sum_c weight[c] (-log p_c)`` (PyTorch's
        formula, class weights included).
    axis : int, optional
        The class axis of ``logits``.  The default (None) is PyTorch's axis 1,
        which for 2-D logits is the last axis as before; pass ``axis=-1`` for
        logits of shape (..., n_classes).
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    loss : float or ndarray
        A Python float for "mean" and "sum" (accumulated in float64), else the
        per-sample losses of the shape of ``target`` (labels) or of ``logits``
        without its class axis (probabilities), in the logits' dtype.

    Raises
    ------
    ValueError
        Labels outside ``[0, n_classes)`` other than ``ignore_index``, a
        ``weight`` of the wrong length or with a negative entry, a
        ``label_smoothing`` outside [0, 1], shapes that do not match.

    See Also
    --------
    linear_cross_entropy : The same loss of ``input @ weight.T + bias``, never
        forming all the logits.
    softmax_cross_entropy_grad : The fused gradient of this loss of a linear model.

    Notes
    -----
    The per-sample loss is ``logsumexp(z_i) - z_i[y_i]`` for labels and
    ``-sum_j t_ij log_softmax(z_i)_j`` for probabilities, where a zero
    probability contributes 0 even if its log-probability is ``-inf``
    (PyTorch gives NaN there).  The mean over zero samples (or zero total
    weight, e.g. every label ignored) is defined as 0, where PyTorch gives NaN.
    1-D (unbatched) logits are not accepted: use ``logits[None]``.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, eq. 4.108.
    .. [2] C. Szegedy et al., "Rethinking the Inception Architecture for
       Computer Vision", CVPR 2016 (label smoothing).

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import cross_entropy
    >>> logits = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> round(cross_entropy(logits, [0, 0]), 6)
    1.126928
    >>> cross_entropy(logits, np.array([[1.0, 0.0], [0.5, 0.5]]), reduction="none").round(4)
    array([0.1269, 1.1269])

    PyTorch's options: class weights, an ignored label, label smoothing:

    >>> round(cross_entropy(logits, [0, -100]), 6)  # only the first sample counts
    0.126928
    >>> round(cross_entropy(logits, [0, 0], weight=[1.0, 3.0], label_smoothing=0.1), 6)
    1.239621

    K-dimensional logits (n_samples, n_classes, d1), or the classes last:

    >>> z = np.zeros((2, 3, 4))
    >>> cross_entropy(z, np.zeros((2, 4), dtype=int), reduction="none").shape
    (2, 4)
    >>> round(cross_entropy(z.transpose(0, 2, 1), np.zeros((2, 4), dtype=int), axis=-1), 6)
    1.098612
    """
    logits_arr: np.ndarray = as_numeric_array(logits, "logits")
    rdtype = result_dtype(logits_arr.dtype)  # of the "none" losses: float16 stays float16
    class_axis = _loss_options.check_class_axis(axis, logits_arr.ndim)
    reduction = check_reduction(reduction)
    label_smoothing = _loss_options.check_label_smoothing(label_smoothing)
    ignore_index = _loss_options.check_ignore_index(ignore_index)
    cdtype = float_dtype(logits_arr.dtype)
    z, perm, moved_shape = _as_rows(logits_arr, (class_axis,), cdtype)
    loss_shape = moved_shape[:-1]
    n, n_classes = z.shape
    class_weight = _loss_options.check_class_weight(weight, n_classes, cdtype)
    row_weight = _loss_options.check_position_weight(sample_weight, loss_shape, cdtype)
    kernels = _kernels(backend)
    target_arr: np.ndarray = np.asarray(target)
    if target_arr.ndim == logits_arr.ndim:  # class probabilities
        target_arr = as_numeric_array(target_arr, "target")
        if target_arr.shape != logits_arr.shape:
            raise ValueError(
                f"target has shape {target_arr.shape} but logits has shape {logits_arr.shape} "
                "(probability targets must match the logits)"
            )
        proba = np.ascontiguousarray(
            target_arr if perm is None else target_arr.transpose(perm), dtype=cdtype
        ).reshape(n, n_classes)
        if not np.all(np.isfinite(proba)) or np.any(proba < 0):
            raise ValueError("target probabilities must be finite and non-negative")
        losses = _loss_options.probability_losses(kernels, z, proba, label_smoothing, class_weight)
        losses = _loss_options.weighted(losses, row_weight)
        normalizer = weight_total(row_weight, n)
    elif target_arr.ndim == logits_arr.ndim - 1:  # class labels
        if logits_arr.ndim > 2 and target_arr.shape != loss_shape:
            raise ValueError(
                f"target has shape {target_arr.shape} but the logits without their class axis "
                f"have shape {loss_shape}"
            )
        targets = _loss_options.class_targets(
            target_arr.reshape(-1) if logits_arr.ndim > 2 else target_arr, n, n_classes, cdtype,
            ignore_index=ignore_index, class_weight=class_weight, sample_weight=row_weight,
        )  # fmt: skip
        losses = _loss_options.row_losses(kernels, z, targets, label_smoothing)
        normalizer = targets.normalizer
    else:
        expected = (
            "class labels of shape (n_samples,) or probabilities of shape (n_samples, n_classes)"
            if logits_arr.ndim == 2
            else f"class labels of shape {loss_shape} or probabilities of shape {logits_arr.shape}"
        )
        raise ValueError(f"target must be {expected}, got shape {target_arr.shape}")
    return _reduce(losses, reduction, rdtype, normalizer, loss_shape)


@caller_namespace
def softmax_cross_entropy_grad(
    X: ArrayLike,
    W: ArrayLike,
    b: ArrayLike | None,
    y: ArrayLike,
    *,
    l2: float = 0.0,
    sample_weight: ArrayLike | None = None,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    skip_negligible: bool = True,
    backend: str | None = None,
) -> tuple[float, np.ndarray, np.ndarray]:
    r"""Loss and gradient of softmax regression in one fused pass.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix of shape (n_samples, n_features)
        Data, float32, float64 or uint8 (a sparse matrix: see :func:`linear`).
    W : array_like of shape (n_features, n_classes)
        Weights.
    b : array_like of shape (n_classes,) or None
        Intercepts (``None``: zero intercepts; ``db`` is still returned).
    y : array_like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``, or ``ignore_index``.
    l2 : float, default 0.0
        L2 penalty strength, non-negative.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative finite weights.
    weight : array_like of shape (n_classes,), optional
        Class weights, as in :func:`cross_entropy` (PyTorch's ``weight``).
    ignore_index : int, default -100
        Labels equal to it are left out (as in :func:`cross_entropy`).
    label_smoothing : float in [0, 1], default 0.0
        PyTorch's label smoothing, as in :func:`cross_entropy`.
    reduction : {"mean", "sum"}, default "mean"
        Divide the data term by the total weight (see :func:`cross_entropy`)
        or not.
    skip_negligible : bool, default True
        With many classes (the kernel's tiled regime, from about 2,000
        classes at 256 float32 features), leave out of the gradient every
        (row, tile of classes) pair that does not hold the row's label and
        whose largest probability is below ``tau = np.finfo(dtype).eps``.
        The loss stays exact; each entry ``dW[j, c]`` moves by at most
        ``tau * sum_i s_i |X[i, j]| / m`` and ``db[c]`` by ``tau * sum_i s_i / m``
        (``s`` the row weights, ``m`` the normaliser).  ``False``: every entry.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    loss : float
        ``cross_entropy(X W + b, y, ...) + 0.5 * l2 * ||W||^2``: without the
        options ``sum_i s_i CE_i / m`` with ``m`` the number of samples or the
        sum of the weights.
    dW : ndarray of shape (n_features, n_classes)
        Its gradient in ``W``: ``X^T (s (P - Y)) / m + l2 W`` without the options.
    db : ndarray of shape (n_classes,)
        Its gradient in ``b``: ``sum_i s_i (P - Y)_i / m`` without the options.

    Notes
    -----
    ``Z = X W + b``, ``P = softmax(Z)`` row-wise and ``Y`` the one-hot labels.
    The gradients have the computation dtype (see :func:`linear`).  With no
    samples (or zero total weight) the data term is 0.  Class weights and
    ignored labels become per-row weights of the one fused kernel pass; label
    smoothing adds a correction that costs one pass over ``X`` without
    logits (a sparse product ``Y^T X``), for dense and sparse ``X`` alike.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, eq. 4.109.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import softmax_cross_entropy_grad
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> W = np.zeros((2, 2))
    >>> loss, dW, db = softmax_cross_entropy_grad(X, W, np.zeros(2), [0, 1])
    >>> round(loss, 6)
    0.693147
    >>> dW
    array([[-0.25,  0.25],
           [ 0.25, -0.25]])
    >>> db
    array([0., 0.])
    >>> loss, dW, db = softmax_cross_entropy_grad(X, W, None, [0, -100], label_smoothing=0.2)
    >>> dW
    array([[-0.4,  0.4],
           [ 0. ,  0. ]])
    """
    X_arr, W_arr, b_arr, dtype = check_model_inputs(X, W, b)
    n, C = X_arr.shape[0], W_arr.shape[1]
    l2 = check_l2(l2)
    skip_negligible = check_bool("skip_negligible", skip_negligible)
    label_smoothing = _loss_options.check_label_smoothing(label_smoothing)
    ignore_index = _loss_options.check_ignore_index(ignore_index)
    if not isinstance(reduction, str) or reduction not in ("mean", "sum"):
        raise ValueError(
            f"reduction must be 'mean' or 'sum' (a gradient needs a scalar loss), got {reduction!r}"
        )
    class_weight = _loss_options.check_class_weight(weight, C, dtype)
    targets = _loss_options.class_targets(
        y, n, C, dtype, ignore_index=ignore_index, class_weight=class_weight,
        sample_weight=check_sample_weight(sample_weight, n, dtype), name="y", classes_from="W has",
    )  # fmt: skip
    if isinstance(X_arr, np.ndarray) or label_smoothing:  # (the smoothing sums: BLAS on (C, d))
        coef, dW = _coef_layout(W_arr), None
    else:  # the CSR kernels take coef and its gradient as transposed views of W and dW
        coef, dW = np.ascontiguousarray(W_arr).T, np.empty(W_arr.shape, dtype)
    loss, coef_grad, db = _objective.softmax_loss_grad(
        X_arr, coef, b_arr, targets.y, targets.loss_weight, l2,
        normalizer=targets.normalizer if reduction == "mean" else 1.0,
        label_smoothing=label_smoothing, smoothing_weight=targets.smoothing_weight,
        class_weight=class_weight, backend=backend, skip_negligible=skip_negligible,
        coef_grad_out=None if dW is None else dW.T,
    )  # fmt: skip
    return loss, np.ascontiguousarray(coef_grad.T) if dW is None else dW, db


# ---------------------------------------------------------------------------
# binary (sigmoid) counterparts
# ---------------------------------------------------------------------------


@caller_namespace
def sigmoid(
    x: ArrayLike, *, out: np.ndarray | None = None, backend: str | None = None
) -> np.ndarray:
    r"""Logistic sigmoid ``1 / (1 + exp(-x))``, element-wise, for any shape.

    Parameters
    ----------
    x : array_like
        Input (bool, integer or float).
    out : ndarray, optional
        Array of the shape of ``x`` and of the result dtype to write into; may
        be ``x`` itself.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    p : ndarray or scalar
        Values in [0, 1], dtype as for :func:`softmax` (float32 stays
        float32, integers give float64); a NumPy scalar for 0-d input.

    Notes
    -----
    Evaluated through ``exp(-|x|)``, which never overflows, so large
    ``|x|`` gives exactly 0 or 1 without warnings.  Matches
    :func:`scipy.special.expit`.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, eq. 4.59.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import sigmoid
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    >>> sigmoid(np.log(np.array([[1.0, 3.0]], dtype=np.float32)))
    array([[0.5 , 0.75]], dtype=float32)
    """
    x, rdtype, cdtype = _checked_input(x, out)
    x1 = np.ascontiguousarray(x, dtype=cdtype).reshape(-1)
    out1 = _out_view(out, None, x1)
    direct = out1 is not None
    if not direct:
        out1 = np.empty(x1.shape, cdtype)
    if x1.size:
        _kernels(backend).sigmoid(x1, out1)
    if direct:
        return out  # type: ignore[return-value]  # out1 is a view of out: not None
    return _deliver(out1.reshape(x.shape), out, rdtype)


@caller_namespace
def log_expit(x: ArrayLike, *, out: np.ndarray | None = None, backend: str | None = None) -> Any:
    r"""Logarithm of the logistic sigmoid, element-wise: a drop-in for :func:`scipy.special.log_expit`.

    Parameters
    ----------
    x : array_like
        Input (bool, integer or float).
    out : ndarray, optional
        Array of the shape of ``x`` and of the result dtype to write into; may
        be ``x`` itself.
    backend : str, optional
        Checked like everywhere (an unknown name is an error); every backend
        evaluates the same NumPy expression, which is already one pass.

    Returns
    -------
    y : ndarray or scalar
        ``log(sigmoid(x))``, at most 0; float32 stays float32 (so does float16),
        integers give float64; a NumPy scalar for 0-d input.

    Notes
    -----
    Evaluated as ``-log1p(exp(-x))`` for ``x >= 0`` and ``x - log1p(exp(x))``
    for ``x < 0`` (:func:`numpy.logaddexp`), so it is accurate for large
    ``|x|``: ``log_expit(-1000) == -1000`` and ``log_expit(40)`` is
    ``-4.2e-18``, not 0 or ``-inf``.  ``-log_expit(x)`` is the logistic loss
    of a positive example; ``log_expit(-x)`` is ``log(1 - sigmoid(x))``.

    References
    ----------
    .. [1] M. Mächler, "Accurately Computing ``log(1 - exp(-|a|))`` Assessed by
       the Rmpfr package", 2012.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import log_expit
    >>> log_expit(np.array([-1000.0, 0.0, 40.0]))
    array([-1.00000000e+03, -6.93147181e-01, -4.24835426e-18])
    >>> log_expit(np.array([1.0, -1.0], dtype=np.float32))
    array([-0.3132617, -1.3132617], dtype=float32)
    """
    _kernels(backend)  # an unknown or unavailable backend is an error here too
    x_arr, rdtype, cdtype = _checked_input(x, out)
    xc = x_arr.astype(cdtype, copy=False)
    with np.errstate(invalid="ignore"):  # NaN stays NaN quietly
        result = np.negative(np.logaddexp(cdtype.type(0), -xc))
    return _deliver(result, out, rdtype)


def _check_logits_1d(logits, name="logits"):
    logits = as_numeric_array(logits, name)
    if logits.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of shape (n_samples,), got shape {logits.shape}"
        )
    return np.ascontiguousarray(logits, dtype=float_dtype(logits.dtype))


@caller_namespace
def binary_cross_entropy(
    logits: ArrayLike,
    y: ArrayLike,
    *,
    reduction: str = "mean",
    sample_weight: ArrayLike | None = None,
    backend: str | None = None,
) -> float | np.ndarray:
    """Binary cross-entropy of sigmoid(logits) against targets, computed from logits.

    Parameters
    ----------
    logits : array_like of shape (n_samples,)
        Decision values ``z``.
    y : array_like of shape (n_samples,)
        Targets in [0, 1] (0/1 labels, bool, or soft targets).
    reduction : {"mean", "sum", "none"}, default "mean"
        How to reduce the per-sample losses.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative finite weights; "mean" divides by their sum, "none"
        multiplies each loss by its weight; a zero weight drops its sample.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    loss : float or ndarray of shape (n_samples,)
        A Python float for "mean" and "sum", else an array of the logits'
        dtype.

    Notes
    -----
    Per sample ``log(1 + exp(z)) - y z``, evaluated as
    ``max(z, 0) + log1p(exp(-|z|)) - y z``: no overflow and no ``log(0)``
    for large ``|z|``.  Infinite logits give the limits: 0 when the sign is
    right (``z = +inf`` with ``y = 1``), ``inf`` when it is wrong.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, eq. 4.90.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import binary_cross_entropy
    >>> binary_cross_entropy(np.array([0.0, 50.0, -50.0]), [1, 1, 1], reduction="none").round(4)
    array([ 0.6931,  0.    , 50.    ])
    """
    logits = as_numeric_array(logits, "logits")
    rdtype = result_dtype(logits.dtype)  # of the "none" losses: float16 stays float16
    logits = _check_logits_1d(logits)
    reduction = check_reduction(reduction)
    n = logits.shape[0]
    y = check_binary_targets(y, n, logits.dtype)
    sample_weight = check_sample_weight(sample_weight, n, logits.dtype)
    losses = np.empty(n, logits.dtype)
    if n:
        _kernels(backend).binary_cross_entropy(logits, y, losses)
    losses = _loss_options.weighted(losses, sample_weight)
    return _reduce(losses, reduction, rdtype, weight_total(sample_weight, n))


@caller_namespace
def logistic_loss_grad(
    X: ArrayLike,
    w: ArrayLike,
    b: float | None,
    y: ArrayLike,
    *,
    l2: float = 0.0,
    sample_weight: ArrayLike | None = None,
    backend: str | None = None,
) -> tuple[float, np.ndarray, float]:
    """Loss and gradient of binary logistic regression in one fused pass.

    Parameters
    ----------
    X : array_like or scipy.sparse matrix of shape (n_samples, n_features)
        Data, float32, float64 or uint8 (a sparse matrix: see :func:`linear`).
    w : array_like of shape (n_features,)
        Weights.
    b : float or None
        Intercept (``None`` means 0; ``db`` is still returned).
    y : array_like of shape (n_samples,)
        Targets in [0, 1] (0/1 labels).
    l2 : float, default 0.0
        L2 penalty strength, non-negative.
    sample_weight : array_like of shape (n_samples,), optional
        Non-negative finite weights.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    loss : float
        ``sum_i s_i BCE_i / m + 0.5 * l2 * ||w||^2``, ``m`` the number of
        samples or the sum of the weights.
    dw : ndarray of shape (n_features,)
        ``X^T (s (p - y)) / m + l2 w`` in the computation dtype.
    db : float
        ``sum_i s_i (p_i - y_i) / m``.

    Notes
    -----
    ``z = X w + b`` and ``p = sigmoid(z)``; the loss is evaluated stably as in
    :func:`binary_cross_entropy`.

    References
    ----------
    .. [1] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, eq. 4.91.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import logistic_loss_grad
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> loss, dw, db = logistic_loss_grad(X, np.zeros(2), 0.0, [1, 0])
    >>> round(loss, 6), dw, db
    (0.693147, array([-0.25,  0.25]), 0.0)
    """
    X, w, _, dtype = check_model_inputs(X, w, w_name="w", w_ndim=1)
    n = X.shape[0]
    if b is None:
        b = 0.0
    elif isinstance(b, (bool, np.bool_)) or np.ndim(b) != 0:
        raise ValueError(
            f"b must be a real scalar (the intercept), got {np.shape(b)!r}-shaped input"
        )
    elif not (isinstance(b, numbers.Real) or _is_real_array(b)):
        # float() would take "1" and drop the imaginary part of a complex
        got = f"an array of dtype {b.dtype}" if isinstance(b, np.ndarray) else type(b).__name__
        raise TypeError(f"b must be a real scalar (the intercept), got {got}")
    b = float(b)
    if not math.isfinite(b):
        raise ValueError(f"b must be finite, got {b!r}")
    if abs(b) > float(np.finfo(dtype).max):
        raise ValueError(
            f"b={b!r} is outside the range of the computation dtype {np.dtype(dtype).name} "
            "(pass float64 X or w to compute in float64)"
        )
    y = check_binary_targets(y, n, dtype)
    l2 = check_l2(l2)
    sample_weight = check_sample_weight(sample_weight, n, dtype)
    return _objective.logistic_loss_grad(X, w, b, y, sample_weight, l2, backend=backend)


@caller_namespace
def classification_error(logits: ArrayLike, y: ArrayLike, *, backend: str | None = None) -> float:
    """Fraction of rows whose argmax differs from the label.

    Parameters
    ----------
    logits : array_like of shape (n_samples, n_classes)
        Scores (any monotone transform, e.g. probabilities, works too).
    y : array_like of shape (n_samples,)
        Integer labels in ``[0, n_classes)``.
    backend : str, optional
        Backend to compute with; ``None`` means the current one.

    Returns
    -------
    error : float
        In [0, 1]; 0.0 for zero samples.  Ties go to the first maximum.

    Notes
    -----
    ``1 - accuracy``; the first maximal column is the prediction, like
    :func:`numpy.argmax`.

    References
    ----------
    .. [1] T. Hastie, R. Tibshirani, J. Friedman, "The Elements of
       Statistical Learning", 2nd ed., Springer, 2009, section 2.4.

    Examples
    --------
    >>> import numpy as np
    >>> from fastsoftmax import classification_error
    >>> classification_error(np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]]), [0, 0, 1])
    0.6666666666666666
    """
    logits = _check_logits(logits)
    y = check_labels(y, logits.shape[0], logits.shape[1], "y")
    return float(_kernels(backend).classification_error(logits, y))
