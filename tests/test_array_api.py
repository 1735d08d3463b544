"""Array-API input: arrays of other libraries come back in the caller's namespace (as SciPy does).

array-api-strict (in the ``test`` extra) always; PyTorch CPU tensors and JAX
arrays when those are installed.
"""

import sys

import numpy as np
import pytest

import fastsoftmax as fs

xps = pytest.importorskip("array_api_strict")

LOGITS = np.random.default_rng(0).normal(size=(4, 3))
LABELS = np.array([0, 2, 1, 2])


def _np(array):
    try:
        return np.from_dlpack(array)
    except BufferError:  # NumPy < 1.25 exports no read-only array (from_dlpack's own results)
        return np.asarray(array)


def test_import_loads_no_array_library():
    # detection is lazy: fastsoftmax never imports torch, jax or array_api_strict itself
    import subprocess

    code = (
        "import sys, numpy as np, fastsoftmax as fs; "
        "fs.softmax(np.ones(3)); fs.cross_entropy(np.ones((2, 3)), [0, 1]); "
        "print(sorted(m for m in ('torch', 'jax', 'array_api_strict') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


FUNCTIONS = {
    "softmax": (lambda xp: fs.softmax(xp.asarray(LOGITS), axis=1),
                lambda: fs.softmax(LOGITS, axis=1)),
    "log_softmax": (lambda xp: fs.log_softmax(xp.asarray(LOGITS), axis=-1),
                    lambda: fs.log_softmax(LOGITS, axis=-1)),
    "logsumexp": (lambda xp: fs.logsumexp(xp.asarray(LOGITS), axis=1),
                  lambda: fs.logsumexp(LOGITS, axis=1)),
    "sigmoid": (lambda xp: fs.sigmoid(xp.asarray(LOGITS)), lambda: fs.sigmoid(LOGITS)),
    "log_expit": (lambda xp: fs.log_expit(xp.asarray(LOGITS)), lambda: fs.log_expit(LOGITS)),
    "cross_entropy none": (
        lambda xp: fs.cross_entropy(xp.asarray(LOGITS), xp.asarray(LABELS), reduction="none",
                                    label_smoothing=0.1),
        lambda: fs.cross_entropy(LOGITS, LABELS, reduction="none", label_smoothing=0.1),
    ),
    "linear": (lambda xp: fs.linear(xp.asarray(LOGITS), xp.asarray(LOGITS.T)),
               lambda: fs.linear(LOGITS, LOGITS.T)),
}  # fmt: skip


def _check_same(got, expected, xp_type):
    assert type(got) is xp_type
    np.testing.assert_allclose(_np(got), expected, rtol=1e-14)
    assert _np(got).dtype == np.asarray(expected).dtype


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_array_api_strict_in_strict_out(name):
    call, reference = FUNCTIONS[name]
    _check_same(call(xps), reference(), type(xps.asarray(1.0)))


def test_array_api_strict_scalars_and_tuples():
    loss = fs.cross_entropy(xps.asarray(LOGITS.astype(np.float32)), xps.asarray(LABELS))
    assert type(loss) is type(xps.asarray(1.0)) and loss.shape == () and loss.dtype == xps.float32
    assert float(loss) == pytest.approx(fs.cross_entropy(LOGITS.astype(np.float32), LABELS), rel=1e-6)
    X, W = xps.asarray(LOGITS), xps.asarray(np.zeros((3, 3)))
    loss, dW, db = fs.softmax_cross_entropy_grad(X, W, None, xps.asarray(LABELS))
    assert all(type(a) is type(X) for a in (loss, dW, db)) and loss.dtype == xps.float64
    res, sign = fs.logsumexp(X, axis=1, b=xps.asarray(np.full(3, -1.0)), return_sign=True)
    assert type(res) is type(X) and type(sign) is type(X)
    np.testing.assert_array_equal(_np(sign), -1.0)


def test_mixed_libraries_are_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="different array libraries"):
        fs.cross_entropy(xps.asarray(LOGITS), torch.from_numpy(LABELS))


def test_numpy_input_is_unchanged():
    assert type(fs.softmax(LOGITS, axis=1)) is np.ndarray
    assert isinstance(fs.cross_entropy(LOGITS, LABELS), float)


# ---------------------------------------------------------------------------
# PyTorch CPU tensors


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_torch_in_torch_out(torch, name):
    call, reference = FUNCTIONS[name]
    got = call(torch)
    _check_same(got, reference(), torch.Tensor)


def test_torch_float32_stays_float32_and_scalars_are_tensors(torch):
    z = torch.randn(5, 4, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 4, (5, 3), generator=torch.Generator().manual_seed(1))
    loss = fs.cross_entropy(z, y, label_smoothing=0.1)
    assert isinstance(loss, torch.Tensor) and loss.dtype == torch.float32 and loss.ndim == 0
    expected = torch.nn.functional.cross_entropy(z, y, label_smoothing=0.1)
    assert torch.allclose(loss, expected, rtol=1e-5)
    assert fs.softmax(z, axis=1).dtype == torch.float32
    assert fs.log_expit(torch.tensor(-1000.0)).item() == -1000.0


def test_torch_out_is_written_in_place_without_copies(torch):
    z = torch.randn(4, 6, dtype=torch.float64)
    out = torch.empty_like(z)
    result = fs.softmax(z, axis=1, out=out)
    assert result is out
    assert torch.allclose(out, torch.softmax(z, dim=1), rtol=1e-14)
    # in place on the caller's own tensor: the DLPack views share its memory
    fs.log_softmax(z, axis=1, out=z)
    assert torch.allclose(z.exp().sum(dim=1), torch.ones(4, dtype=torch.float64))


def test_torch_result_shares_memory_with_the_numpy_result(torch, monkeypatch):
    # out: through torch.from_dlpack, so the tensor views the array the kernel wrote
    seen = {}
    real = torch.from_dlpack

    def spy(array):
        seen["array"] = array
        return real(array)

    monkeypatch.setattr(torch, "from_dlpack", spy)
    got = fs.softmax(torch.ones(3, 4, dtype=torch.float64), axis=1)
    assert got.data_ptr() == seen["array"].ctypes.data


def test_torch_linear_cross_entropy_grads_come_back_as_tensors(torch):
    x = torch.randn(6, 4, dtype=torch.float64)
    w = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, -100, 1])
    loss, grads = fs.linear_cross_entropy(x, w, y, grad=("weight", "input"))
    assert isinstance(loss, torch.Tensor) and all(isinstance(g, torch.Tensor) for g in grads.values())
    xt, wt = x.clone().requires_grad_(), w.clone().requires_grad_()
    torch.nn.functional.cross_entropy(xt @ wt.T, y).backward()
    assert torch.allclose(grads["weight"], wt.grad, rtol=1e-10)
    assert torch.allclose(grads["input"], xt.grad, rtol=1e-10)


def test_torch_tensor_that_requires_grad_is_a_clear_error(torch):
    with pytest.raises(TypeError, match=r"logits \(torch.Tensor\) could not be read .*detach"):
        fs.cross_entropy(torch.ones(2, 3, requires_grad=True), torch.tensor([0, 1]))


def test_jax_in_jax_out():
    jnp = pytest.importorskip("jax.numpy")
    got = fs.softmax(jnp.asarray(LOGITS), axis=1)
    assert type(got).__module__.startswith("jax")
    np.testing.assert_allclose(np.asarray(got), fs.softmax(LOGITS, axis=1), rtol=1e-6)
