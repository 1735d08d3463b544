"""PyTorch's cross-entropy options: fastsoftmax against torch.nn.functional (skipped without torch).

Every option combination of ``cross_entropy`` (class weights, ``ignore_index``
with and without ignored targets, label smoothing, the three reductions,
K-dimensional logits, probability targets) equals ``F.cross_entropy`` in
float64 within 1e-12 relative (float32 within 1e-5); the fused gradients equal
torch autograd's; ``linear_cross_entropy`` equals ``F.linear_cross_entropy``.
"""

import itertools

import numpy as np
import pytest

import fastsoftmax as fs

torch = pytest.importorskip("torch")
F = torch.nn.functional

C = 5
RTOL = {np.float64: 1e-12, np.float32: 2e-5}
ATOL = {np.float64: 1e-13, np.float32: 1e-6}


def _data(shape, dtype, seed=0, ignored=False, ignore_index=-100):
    """Logits of ``shape`` (class axis 1), labels with some ``ignore_index``, probabilities."""
    rng = np.random.default_rng(seed)
    logits = (rng.normal(size=shape) * 3).astype(dtype)
    label_shape = (shape[0],) + shape[2:]
    labels = rng.integers(0, shape[1], size=label_shape)
    if ignored:
        labels.reshape(-1)[::3] = ignore_index
    proba = rng.random(shape).astype(dtype)
    proba /= proba.sum(axis=1, keepdims=True)
    proba.reshape(-1)[::7] = 0.0  # zero probabilities contribute nothing
    return logits, labels, proba


CLASS_WEIGHT = np.array([0.5, 2.0, 1.0, 0.0, 3.0])
COMBOS = list(
    itertools.product(
        [False, True],  # class weights
        [None, -100, 2],  # ignore_index: none ignored, the default ignored, an in-range label
        [0.0, 0.25, 1.0],  # label smoothing
        ["mean", "sum", "none"],
        [(8, C), (3, C, 4, 2)],  # 2-D and K-dimensional logits
    )
)


def _torch_ce(logits, target, weight, **kw):
    return F.cross_entropy(
        torch.from_numpy(logits), torch.from_numpy(target),
        weight=None if weight is None else torch.from_numpy(weight), **kw,
    ).numpy()  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted, ignore, eps, reduction, shape", COMBOS)
def test_cross_entropy_labels_equal_torch(dtype, weighted, ignore, eps, reduction, shape):
    ignore_index = -100 if ignore is None else ignore
    logits, labels, _ = _data(shape, dtype, ignored=ignore is not None, ignore_index=ignore_index)
    weight = CLASS_WEIGHT.astype(dtype) if weighted else None
    got = fs.cross_entropy(
        logits, labels, weight=weight, ignore_index=ignore_index, label_smoothing=eps,
        reduction=reduction,
    )  # fmt: skip
    expected = _torch_ce(
        logits, labels, weight, ignore_index=ignore_index, label_smoothing=eps,
        reduction=reduction,
    )  # fmt: skip
    assert np.shape(got) == expected.shape
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])
    if reduction == "none":
        assert got.dtype == dtype


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "weighted, eps, reduction, shape",
    list(itertools.product([False, True], [0.0, 0.3], ["mean", "sum", "none"], [(6, C), (2, C, 3)])),
)
def test_cross_entropy_probabilities_equal_torch(dtype, weighted, eps, reduction, shape):
    logits, _, proba = _data(shape, dtype, seed=1)
    weight = CLASS_WEIGHT.astype(dtype) if weighted else None
    got = fs.cross_entropy(logits, proba, weight=weight, label_smoothing=eps, reduction=reduction)
    expected = _torch_ce(logits, proba, weight, label_smoothing=eps, reduction=reduction)
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=ATOL[dtype])


def test_cross_entropy_class_axis_last_equals_torch():
    logits, labels, _ = _data((3, C, 4), np.float64)
    got = fs.cross_entropy(np.moveaxis(logits, 1, -1), labels, axis=-1, label_smoothing=0.1,
                           weight=CLASS_WEIGHT)  # fmt: skip
    expected = _torch_ce(logits, labels, CLASS_WEIGHT, label_smoothing=0.1)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def _torch_linear_loss(X, W, b, y, weight, ignore_index, eps, reduction):
    """Loss and autograd gradients of W (n_features, n_classes) and b through F.cross_entropy."""
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    Xt = torch.tensor(X.toarray() if hasattr(X, "toarray") else X, dtype=Wt.dtype)
    loss = F.cross_entropy(
        Xt @ Wt + bt, torch.from_numpy(y), ignore_index=ignore_index, label_smoothing=eps,
        reduction=reduction, weight=None if weight is None else torch.tensor(weight, dtype=Wt.dtype),
    )  # fmt: skip
    loss.backward()
    return loss.item(), Wt.grad.numpy(), bt.grad.numpy()


def _model(dtype, n=40, d=6, seed=2, ignored=True, ignore_index=-100):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(d, C)).astype(dtype)
    b = rng.normal(size=C).astype(dtype)
    y = rng.integers(0, C, size=n)
    if ignored:
        y[::4] = ignore_index
    return X, W, b, y


@pytest.mark.parametrize("backend", fs.backends())
@pytest.mark.parametrize(
    "weighted, ignore, eps, reduction",
    list(itertools.product([False, True], [None, -100, 1], [0.0, 0.2, 1.0], ["mean", "sum"])),
)
def test_fused_gradient_equals_torch_autograd(backend, weighted, ignore, eps, reduction):
    ignore_index = -100 if ignore is None else ignore
    X, W, b, y = _model(np.float64, ignored=ignore is not None, ignore_index=ignore_index)
    weight = CLASS_WEIGHT if weighted else None
    loss, dW, db = fs.softmax_cross_entropy_grad(
        X, W, b, y, weight=weight, ignore_index=ignore_index, label_smoothing=eps,
        reduction=reduction, backend=backend,
    )  # fmt: skip
    t_loss, t_dW, t_db = _torch_linear_loss(X, W, b, y, weight, ignore_index, eps, reduction)
    np.testing.assert_allclose(loss, t_loss, rtol=1e-12)
    np.testing.assert_allclose(dW, t_dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, t_db, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("backend", fs.backends())
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_fused_gradient_float32_sparse_and_uint8_equal_torch(backend, eps):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, W, b, y = _model(np.float32)
    X[np.abs(X) < 0.8] = 0
    t_loss, t_dW, t_db = _torch_linear_loss(X, W, b, y, CLASS_WEIGHT.astype(np.float32), -100,
                                            eps, "mean")  # fmt: skip
    for data in (X, scipy_sparse.csr_matrix(X)):
        loss, dW, db = fs.softmax_cross_entropy_grad(
            data, W, b, y, weight=CLASS_WEIGHT, label_smoothing=eps, backend=backend
        )
        assert dW.dtype == np.float32
        np.testing.assert_allclose(loss, t_loss, rtol=1e-5)
        np.testing.assert_allclose(dW, t_dW, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(db, t_db, rtol=1e-4, atol=1e-5)
    pixels = np.random.default_rng(3).integers(0, 256, size=X.shape).astype(np.uint8)
    loss, dW, _ = fs.softmax_cross_entropy_grad(pixels, W / 100, b, y, label_smoothing=eps,
                                                backend=backend)  # fmt: skip
    t_loss, t_dW, _ = _torch_linear_loss(pixels.astype(np.float32), W / 100, b, y, None, -100,
                                         eps, "mean")  # fmt: skip
    np.testing.assert_allclose(loss, t_loss, rtol=1e-5)
    np.testing.assert_allclose(dW, t_dW, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "weighted, eps, reduction",
    list(itertools.product([False, True], [0.0, 0.3], ["mean", "sum", "none"])),
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_linear_cross_entropy_equals_torch(weighted, eps, reduction, dtype):
    X, W, b, y = _model(dtype, n=37)
    weight = W.T.copy()  # PyTorch's layout (n_classes, n_features)
    class_weight = CLASS_WEIGHT.astype(dtype) if weighted else None
    xt = torch.tensor(X, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    expected = F.linear_cross_entropy(
        xt, wt, torch.from_numpy(y), linear_bias=bt,
        weight=None if class_weight is None else torch.from_numpy(class_weight),
        reduction=reduction, label_smoothing=eps, ignore_index=-100,
    )  # fmt: skip
    kwargs = dict(reduction=reduction, label_smoothing=eps, class_weight=class_weight)
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (2e-5, 1e-6)
    if reduction == "none":
        got = fs.linear_cross_entropy(X, weight, y, b, **kwargs, rows_per_block=8)
        np.testing.assert_allclose(got, expected.detach().numpy(), rtol=rtol, atol=atol)
        return
    expected.backward()
    loss, grads = fs.linear_cross_entropy(
        X, weight, y, b, **kwargs, grad=("input", "weight", "bias"), rows_per_block=8
    )
    assert list(grads) == ["input", "weight", "bias"]
    assert all(g.dtype == dtype for g in grads.values())
    np.testing.assert_allclose(loss, expected.item(), rtol=rtol)
    grad_rtol, grad_atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    for name, tensor in (("input", xt), ("weight", wt), ("bias", bt)):
        np.testing.assert_allclose(grads[name], tensor.grad.numpy(), rtol=grad_rtol,
                                   atol=grad_atol, err_msg=name)  # fmt: skip
    # the loss alone (the row-block pass) equals the fused kernel's
    alone = fs.linear_cross_entropy(X, weight, y, b, **kwargs)
    np.testing.assert_allclose(alone, loss, rtol=rtol)


def test_linear_cross_entropy_k_dimensional_input_equals_torch():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3, 4, 6))
    weight = rng.normal(size=(C, 6))
    y = rng.integers(0, C, size=(3, 4))
    y[0, 1] = -100
    xt = torch.tensor(X, requires_grad=True)
    wt = torch.tensor(weight, requires_grad=True)
    expected = F.cross_entropy(F.linear(xt, wt).reshape(-1, C), torch.from_numpy(y).reshape(-1),
                               label_smoothing=0.1)  # fmt: skip
    expected.backward()
    loss, grads = fs.linear_cross_entropy(X, weight, y, label_smoothing=0.1,
                                          grad=["weight", "input"])  # fmt: skip
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-12)
    np.testing.assert_allclose(grads["weight"], wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert grads["input"].shape == X.shape
    np.testing.assert_allclose(grads["input"], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    losses = fs.linear_cross_entropy(X, weight, y, reduction="none")
    assert losses.shape == (3, 4) and losses[0, 1] == 0


def test_all_targets_ignored_gives_zero_where_torch_gives_nan():
    # the documented difference: a mean over no weight is 0 (fastsoftmax's sample_weight rule)
    logits, _, _ = _data((4, C), np.float64)
    labels = np.full(4, -100)
    assert np.isnan(_torch_ce(logits, labels, None))
    assert fs.cross_entropy(logits, labels) == 0.0
