"""The one-thread plain-SGD path of the cython ``train_epoch`` (issue 13, target 2).

On one thread, plain SGD without an L1 term steps the weights in the packed
panels of the forward products (``fs_sgd_step_packed``) and writes ``W`` back
once after the last minibatch (``fs_unpack_weights``); the first chunk of
each minibatch writes the gradient rather than adding to it
(``fs_bwd_set_*``), and the l2 term of the loss is summed in the step.  These
epochs are compared with the hand-written NumPy loop of test_train_epoch.py
on shapes that cross every part of the packed layout: class counts that make
groups of 10, 5 and single classes, feature counts that are no multiple of
the vector width, minibatches of one and of several chunks, l2 on and off,
float and uint8 X.
"""

import numpy as np
import pytest
from test_train_epoch import assert_same, run_both

import fastsoftmax
from fastsoftmax._backends import get_module

pytestmark = pytest.mark.skipif(
    "cython" not in fastsoftmax.backends()
    or not hasattr(get_module("cython"), "train_epoch"),
    reason="the cython backend is not built",
)


@pytest.mark.parametrize("x_kind", ["float", "uint8"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("l2", [0.0, 0.03])
@pytest.mark.parametrize(
    "C, d, n, batch_size",
    [
        (13, 37, 41, 8),  # classes in groups of 10 and 1 (float32) or 5 and 1 (float64)
        (7, 45, 29, 29),  # groups of 5 and 1; one minibatch
        (2, 1, 9, 2),  # one feature: no whole vector of weights
        (10, 33, 1300, 600),  # minibatches of two chunks (set, then add)
    ],
)
def test_packed_sgd_epochs_match_the_numpy_loop(restore_num_threads, x_kind, dtype, l2, C, d, n,
                                                batch_size):  # fmt: skip
    fastsoftmax.set_num_threads(1)
    result, reference = run_both(
        get_module("cython"), "sgd", dtype, x_kind=x_kind, l2=l2, C=C, n=n, d=d,
        batch_size=batch_size, weighted=l2 > 0,
    )  # fmt: skip
    assert_same(result, reference, dtype)
    assert np.all(np.isfinite(result[0]))

