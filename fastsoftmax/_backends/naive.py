"""Pure-Python backend: the oracle and the slow baseline.

See :mod:`fastsoftmax._backends` for the kernel protocol.  Every kernel here is
written with plain loops over rows, classes and features and the scalar
functions of :mod:`math`, so that it can be checked by reading it.  Arrays are
first turned into nested lists with ``tolist()`` (uint8 pixels become the ints
0..255), all arithmetic is done on Python floats (double precision, so this
backend is also the most accurate one for float32 data), and each result is
rounded once into the given ``out`` buffer, whose dtype it keeps.  The data
kernels read every row of ``X``, dense or CSR, as a list of ``(column,
value)`` pairs, so one body serves both kinds of input.

The edge semantics are those of the NumPy reference: rows are shifted by their
maximum when it is finite (by 0 otherwise), so a row of all ``-inf`` gives
``-inf`` for logsumexp and NaN for softmax, a ``+inf`` gives ``+inf`` for
logsumexp and a row of NaN for softmax, and NaN propagates to its whole row.
"""

from __future__ import annotations

import math

import numpy as np

from . import _tiling

_INF = math.inf
_NAN = math.nan


# -- scalar helpers with NumPy's inf/NaN behaviour ---------------------------


def _exp(v):
    # math.exp raises OverflowError where NumPy returns inf.
    try:
        return math.exp(v)
    except OverflowError:
        return _INF


def _log(v):
    # math.log raises on 0 (and negatives) where NumPy returns -inf (NaN).
    if v > 0:
        return math.log(v)
    return -_INF if v == 0 else _NAN


def _sigmoid(v):
    # exp(-|v|) never overflows: sigmoid(v) = 1/(1+e) for v >= 0, e/(1+e) otherwise.
    e = math.exp(-abs(v))
    return (1.0 if v >= 0 else e) / (1.0 + e)


def _binary_cross_entropy(z, y):
    # log(1 + exp(z)) - y z  ==  (1 - y) z + log1p(exp(-z)) for z > 0, -y z + log1p(exp(z))
    # otherwise: no overflow, and a zero coefficient is skipped so z = +-inf gives the limit.
    if z > 0:
        linear = (1.0 - y) * z if y != 1.0 else 0.0
    else:
        linear = -y * z if y != 0.0 else 0.0
    return linear + math.log1p(math.exp(-abs(z)))


def _write(out, values):
    # Round the Python floats once into out (float32 stays float32).  A value
    # beyond the float32 range becomes inf, as it would when computed in float32.
    with np.errstate(over="ignore"):
        out[...] = np.array(values, dtype=np.float64).reshape(out.shape)
    return out


# -- row helpers ---------------------------------------------------------------


def _row_shift(row):
    """The row maximum if it is finite, else 0 (empty, all -inf, +inf or NaN rows)."""
    top = -_INF
    for v in row:
        if v != v:  # NaN: any shift gives NaN for the whole row anyway
            return 0.0
        if v > top:
            top = v
    return top if math.isfinite(top) else 0.0


def _row_logsumexp(row):
    shift = _row_shift(row)
    total = 0.0
    for v in row:
        total += _exp(v - shift)
    value = _log(total) + shift
    if -1 < value < 1:
        return _logsumexp_near_zero(row, shift)
    return value


def _logsumexp_near_zero(row, top):
    # Near 0, log(total) loses the terms below the rounding of the max term's 1:
    # log(count) + log1p(rest / count), rest the sum without the count maxima, as
    # SciPy.  Only reached when the value is finite, so top is the row's max.
    count = 0
    rest = 0.0
    for v in row:
        if v == top:
            count += 1
        else:
            rest += _exp(v - top)
    return math.log(count) + math.log1p(rest / count) + top


def _row_softmax(row):
    shift = _row_shift(row)
    exps = [_exp(v - shift) for v in row]
    total = 0.0
    for e in exps:
        total += e
    # Every exp 0 (a row of all -inf) gives 0/0; a NaN or +inf gives a NaN or
    # infinite sum: the whole row is NaN, as in scipy.special.softmax.
    if total == 0 or not math.isfinite(total):
        return [_NAN] * len(row)
    return [e / total for e in exps]


def _row_log_softmax(row):
    shift = _row_shift(row)
    total = 0.0
    for v in row:
        total += _exp(v - shift)
    log_total = _log(total)
    return [(v - shift) - log_total for v in row]


def _affine(entries, coef_rows, bias):
    """``coef @ x + bias`` for one sample given as ``(column, value)`` pairs: n_classes floats."""
    z = []
    for c, weights in enumerate(coef_rows):
        acc = 0.0
        for j, x_j in entries:
            acc += x_j * weights[j]
        z.append(acc if bias is None else acc + bias[c])
    return z


def _row_cross_entropy(z, label):
    # (max - z_y) + log(sum(exp(z - max))): exact for huge equal logits, where
    # logsumexp(z) - z_y would lose the loss in the rounding of logsumexp.
    shift = _row_shift(z)
    total = 0.0
    for v in z:
        total += _exp(v - shift)
    return (shift - z[label]) + _log(total)


def _argmax(row):
    # First maximum, with NaN counting as the maximum, like np.argmax.
    best = 0
    for c, v in enumerate(row):
        if v != v:
            return c
        if v > row[best]:
            best = c
    return best


def _weights_and_total(sample_weight, n):
    if sample_weight is None:
        return [1.0] * n, float(n)
    weights = sample_weight.tolist()
    total = 0.0
    for s in weights:
        total += s
    return weights, total


# -- kernels -------------------------------------------------------------------


def softmax(x, out):
    return _write(out, [_row_softmax(row) for row in x.tolist()])


def log_softmax(x, out):
    return _write(out, [_row_log_softmax(row) for row in x.tolist()])


def logsumexp(x, out):
    return _write(out, [_row_logsumexp(row) for row in x.tolist()])


def _dense_rows(X):
    """The rows of a dense ``X`` as lists of ``(column, value)`` pairs, as CSR rows are read."""
    return [list(enumerate(row)) for row in X.tolist()]


def linear(X, coef, intercept, out):
    return _linear_rows(_dense_rows(X), coef, intercept, out)


def _linear_rows(rows, coef, intercept, out):
    coef_rows = coef.tolist()
    bias = None if intercept is None else intercept.tolist()
    return _write(out, [_affine(entries, coef_rows, bias) for entries in rows])


def cross_entropy(logits, y, out):
    return _write(out, [_row_cross_entropy(row, label) for row, label in zip(logits.tolist(), y.tolist())])


def softmax_ce_sums(X, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out, *,
                    skip_negligible=True):  # fmt: skip
    # One row's logits at a time: memory O(C) whatever the regime.  The regime only
    # decides the skipping, which is that of the tiled kernels (see _tiling).
    tiled, _, class_tile = _tiling.plan(X.shape[1], coef.shape[0], coef.itemsize, X.itemsize)
    return _softmax_sums(
        _dense_rows(X), coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out,
        class_tile if tiled and skip_negligible else None,
    )  # fmt: skip


def _skip_negligible_tiles(probabilities, label, class_tile, threshold):
    """Zero the (row, tile)s whose largest softmax entry is below ``threshold``, label tiles kept."""
    for c0 in range(0, len(probabilities), class_tile):
        c1 = min(len(probabilities), c0 + class_tile)
        if not c0 <= label < c1 and max(probabilities[c0:c1]) < threshold:
            probabilities[c0:c1] = [0.0] * (c1 - c0)


def _softmax_sums(rows, coef, intercept, y, sample_weight, coef_grad_out, intercept_grad_out,
                  skip_class_tile=None):  # fmt: skip
    n_classes, n_features = coef.shape
    coef_rows = coef.tolist()
    bias = None if intercept is None else intercept.tolist()
    weights, total = _weights_and_total(sample_weight, len(rows))
    threshold = _tiling.skip_threshold(coef.dtype)
    loss = 0.0
    coef_grad = [[0.0] * n_features for _ in range(n_classes)]
    intercept_grad = [0.0] * n_classes
    for entries, label, s in zip(rows, y.tolist(), weights):
        z = _affine(entries, coef_rows, bias)
        loss += s * _row_cross_entropy(z, label)
        probabilities = _row_softmax(z)
        if skip_class_tile:
            _skip_negligible_tiles(probabilities, label, skip_class_tile, threshold)
        for c in range(n_classes):
            residual = s * (probabilities[c] - (1.0 if c == label else 0.0))
            intercept_grad[c] += residual
            grad_row = coef_grad[c]
            for j, x_j in entries:  # duplicate columns (CSR) add up
                grad_row[j] += residual * x_j
    _write(coef_grad_out, coef_grad)
    _write(intercept_grad_out, intercept_grad)
    return loss, total


def sigmoid(x, out):
    return _write(out, [_sigmoid(v) for v in x.tolist()])


def binary_cross_entropy(logits, y, out):
    return _write(out, [_binary_cross_entropy(z, t) for z, t in zip(logits.tolist(), y.tolist())])


def logistic_sums(X, coef, intercept, y, sample_weight, coef_grad_out):
    return _logistic_sums(_dense_rows(X), coef, intercept, y, sample_weight, coef_grad_out)


def _logistic_sums(rows, coef, intercept, y, sample_weight, coef_grad_out):
    coef_list = coef.tolist()
    bias = float(intercept)
    weights, total = _weights_and_total(sample_weight, len(rows))
    loss = 0.0
    intercept_grad = 0.0
    coef_grad = [0.0] * len(coef_list)
    for entries, target, s in zip(rows, y.tolist(), weights):
        z = _affine(entries, [coef_list], None)[0] + bias
        loss += s * _binary_cross_entropy(z, target)
        residual = s * (_sigmoid(z) - target)
        intercept_grad += residual
        for j, x_j in entries:
            coef_grad[j] += x_j * residual
    _write(coef_grad_out, coef_grad)
    return loss, intercept_grad, total


def classification_error(logits, y):
    n = logits.shape[0]
    if n == 0:
        return 0.0
    wrong = 0
    for row, label in zip(logits.tolist(), y.tolist()):
        if _argmax(row) != label:
            wrong += 1
    return wrong / n


# -- CSR kernels -----------------------------------------------------------------


def _csr_rows(data, indices, indptr):
    """The rows of a CSR matrix as lists of ``(column, value)`` pairs (duplicates kept)."""
    values, columns, offsets = data.tolist(), indices.tolist(), indptr.tolist()
    return [
        [(columns[k], values[k]) for k in range(offsets[i], offsets[i + 1])]
        for i in range(len(offsets) - 1)
    ]


def linear_csr(data, indices, indptr, coef, intercept, out):
    return _linear_rows(_csr_rows(data, indices, indptr), coef, intercept, out)


def softmax_ce_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out,
                        intercept_grad_out, *, skip_negligible=True):  # fmt: skip
    # the skipping of the tiled CSR kernels (_tiling.plan_csr); memory O(C) either way
    tiled, _, class_tile = _tiling.plan_csr(coef.shape[0], coef.itemsize, indptr, coef.shape[1])
    return _softmax_sums(
        _csr_rows(data, indices, indptr), coef, intercept, y, sample_weight, coef_grad_out,
        intercept_grad_out, class_tile if tiled and skip_negligible else None,
    )  # fmt: skip


def logistic_sums_csr(data, indices, indptr, coef, intercept, y, sample_weight, coef_grad_out):
    return _logistic_sums(
        _csr_rows(data, indices, indptr), coef, intercept, y, sample_weight, coef_grad_out
    )
