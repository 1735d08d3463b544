"""One epoch of minibatch SGD on MNIST, batch 128, shuffled (issue 5, target 2).

Contenders, all with plain SGD at learning rate 0.1 on float32 pixels / 255:

* ``fastsoftmax[<backend>]`` for a backend with a compiled whole-epoch kernel
  (``train_epoch``): ``SoftmaxRegression(max_epochs=1)``, one call per epoch;
* ``fastsoftmax[numpy]``: the numpy backend's Python loop, a
  :class:`fastsoftmax.Trainer` fed one shuffled minibatch at a time (the
  reference of the group), via ``Trainer.train_epoch``;
* ``Trainer[<backend>]``: the same Python loop on the other backends;
* ``train_epoch[<backend>]``: the backend's ``train_epoch`` kernel called
  directly on a fresh ``rng.permutation`` order (no estimator checks);
* ``torch``: ``nn.Linear`` + ``F.cross_entropy`` + ``torch.optim.SGD`` over
  a ``torch.randperm`` order.
"""

from __future__ import annotations

import numpy as np
import pytest
from benchutils import compiled_backends, has_train_epoch, impl_name, kernel, require, run

import fastsoftmax

BATCH = 128
LR = 0.1
GROUP = f"epoch sgd batch {BATCH} mnist float32"


def _epoch_info(mnist, **info):
    return dict(batch_size=BATCH, learning_rate=LR, data=mnist.source, **info)


@pytest.mark.parametrize("backend", compiled_backends())
def test_trainer_loop(benchmark, mnist, backend):
    from fastsoftmax.learners import SGD

    X, y = mnist.X, mnist.y
    model = fastsoftmax.SoftmaxModel(X.shape[1], 10, dtype=np.float32)
    # no train-error tracking: like the torch loop, one forward and one backward per batch
    trainer = fastsoftmax.Trainer(model, SGD(learning_rate=LR), track_train_error=False)
    rng = np.random.default_rng(0)

    def epoch():
        with fastsoftmax.use_backend(backend):
            trainer.train_epoch(X, y, batch_size=BATCH, shuffle=True, random_state=rng)

    benchmark.group = GROUP
    # the numpy backend's loop is the reference the target is measured against
    impl = impl_name(backend) if backend == "numpy" else f"Trainer[{backend}]"
    run(
        benchmark,
        epoch,
        min_rounds=5,
        **_epoch_info(
            mnist, impl=impl, kind="fastsoftmax", backend=backend, how="Trainer.train_epoch"
        ),
    )


@pytest.mark.parametrize("backend", [b for b in compiled_backends() if b != "numpy"])
def test_compiled_epoch(benchmark, mnist, backend):
    if not has_train_epoch(backend):
        pytest.skip(f"backend {backend!r} has no compiled train_epoch")
    SoftmaxRegression = require("SoftmaxRegression")
    X, y = mnist.X, mnist.y

    def epoch():
        with fastsoftmax.use_backend(backend):
            est = SoftmaxRegression(
                optimizer="sgd",
                learning_rate=LR,
                batch_size=BATCH,
                max_epochs=1,
                shuffle=True,
                random_state=0,
            )
            return est.fit(X, y)

    benchmark.group = GROUP
    est = run(
        benchmark,
        epoch,
        min_rounds=5,
        **_epoch_info(
            mnist,
            impl=impl_name(backend),
            kind="fastsoftmax",
            backend=backend,
            how="SoftmaxRegression(max_epochs=1).fit",
        ),
    )
    # the estimator's own clock of the epoch, without fit()'s checks
    epoch_time = getattr(est, "history_", {}).get("epoch_time")
    if epoch_time:
        benchmark.extra_info["epoch_time"] = float(epoch_time[-1])
    accuracy = np.mean(est.predict(mnist.X_test) == mnist.y_test)
    benchmark.extra_info["test_accuracy"] = float(accuracy)


@pytest.mark.parametrize("backend", compiled_backends())
def test_train_epoch_kernel(benchmark, mnist, backend):
    # The backend's whole-epoch kernel called directly: the epoch without fit()'s checks.
    if not has_train_epoch(backend):
        pytest.skip(f"backend {backend!r} has no compiled train_epoch")
    train_epoch = kernel(backend, "train_epoch")
    X, y = mnist.X, mnist.y.astype(np.intp)
    W = np.zeros((X.shape[1], 10), np.float32)
    b = np.zeros(10, np.float32)
    rng = np.random.default_rng(0)

    def epoch():
        order = rng.permutation(X.shape[0])  # shuffling is part of the epoch
        return train_epoch(X, y, None, W, b, order, BATCH, 0.0, True, "sgd", {}, LR, 0, None)

    benchmark.group = GROUP
    run(
        benchmark,
        epoch,
        min_rounds=5,
        **_epoch_info(
            mnist,
            impl=f"train_epoch[{backend}]",
            kind="fastsoftmax",
            backend=backend,
            how="backend train_epoch kernel",
        ),
    )


def test_torch_loop(benchmark, mnist, torch):
    import torch.nn.functional as F

    torch.manual_seed(0)
    X, y = torch.from_numpy(mnist.X), torch.from_numpy(mnist.y)
    model = torch.nn.Linear(X.shape[1], 10)
    opt = torch.optim.SGD(model.parameters(), lr=LR)

    def epoch():
        order = torch.randperm(X.shape[0])
        for start in range(0, X.shape[0], BATCH):
            idx = order[start : start + BATCH]
            loss = F.cross_entropy(model(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    benchmark.group = GROUP
    run(benchmark, epoch, min_rounds=5, **_epoch_info(mnist, impl="torch", kind="peer"))
