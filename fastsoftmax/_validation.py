"""Input validation shared by the public functions and the estimators.

Every checker raises an error that names the argument, says what was expected
and what was found.  ``TypeError`` is used for a wrong kind of object or dtype,
``ValueError`` for a wrong shape or a wrong value.  The checkers never modify
their input; they return either the input itself or a converted copy.

dtype rules (used everywhere in fastsoftmax)
--------------------------------------------
* float32 and float64 arrays are kept as they are (float32 is never upcast);
* float16 is computed in float32;
* bool and integer arrays are read as float64, except a data matrix ``X`` of
  dtype uint8, which is passed to the kernels as it is (pixels, read as their
  numeric value 0..255) and computed in the dtype of the weights;
* when several floating arrays meet (``X`` and ``W``, ``W`` and ``b``), the
  computation runs in their promoted dtype, so the user's float64 data is
  never silently downcast; weights, labels and targets are cast to it.
"""

from __future__ import annotations

import math
import numbers
import operator

import numpy as np

try:  # NumPy >= 2.0
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core.numeric import normalize_axis_tuple

__all__ = [
    "REDUCTIONS",
    "all_finite",
    "as_compute_dtype",
    "as_numeric_array",
    "check_2d",
    "check_all_finite",
    "check_bias",
    "check_binary_targets",
    "check_bool",
    "check_class_weight",
    "check_data_matrix",
    "check_epoch",
    "check_finite_real",
    "check_int",
    "check_l2",
    "check_labels",
    "check_model_inputs",
    "check_out",
    "check_positive",
    "check_real",
    "check_reduction",
    "check_sample_weight",
    "check_sparse_matrix",
    "check_unit_interval",
    "check_verbose",
    "compute_dtype",
    "float_dtype",
    "is_sparse",
    "normalize_axis_tuple",
    "result_dtype",
]

REDUCTIONS = ("mean", "sum", "none")
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def as_numeric_array(x, name):
    """Return ``np.asarray(x)``, raising ``TypeError`` unless it is real-valued numeric."""
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:  # ragged nested sequences and the like
        raise TypeError(f"{name} must be a numeric array; could not convert it: {exc}") from None
    if arr.dtype.kind not in "biuf":
        what = "complex" if arr.dtype.kind == "c" else "non-numeric"
        raise TypeError(
            f"{name} must be a real numeric array (bool, integer or float), "
            f"got a {what} array of dtype {arr.dtype}"
        )
    return arr


def float_dtype(dtype):
    """Floating dtype a computation on an array of ``dtype`` runs in (float32 or float64)."""
    dtype = np.dtype(dtype).newbyteorder("=")  # byte-swapped floats keep their precision
    if dtype in _FLOATS:
        return dtype
    if dtype.kind == "f" and dtype.itemsize < 4:  # float16
        return np.dtype(np.float32)
    return np.dtype(np.float64)  # bool, integers, long double


def result_dtype(dtype):
    """dtype of a result computed from an array of ``dtype`` (scipy.special's convention).

    Floating inputs keep their dtype (float16 is computed in float32 and cast
    back); bool and integers give float64.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and dtype.itemsize <= 8:
        return dtype.newbyteorder("=")  # results are native-endian
    return float_dtype(dtype)  # long double is computed and returned in float64


def compute_dtype(*dtypes):
    """Promoted floating dtype of several arrays (uint8 data excluded by the caller)."""
    return np.result_type(*(float_dtype(d) for d in dtypes))


def check_2d(arr, name, what):
    """Raise ``ValueError`` unless ``arr`` is 2-D; ``what`` describes the axes."""
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape {what}, got shape {arr.shape}")
    return arr


#: values a thread of the compiled finite screen reads at least (fewer: fewer threads)
_FINITE_VALUES_PER_THREAD = 1 << 20
_finite_kernel = None


def _compiled_all_finite():
    # the extension's SIMD screen, or False when the extension is not built
    global _finite_kernel
    if _finite_kernel is None:
        try:
            from ._cython_kernels import all_finite as kernel
        except ImportError:
            kernel = False
        _finite_kernel = kernel
    return _finite_kernel


def all_finite(values):
    """Whether the array ``values`` holds no NaN and no infinity.

    Bool and integer arrays (uint8 pixels) are finite by their dtype and are
    not read.  A C-contiguous float32 or float64 array is screened by the
    compiled SIMD kernel at memory bandwidth, on up to
    :func:`fastsoftmax.get_num_threads` threads; without the extension (or
    for other layouts and dtypes) by NumPy: a sum in the array's own dtype,
    and the exact elementwise test only when the sum is not finite (an
    overflowing sum of finite values, or a NaN or infinity).
    """
    if values.dtype.kind in "biu":
        return True
    kernel = _compiled_all_finite()
    if kernel and values.dtype in _FLOATS and values.flags.c_contiguous:
        from ._threads import get_num_threads

        flat = values.reshape(-1)  # a view: C-contiguous
        threads = max(1, min(get_num_threads(), flat.shape[0] // _FINITE_VALUES_PER_THREAD))
        return bool(kernel(flat, threads))
    # the sum in the array's own dtype: 3x faster than upcasting float32
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(float(np.sum(values))):
            return True
    return bool(np.isfinite(values).all())


def check_all_finite(values, name="X"):
    """Raise ``ValueError`` ("Input X contains NaN." or "... infinity.") unless all finite.

    scikit-learn's messages; the screen is :func:`all_finite`, the values
    are read once more only to name what was found.
    """
    if all_finite(values):
        return values
    if np.isnan(values).any():
        raise ValueError(f"Input {name} contains NaN.")
    raise ValueError(f"Input {name} contains infinity.")


def check_data_matrix(X, name="X"):
    """Validate a data matrix: 2-D, numeric; uint8 and floats kept, other integers as float64.

    A scipy.sparse matrix is checked by :func:`check_sparse_matrix` (and comes back as CSR).
    """
    if is_sparse(X):
        return check_sparse_matrix(X, name)
    X = check_2d(as_numeric_array(X, name), name, "(n_samples, n_features)")
    if X.dtype == np.uint8 or X.dtype in _FLOATS:
        return X
    return X.astype(float_dtype(X.dtype))


def is_sparse(X):
    """Whether ``X`` is a scipy.sparse matrix or array (duck-typed: scipy is not imported)."""
    return type(X).__module__.startswith("scipy.sparse")


def check_sparse_matrix(X, name="X"):
    """Validate a scipy.sparse data matrix and return it in the CSR form of the kernels.

    CSC, COO and the other formats are converted to CSR once.  The result has
    C-contiguous ``data`` of float32 or float64 (other dtypes are read as
    float64, uint8 too: sparse pixels are no fast path) and ``indices`` and
    ``indptr`` of one integer dtype, int32 or int64 (see the CSR kernels in
    :mod:`fastsoftmax._backends`).  Unsorted indices, duplicate entries
    (summed by the kernels, as scipy does) and explicit zeros are kept as
    they are.  The input is never modified: any conversion works on a copy.
    The column indices and the row pointers are checked, so that compiled
    kernels never read out of bounds.
    """
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D sparse matrix, got {X.ndim} dimension(s)")
    if X.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must be a real numeric sparse matrix, got a sparse matrix of dtype {X.dtype}"
        )
    if X.format != "csr":
        X = X.tocsr()  # a new matrix: tocsr sums COO duplicates, which changes no result
    dtype = X.dtype if X.dtype in _FLOATS else np.dtype(np.float64)
    index_dtype = np.result_type(X.indices.dtype, X.indptr.dtype)
    if index_dtype not in (np.int32, np.int64):
        index_dtype = np.dtype(np.int64)
    arrays = (X.data, X.indices, X.indptr)
    if (X.dtype != dtype or X.indices.dtype != index_dtype or X.indptr.dtype != index_dtype
            or not all(a.flags.c_contiguous for a in arrays)):  # fmt: skip
        X = X.copy()  # our own object, whose arrays are replaced without touching the input's
        X.data = np.ascontiguousarray(X.data, dtype=dtype)
        X.indices = np.ascontiguousarray(X.indices, dtype=index_dtype)
        X.indptr = np.ascontiguousarray(X.indptr, dtype=index_dtype)
    n, d = X.shape
    indptr, indices = X.indptr, X.indices
    if (indptr.shape[0] != n + 1 or (n and (indptr[0] < 0 or np.any(np.diff(indptr) < 0)))
            or indptr[-1] > min(indices.shape[0], X.data.shape[0])):  # fmt: skip
        raise ValueError(
            f"{name} is not a valid CSR matrix: its indptr must be {n + 1} non-decreasing "
            f"offsets into indices and data"
        )
    stored = indices[indptr[0] : indptr[-1]]
    if stored.size and (stored.min() < 0 or stored.max() >= d):
        raise ValueError(
            f"{name} is not a valid CSR matrix: a column index is outside [0, {d})"
        )
    return X


def sparse_values(X):
    """The stored values of a CSR matrix checked by :func:`check_sparse_matrix` (a view)."""
    return X.data[X.indptr[0] : X.indptr[-1]]


def check_labels(y, n_samples, n_classes, name="y", *, classes_from="logits has"):
    """Validate integer class labels and return them as a C-contiguous ``np.intp`` array.

    Floats with integral values are accepted (``2.0``); ``2.5``, NaN, negative
    labels and labels ``>= n_classes`` are rejected.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class labels, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n_samples} samples")
    if y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(y) & (np.floor(y) == y)
        if not np.all(integral):
            bad = y[~integral][0].item()
            raise ValueError(f"{name} must hold integer class labels, found {bad!r}")
    elif y.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class labels, got an array of dtype {y.dtype}")
    if y.size:
        low, high = y.min().item(), y.max().item()
        if low < 0:
            raise ValueError(
                f"{name} must hold labels in [0, {n_classes}), found negative label {low!r}"
            )
        if high >= n_classes:
            raise ValueError(
                f"{name} contains label {high!r} but {classes_from} {n_classes} classes "
                f"(expected labels in [0, {n_classes}))"
            )
    return np.ascontiguousarray(y, dtype=np.intp)


def check_sample_weight(sample_weight, n_samples, dtype, name="sample_weight"):
    """Validate per-sample weights: ``None`` or ``n_samples`` finite non-negative numbers."""
    if sample_weight is None:
        return None
    sw = as_numeric_array(sample_weight, name)
    if sw.ndim != 1 or sw.shape[0] != n_samples:
        raise ValueError(
            f"{name} must have shape ({n_samples},) (one weight per sample), got shape {sw.shape}"
        )
    sw = np.ascontiguousarray(sw, dtype=dtype)
    if not np.all(np.isfinite(sw)):
        raise ValueError(f"{name} must be finite, found {sw[~np.isfinite(sw)][0].item()!r}")
    if np.any(sw < 0):
        raise ValueError(f"{name} must be non-negative, found {sw[sw < 0][0].item()!r}")
    return sw


def check_reduction(reduction):
    """Raise ``ValueError`` unless ``reduction`` is one of "mean", "sum", "none"."""
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(
            f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}"
        )
    return reduction


def check_l2(l2, name="l2"):
    """Validate an L2 penalty: a finite non-negative real number, returned as float."""
    if isinstance(l2, (bool, np.bool_)) or not isinstance(l2, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(l2).__name__}")
    l2 = float(l2)
    if not np.isfinite(l2) or l2 < 0:
        raise ValueError(f"{name} must be finite and non-negative, got {l2!r}")
    return l2


def check_bias(b, n, dtype, name="b", *, columns_of="W has"):
    """Validate an intercept vector of shape ``(n,)``; ``None`` gives ``None``."""
    if b is None:
        return None
    b = as_numeric_array(b, name)
    if b.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) because {columns_of} {n} columns, got shape {b.shape}"
        )
    return np.ascontiguousarray(b, dtype=dtype)


def check_binary_targets(y, n_samples, dtype, name="y"):
    """Validate binary (or soft) targets: ``n_samples`` values in [0, 1], cast to ``dtype``."""
    y = as_numeric_array(y, name)
    if y.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of targets in [0, 1], got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"{name} has {y.shape[0]} targets but there are {n_samples} samples")
    y = np.ascontiguousarray(y, dtype=dtype)
    with np.errstate(invalid="ignore"):
        bad = ~((y >= 0) & (y <= 1))  # NaN is bad too
    if np.any(bad):
        raise ValueError(
            f"{name} must hold targets in [0, 1] (0/1 labels), found {y[bad][0].item()!r}"
        )
    return y


def check_out(out, shape, dtype, name="out"):
    """Validate a user-supplied output array: ndarray, writeable, exact shape and dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(out).__name__}")
    shape = tuple(shape)
    if out.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {np.dtype(dtype)}, got dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable, got a read-only array")
    return out


def check_axis(axis, ndim):
    """Normalize ``axis`` (None, int or tuple of ints) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, quickly
        return (axis % ndim,)
    if not isinstance(axis, tuple):
        try:
            axis = operator.index(axis)
        except TypeError:
            raise TypeError(
                f"axis must be None, an integer or a tuple of integers, got {axis!r}"
            ) from None
    return tuple(sorted(normalize_axis_tuple(axis, ndim, "axis")))


def check_model_inputs(X, W, b=None, *, w_name="W", w_ndim=2):
    """Validate data ``X``, weights ``W`` and intercepts ``b`` of a linear model.

    ``X`` may be a scipy.sparse matrix (returned as CSR, see
    :func:`check_sparse_matrix`).  With ``w_ndim=2``, ``W`` is ``(n_features, n_classes)`` and ``b`` is
    ``(n_classes,)`` or None; with ``w_ndim=1`` (binary model) ``W`` is
    ``(n_features,)`` and the scalar intercept is the caller's business.
    Returns ``(X, W, b, dtype)``: C-contiguous arrays, W (and b) converted to
    the computation ``dtype`` -- W's floating dtype promoted with b's and X's
    (a uint8 X does not take part: it is passed on as it is).
    """
    X = check_data_matrix(X)
    W = as_numeric_array(W, w_name)
    if w_ndim == 2:
        check_2d(W, w_name, "(n_features, n_classes)")
    elif W.ndim != 1:
        raise ValueError(
            f"{w_name} must be a 1-D array of shape (n_features,), got shape {W.shape}"
        )
    if X.shape[1] != W.shape[0]:
        rows = "rows" if w_ndim == 2 else "entries"
        raise ValueError(f"X has {X.shape[1]} features but {w_name} has {W.shape[0]} {rows}")
    dtypes = [W.dtype] if X.dtype == np.uint8 else [W.dtype, X.dtype]
    if b is not None:
        b = as_numeric_array(b, "b")
        dtypes.append(b.dtype)
    dtype = compute_dtype(*dtypes)
    if b is not None:
        b = check_bias(b, W.shape[1], dtype)
    if is_sparse(X):
        X = _sparse_as_dtype(X, dtype)
    elif X.dtype == np.uint8:
        X = np.ascontiguousarray(X)
    else:
        X = np.ascontiguousarray(X, dtype=dtype)
    return X, np.ascontiguousarray(W, dtype=dtype), b, dtype


def _sparse_as_dtype(X, dtype):
    # a checked CSR matrix with its data in dtype (a new matrix only when the dtype differs)
    return X if X.dtype == dtype else X.astype(dtype)


def as_compute_dtype(X, coef, intercept=None, sample_weight=None):
    """Checked arrays of a linear model, C-contiguous in their computation dtype.

    The dtype is ``coef``'s, promoted with a floating ``X``'s (a uint8 ``X`` is
    passed on as it is), so float64 data is never computed in float32.  A
    copy is made only where a dtype or the layout differs.  Returns
    ``(X, coef, intercept, sample_weight)``; None stays None.
    """
    dtype = coef.dtype if X.dtype == np.uint8 else np.result_type(coef.dtype, X.dtype)
    if is_sparse(X):
        X = _sparse_as_dtype(X, dtype)
    elif X.dtype != np.uint8:
        X = np.ascontiguousarray(X, dtype=dtype)
    elif not X.flags.c_contiguous:
        X = np.ascontiguousarray(X)
    if coef.dtype != dtype or not coef.flags.c_contiguous:
        coef = np.ascontiguousarray(coef, dtype=dtype)
    if intercept is not None and intercept.dtype != dtype:
        intercept = intercept.astype(dtype)
    if sample_weight is not None and sample_weight.dtype != dtype:
        sample_weight = sample_weight.astype(dtype)
    return X, coef, intercept, sample_weight


# ---------------------------------------------------------------------------
# scalar parameters (of the estimators, learners, schedules and the Trainer)


def _real_number(name, value):
    # np.bool_ is no numbers.Real, so it is refused like bool
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_finite_real(name, value):
    """Return ``value`` as a finite Python float or raise naming ``name``."""
    value = _real_number(name, value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


def check_positive(name, value):
    """A finite real number ``> 0``, as a float."""
    value = check_finite_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_unit_interval(name, value):
    """A decay/momentum coefficient: ``0 <= value < 1``."""
    value = check_finite_real(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return value


def check_real(name, value, *, low=0.0, low_open=False, high=None, allow_inf=False):
    """A real number in ``[low, high]`` (``(low, high]`` with ``low_open``), as a float.

    Infinity is accepted only with ``allow_inf``; NaN never.
    """
    value = _real_number(name, value)
    bad = math.isnan(value) or (math.isinf(value) and not allow_inf)
    bad = bad or (value <= low if low_open else value < low) or (high is not None and value > high)
    if bad:
        bounds = f"{'>' if low_open else '>='} {low}"
        bounds += f" and <= {high}" if high is not None else ""
        bounds += "" if allow_inf else " and finite"
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return value


def check_int(name, value, minimum):
    """Return ``value`` as an int ``>= minimum`` or raise naming ``name``.

    bool is refused, and so is ``np.bool_`` (it is no ``numbers.Integral``).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_epoch(epoch):
    """An epoch index: an integer >= 0."""
    return check_int("epoch", epoch, 0)


def check_bool(name, value):
    """A bool (or ``np.bool_``), as a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_verbose(verbose):
    """A verbosity level: an integer >= 0."""
    return check_int("verbose", verbose, 0)


def check_class_weight(class_weight):
    """None, "balanced" or a dict ``{label: weight}`` (the weights are checked at fit)."""
    if class_weight is None or class_weight == "balanced" or isinstance(class_weight, dict):
        return class_weight
    raise ValueError(
        f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got {class_weight!r}"
    )
