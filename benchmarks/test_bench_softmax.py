"""softmax / log_softmax / logsumexp over the last axis (issue 5, target 4).

Contenders in each group: every fastsoftmax backend (``naive`` only on the
small shape), ``scipy.special``, ``torch`` and ``jax`` when installed, and
``np.copyto`` of the same array into a preallocated buffer: reading and
writing the array once is the memory-bandwidth floor for softmax.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from benchutils import all_backends, compiled_backends, impl_name, kernel, public_or_kernel, run

FUNCS = ("softmax", "log_softmax", "logsumexp")

# (shape, dtype, whether the naive backend is timed): big shapes are where the
# targets are; the small one lets the pure-Python backend join in.
CASES = [
    ((2048, 16384), "float32", False),
    ((60000, 10), "float32", False),
    ((60000, 10), "float64", False),
    ((256, 100), "float32", True),
]
PARAMS = [(shape, dtype, func) for shape, dtype, _ in CASES for func in FUNCS]
# backends are listed when the module is collected, so new backends join in by themselves
BACKEND_PARAMS = [
    (shape, dtype, func, backend)
    for shape, dtype, naive in CASES
    for func in FUNCS
    for backend in (all_backends() if naive else compiled_backends())
]


def _ids(param):
    shape, dtype, func = param
    return f"{func}-{shape[0]}x{shape[1]}-{dtype}"


def _group(shape, dtype, func):
    return f"{func} {shape[0]}x{shape[1]} {dtype}"


def _fastsoftmax_call(func, backend, x):
    public = public_or_kernel(func)
    if func == "logsumexp":
        if public is not None:
            return (lambda: public(x, axis=-1, backend=backend)), "public"
        k = kernel(backend, func)
        out = np.empty(x.shape[0], x.dtype)
        return (lambda: k(x, out)), "kernel"
    # Preallocated out=, like np.copyto: the comparison is about the kernel, not malloc.
    out = np.empty_like(x)
    if public is not None:
        return (lambda: public(x, axis=-1, out=out, backend=backend)), "public"
    k = kernel(backend, func)
    return (lambda: k(x, out)), "kernel"


@pytest.mark.parametrize(
    "case", BACKEND_PARAMS, ids=lambda case: f"{case[3]}-{_ids(case[:3])}"
)
def test_fastsoftmax(benchmark, random_matrices, case):
    shape, dtype, func, backend = case
    x = random_matrices(shape, dtype)
    benchmark.group = _group(shape, dtype, func)
    fn, api = _fastsoftmax_call(func, backend, x)
    run(benchmark, fn, impl=impl_name(backend), kind="fastsoftmax", backend=backend, api=api)


@pytest.mark.parametrize("case", PARAMS, ids=_ids)
def test_scipy(benchmark, random_matrices, case):
    import scipy.special

    shape, dtype, func = case
    x = random_matrices(shape, dtype)
    benchmark.group = _group(shape, dtype, func)
    f = getattr(scipy.special, func)
    run(benchmark, lambda: f(x, axis=-1), impl="scipy", kind="peer")


# the floor of both functions that write an array of x's shape (issue 13, target 7)
@pytest.mark.parametrize("case", [p for p in PARAMS if p[2] in ("softmax", "log_softmax")],
                         ids=_ids)  # fmt: skip
def test_copy_floor(benchmark, random_matrices, case):
    shape, dtype, func = case
    x = random_matrices(shape, dtype)
    out = np.empty_like(x)
    benchmark.group = _group(shape, dtype, func)
    run(benchmark, lambda: np.copyto(out, x), impl="np.copyto", kind="floor")


@pytest.mark.parametrize("case", PARAMS, ids=_ids)
def test_torch(benchmark, random_matrices, torch, case):
    shape, dtype, func = case
    t = torch.from_numpy(random_matrices(shape, dtype))  # shares memory, no copy
    benchmark.group = _group(shape, dtype, func)
    f = getattr(torch, func)
    run(benchmark, lambda: f(t, -1), impl="torch", kind="peer")


@pytest.mark.parametrize("case", PARAMS, ids=_ids)
def test_jax(benchmark, random_matrices, jax, case):
    shape, dtype, func = case
    if dtype == "float64" and not jax.config.jax_enable_x64:
        pytest.skip("JAX runs float64 only with jax_enable_x64")
    import jax.scipy.special

    f = getattr(jax.nn, func) if func != "logsumexp" else jax.scipy.special.logsumexp
    f = jax.jit(functools.partial(f, axis=-1))
    x = jax.device_put(random_matrices(shape, dtype))  # copied once, outside the timing
    benchmark.group = _group(shape, dtype, func)
    run(benchmark, lambda: f(x).block_until_ready(), impl="jax", kind="peer")
