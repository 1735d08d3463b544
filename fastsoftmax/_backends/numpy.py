"""Vectorized NumPy backend: the reference implementation of the kernel protocol.

See :mod:`fastsoftmax._backends` for the protocol.  Every kernel here is a few
array expressions, written to be obviously right rather than fast.
"""

from __future__ import annotations

import numpy as np

from . import _tiling, weight_total


def _as_float(X, dtype):
    # uint8 pixels are converted here; float input is used as it is.
    return X if X.dtype == dtype else X.astype(dtype)


def _shifted(x):
    # Subtract the row max so exp never overflows; rows of all -inf stay -inf.
    row_max = np.max(x, axis=1, keepdims=True) if x.shape[1] else np.zeros((x.shape[0], 1), x.dtype)
    row_max = np.where(np.isfinite(row_max), row_max, 0).astype(x.dtype, copy=False)
    return x - row_max, row_max


# Rows longer than this sum their float32 exponentials in float64: NumPy's float32
# pairwise sum before NumPy 2.3 loses accuracy with the row length (12 ulp at 2^25
# entries), where the compiled kernels sum float32 blocks in float64.
_LONG_ROW = 4096


def _row_sums(e, keepdims=False):
    dtype = np.float64 if e.dtype == np.float32 and e.shape[1] > _LONG_ROW else None
    return np.sum(e, axis=1, keepdims=keepdims, dtype=dtype)


def softmax(x, out):
    with np.errstate(invalid="ignore", over="ignore"):
        shifted, _ = _shifted(x)
        np.exp(shifted, out=out)
        total = _row_sums(out, keepdims=True)
        # A NaN or +inf in the row makes its sum non-finite: dividing by NaN
        # turns the whole row NaN, as scipy does (inf / inf alone would leave 0s).
        total[~np.isfinite(total)] = np.nan
        out /= total
    return out


def logsumexp(x, out):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shifted, row_max = _shifted(x)
        out[...] = np.log(_row_sums(np.exp(shifted))) + row_max[:, 0]
        near_zero = np.abs(out) < 1  # a finite value: the shift is the row max
        if near_zero.any():
            out[near_zero] = _logsumexp_near_zero(shifted[near_zero], row_max[near_zero, 0])
    return out


def _logsumexp_near_zero(shifted, row_max):
    # Near 0, log(sum) loses the terms below the rounding of the max term's 1:
    # log(count) + log1p(rest / count), rest the sum without the count maxima, as SciPy.
    is_max = shifted == 0
    count = np.sum(is_max, axis=1)
    rest = np.sum(np.exp(shifted, where=~is_max, out=np.zeros_like(shifted)), axis=1)
    return np.log(count) + np.log1p(rest / count) + row_max


def log_softmax(x, out):
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shifted, _ = _shifted(x)
        log_norm = np.log(_row_sums(np.exp(shifted), keepdims=True))
        np.subtract(shifted, log_norm, out=out)
    return out


def linear(X, coef, intercept, out):
    np.matmul(_as_float(X, coef.dtype), coef.T, out=out)
    if intercept is not None:
        out += intercept
    return out


def cross_entropy(logits, y, out):
    # (max - z_y) + log(sum(exp(z - max))): exact for large equal float32 logits, where
    # logsumexp(z) - z_y would lose the loss in the rounding of logsumexp.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shifted, _ = _shifted(logits)
        log_norm = np.log(_row_sums(np.exp(shifted)))
        np.subtract(log_norm, shifted[np.arange(logits.shape[0]), y], out=out)
    return out


def _softmax_residual(logits, y, sample_weight):
    """Turn ``logits`` into ``s (P - Y)`` in place; return it and ``sum_i s_i CE_i``."""
    n = logits.shape[0]
    losses = cross_entropy(logits, y, np.empty(n, logits.dtype))
    residual = softmax(logits, logits)  # P, then s (P - Y) in place
    residual[np.arange(n), y] -= 1
    if sample_weight is not None:
        residual *= sample_weight[:, None]
        losses *= sample_weight
    return residual, float(np.sum(losses, dtype=np.float64))


# Rows and classes per tile of the tiled regime: BLAS-sized products, 4 MB of float32 logits.
_TILE_ROWS = 1024
_CLASS_TILE = 1024


def softmax_ce_sums(X, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out, *,
                    skip_negligible=True):  # fmt: skip
    n = X.shape[0]
    tiled, rows, class_tile = _tiling.plan(X.shape[1], coef.shape[0], coef.itemsize, X.itemsize,
                                           _TILE_ROWS, _CLASS_TILE)  # fmt: skip
    if tiled:
        loss = _softmax_sums_tiled(X, coef, intercept, y, sample_weight, coef_grad_out,
                                   intercept_grad_out, rows, class_tile, skip_negligible)  # fmt: skip
        return loss, weight_total(sample_weight, n)
    Xf = _as_float(X, coef.dtype)
    logits = linear(Xf, coef, intercept, np.empty((n, coef.shape[0]), coef.dtype))
    residual, loss = _softmax_residual(logits, y, sample_weight)
    np.matmul(residual.T, Xf, out=coef_grad_out)
    np.sum(residual, axis=0, out=intercept_grad_out)
    return loss, weight_total(sample_weight, n)


def _class_tiles(C, class_tile):
    return [(c0, min(C, c0 + class_tile)) for c0 in range(0, C, class_tile)]


def _tile_logits(Xb, coef, intercept, c0, c1):
    Z = Xb @ coef[c0:c1].T
    if intercept is not None:
        Z += intercept[c0:c1]
    return Z


def _softmax_sums_tiled(X, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out,
                        rows, class_tile, skip_negligible):  # fmt: skip
    """The tiled regime (see :mod:`._tiling`): per block of rows, pass A keeps each (row,
    tile)'s max and sum of exponentials, pass B recomputes the tiles and accumulates.

    ``X`` is a dense array or a scipy CSR matrix (of coef's dtype)."""
    dtype = coef.dtype
    tiles = _class_tiles(coef.shape[0], class_tile)
    log_threshold = _tiling.log_skip_threshold(dtype)
    coef_grad_out.fill(0)
    intercept_grad = np.zeros(coef.shape[0])
    loss = 0.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for a in range(0, X.shape[0], rows):
            Xb = X[a : a + rows] if not isinstance(X, np.ndarray) else _as_float(X[a : a + rows], dtype)
            yb = y[a : a + rows]
            m = Xb.shape[0]
            tile_max = np.empty((len(tiles), m))
            tile_sum = np.empty((len(tiles), m))
            label_logit = np.empty(m)
            for t, (c0, c1) in enumerate(tiles):  # pass A
                Z = _tile_logits(Xb, coef, intercept, c0, c1)
                tile_max[t] = np.max(Z, axis=1)
                tile_sum[t] = np.sum(np.exp(Z - tile_max[t][:, None].astype(dtype)), axis=1,
                                     dtype=np.float64)  # fmt: skip
                here = np.flatnonzero((yb >= c0) & (yb < c1))
                label_logit[here] = Z[here, yb[here] - c0]
            row_max = np.max(tile_max, axis=0)
            shift = np.where(np.isfinite(row_max), row_max, 0)
            lse = shift + np.log(np.sum(tile_sum * np.exp(tile_max - shift), axis=0))
            losses = lse - label_logit
            weights = None if sample_weight is None else sample_weight[a : a + rows]
            loss += float(np.sum(losses if weights is None else weights * losses))
            for t, (c0, c1) in enumerate(tiles):  # pass B
                here = (yb >= c0) & (yb < c1)
                hot = here | (tile_max[t] - lse >= log_threshold) if skip_negligible else here | True
                if not hot.any():
                    continue
                Z = _tile_logits(Xb, coef, intercept, c0, c1)
                residual = np.exp(Z - lse[:, None].astype(dtype))
                rows_here = np.flatnonzero(here)
                residual[rows_here, yb[rows_here] - c0] -= 1
                residual[~hot] = 0
                if weights is not None:
                    residual *= weights[:, None]
                coef_grad_out[c0:c1] += (Xb.T @ residual).T  # (CSR Xb: a sparse product)
                intercept_grad[c0:c1] += np.sum(residual, axis=0, dtype=np.float64)
    intercept_grad_out[...] = intercept_grad
    return loss


def sigmoid(x, out):
    # exp(-|x|) never overflows: sigmoid(x) = 1/(1+e) for x >= 0, e/(1+e) otherwise.
    e = np.exp(-np.abs(x))
    np.divide(np.where(x >= 0, 1, e), 1 + e, out=out)
    return out


def binary_cross_entropy(logits, y, out):
    # log(1 + exp(z)) - y z  ==  (1 - y) z + log1p(exp(-z)) for z > 0, -y z + log1p(exp(z))
    # otherwise; a zero coefficient gives 0 (not 0 * inf) so z = +-inf gives the limit.
    coefficient = np.where(logits > 0, 1 - y, -y)
    with np.errstate(invalid="ignore"):
        linear = np.where(coefficient == 0, 0, coefficient * logits)
    np.add(linear, np.log1p(np.exp(-np.abs(logits))), out=out)
    return out


def _logistic_residual(z, y, sample_weight):
    """``s (sigmoid(z) - y)`` and ``sum_i s_i BCE_i`` of the margins ``z``."""
    n = z.shape[0]
    losses = binary_cross_entropy(z, y, np.empty(n, z.dtype))
    residual = sigmoid(z, np.empty(n, z.dtype)) - y
    if sample_weight is not None:
        residual *= sample_weight
        losses *= sample_weight
    return residual, float(np.sum(losses, dtype=np.float64))


def logistic_sums(X, coef, intercept, y, sample_weight, coef_grad_out):
    n = X.shape[0]
    Xf = _as_float(X, coef.dtype)
    residual, loss = _logistic_residual(Xf @ coef + coef.dtype.type(intercept), y, sample_weight)
    np.matmul(Xf.T, residual, out=coef_grad_out)
    return loss, float(np.sum(residual, dtype=np.float64)), weight_total(sample_weight, n)


def classification_error(logits, y):
    n = logits.shape[0]
    if n == 0:
        return 0.0
    return float(np.count_nonzero(np.argmax(logits, axis=1) != y)) / n


# -- CSR kernels: scipy.sparse products ----------------------------------------------


def _csr(data, indices, indptr, n_features):
    """The scipy CSR matrix of the three arrays (no copy of ``data``, no sorting)."""
    from scipy.sparse import csr_matrix

    return csr_matrix((data, indices, indptr), shape=(indptr.shape[0] - 1, n_features), copy=False)


def linear_csr(data, indices, indptr, coef, intercept, out):
    out[...] = _csr(data, indices, indptr, coef.shape[1]) @ coef.T
    if intercept is not None:
        out += intercept
    return out


def softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out,
                        intercept_grad_out, *, skip_negligible=True):  # fmt: skip
    X = _csr(data, indices, indptr, coef.shape[1])
    tiled, rows, class_tile = _tiling.plan_csr(coef.shape[0], coef.itemsize, rows=_TILE_ROWS,
                                               class_tile=_CLASS_TILE)  # fmt: skip
    if tiled:  # many classes: the tiled pass of dense X, on CSR blocks of rows
        loss = _softmax_sums_tiled(X, coef, intercept, y, sample_weight, coef_grad_out,
                                   intercept_grad_out, rows, class_tile, skip_negligible)  # fmt: skip
        return loss, weight_total(sample_weight, X.shape[0])
    logits = linear_csr(data, indices, indptr, coef, intercept,
                        np.empty((X.shape[0], coef.shape[0]), coef.dtype))  # fmt: skip
    residual, loss = _softmax_residual(logits, y, sample_weight)
    coef_grad_out[...] = (X.T @ residual).T
    np.sum(residual, axis=0, out=intercept_grad_out)
    return loss, weight_total(sample_weight, X.shape[0])


def logistic_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out):
    X = _csr(data, indices, indptr, coef.shape[0])
    residual, loss = _logistic_residual(X @ coef + coef.dtype.type(intercept), y, sample_weight)
    coef_grad_out[...] = X.T @ residual
    return loss, float(np.sum(residual, dtype=np.float64)), weight_total(sample_weight, X.shape[0])
