"""Wrong sizes or labels reaching the compiled full-batch kernels raise (issue 16).

The public functions never pass such arguments; these probes call the extension
directly, as a bug in a future caller would.  They run in a subprocess, so that
a crash (the behaviour before these checks) fails a test instead of the run.
"""

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("fastsoftmax._cython_kernels")

PROBE = """
import json
import numpy as np
from fastsoftmax import _cython_kernels as k

rng = np.random.default_rng(0)
n, d, C, T, B = 20, 6, 4, 1, 8
X = rng.standard_normal((n, d))
y = rng.integers(0, C, n).astype(np.intp)
yf = (y % 2).astype(np.float64)
none = np.empty(0)


def sums(**change):
    args = dict(X=X, WT=np.zeros((C, d)), b=np.zeros(C), y=y, sample_weight=none,
                dWT_acc=np.zeros((T, C, d)), db_acc=np.zeros((T, C)), Z_buf=np.empty((T, B, C)),
                num_threads=T)
    args.update(change)
    return lambda: k.softmax_ce_sums(*args.values())


def logistic(**change):
    args = dict(X=X, w=np.zeros(d), b=0.0, y=yf, sample_weight=none, dw_acc=np.zeros((T, d)),
                db_acc=np.zeros((T, 1)), z_buf=np.empty((T, B)), num_threads=T)
    args.update(change)
    return lambda: k.logistic_sums(*args.values())


def linear(**change):
    args = dict(X=X, WT=np.zeros((C, d)), b=np.zeros(C), out=np.empty((n, C)), num_threads=T)
    args.update(change)
    return lambda: k.linear(*args.values())


logits = rng.standard_normal((n, C))
CASES = {
    "sums: WT of other features": sums(WT=np.zeros((C, d + 1))),
    "sums: b of other classes": sums(b=np.zeros(C + 1)),
    "sums: y shorter than X": sums(y=y[:-1]),
    "sums: label == C": sums(y=np.full(n, C, np.intp)),
    "sums: label < 0": sums(y=np.full(n, -1, np.intp)),
    "sums: short sample_weight": sums(sample_weight=np.ones(n - 1)),
    "sums: more threads than accumulators": sums(num_threads=2),
    "sums: num_threads 0": sums(num_threads=0),
    "sums: block of 0 rows": sums(Z_buf=np.empty((T, 0, C))),
    "sums: accumulators of other classes": sums(dWT_acc=np.zeros((T, C - 1, d))),
    "logistic: w of other features": logistic(w=np.zeros(d + 1)),
    "logistic: y shorter than X": logistic(y=yf[:-1]),
    "logistic: more threads than accumulators": logistic(num_threads=2),
    "logistic: block of 0 rows": logistic(z_buf=np.empty((T, 0))),
    "linear: WT of other features": linear(WT=np.zeros((C, d + 1))),
    "linear: b of other classes": linear(b=np.zeros(C - 1)),
    "linear: out of other shape": linear(out=np.empty((n - 1, C))),
    "cross_entropy: label == C": lambda: k.cross_entropy(logits, np.full(n, C, np.intp),
                                                         np.empty(n), 1),
    "cross_entropy: short out": lambda: k.cross_entropy(logits, y, np.empty(n - 1), 1),
    "softmax_rows: out of other shape": lambda: k.softmax_rows(logits, np.empty((n, C + 1)), 1),
    "logsumexp_rows: short out": lambda: k.logsumexp_rows(logits, np.empty(n - 1), 1),
    "classification_error_count: short y": lambda: k.classification_error_count(logits, y[:-1], 1),
}
for name, call in CASES.items():
    try:
        call()
        result = ["no error", ""]
    except Exception as exc:
        result = [type(exc).__name__, str(exc)]
    print(json.dumps({name: result}), flush=True)
"""


@pytest.fixture(scope="module")
def probed():
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROBE)], capture_output=True, text=True, timeout=300
    )
    results = {}
    for line in run.stdout.splitlines():
        results.update(json.loads(line))
    return run, results


CASE_NAMES = [
    "sums: WT of other features",
    "sums: b of other classes",
    "sums: y shorter than X",
    "sums: label == C",
    "sums: label < 0",
    "sums: short sample_weight",
    "sums: more threads than accumulators",
    "sums: num_threads 0",
    "sums: block of 0 rows",
    "sums: accumulators of other classes",
    "logistic: w of other features",
    "logistic: y shorter than X",
    "logistic: more threads than accumulators",
    "logistic: block of 0 rows",
    "linear: WT of other features",
    "linear: b of other classes",
    "linear: out of other shape",
    "cross_entropy: label == C",
    "cross_entropy: short out",
    "softmax_rows: out of other shape",
    "logsumexp_rows: short out",
    "classification_error_count: short y",
]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_compiled_kernel_refuses_bad_arguments(probed, name):
    run, results = probed
    assert name in results, f"the probe died before {name!r}: {run.stderr[-2000:]}"
    kind, message = results[name]
    assert kind == "ValueError", (kind, message)
    assert message.startswith("compiled kernel called with"), message
