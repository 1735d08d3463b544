"""Epoch against full pass (issue 13, target 2): one shuffled SGD epoch of the cython
``train_epoch`` kernel at batch 32 and 128 against the full-batch ``softmax_ce_sums`` pass,
float32 and uint8 X, in one process, interleaved rounds, medians of CPU time (thread time:
the machine is shared) and of wall time; plus
``SoftmaxRegression(max_epochs=1, batch_size=128).fit`` against the numpy backend's
Trainer loop (and a PyTorch eager loop when torch is installed).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTSOFTMAX_DATA=... \
        python benchmarks/issue13_epoch_ratio.py [threads=1] [rounds=7]
"""
import os
import sys
import warnings

import numpy as np
from benchutils import interleaved_rounds, mnist_train_arrays
from threadpoolctl import threadpool_info, threadpool_limits

import fastsoftmax
from fastsoftmax import SoftmaxRegression
from fastsoftmax._backends import cython as cy
from fastsoftmax.learners import SGD

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 7
X8, X32, y = mnist_train_arrays()
n, d = X32.shape
C = 10
fastsoftmax.set_num_threads(threads)
rng = np.random.default_rng(0)


def full_pass(X):
    W = np.zeros((C, d), np.float32)
    b = np.zeros(C, np.float32)
    gW, gb = np.empty_like(W), np.empty_like(b)
    return lambda: cy.softmax_ce_sums(X, W, b, y, None, gW, gb)


def epoch(X, batch):
    W = np.zeros((d, C), np.float32)  # the epoch kernel's contract: W (d, C)
    b = np.zeros(C, np.float32)
    lr = 0.1 if X.dtype == np.float32 else 0.1 / 255**2

    def run():
        order = rng.permutation(n)
        cy.train_epoch(X, y, None, W, b, order, batch, 0.0, True, "sgd", {}, lr, 0, {})
    return run


def trainer_loop(backend):
    model = fastsoftmax.SoftmaxModel(d, C, dtype=np.float32)
    trainer = fastsoftmax.Trainer(model, SGD(learning_rate=0.1), track_train_error=False)

    def run():
        with fastsoftmax.use_backend(backend):
            trainer.train_epoch(X32, y, batch_size=128, shuffle=True, random_state=rng)
    return run


def fit():
    SoftmaxRegression(optimizer="sgd", learning_rate=0.1, batch_size=128, max_epochs=1,
                      random_state=0).fit(X32, y)  # fmt: skip


cases = {
    "full pass f32 [peer]": full_pass(X32),
    "full pass u8": full_pass(X8),
    "epoch B=32 f32": epoch(X32, 32),
    "epoch B=128 f32": epoch(X32, 128),
    "epoch B=32 u8": epoch(X8, 32),
    "epoch B=128 u8": epoch(X8, 128),
    "SoftmaxRegression(max_epochs=1, batch_size=128).fit": fit,
    "numpy Trainer loop, B=128": trainer_loop("numpy"),
}
try:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    Xt, yt = torch.from_numpy(X32), torch.from_numpy(y)
    lin = torch.nn.Linear(d, C)
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)

    def torch_loop():
        for idx in torch.randperm(n).split(128):
            opt.zero_grad()
            F.cross_entropy(lin(Xt[idx]), yt[idx]).backward()
            opt.step()
    cases["torch eager loop, B=128"] = torch_loop
except ImportError:
    pass

with threadpool_limits(threads), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for f in cases.values():
        f()
    cpu, wall = interleaved_rounds(cases, rounds)
print(f"threads={threads}, rounds={rounds}, loadavg={np.round(os.getloadavg(), 2).tolist()}")
peer_cpu, peer_wall = np.median(cpu["full pass f32 [peer]"]), np.median(wall["full pass f32 [peer]"])
for k in cases:
    c, w = np.median(cpu[k]), np.median(wall[k])
    print(f"{k:55s} cpu {c * 1e3:8.1f} ms ({c / peer_cpu:5.2f} x full pass)   "
          f"wall {w * 1e3:8.1f} ms ({w / peer_wall:5.2f} x)")
fitc, fitw = np.median(cpu[k := "SoftmaxRegression(max_epochs=1, batch_size=128).fit"]), np.median(wall[k])
for peer in ("numpy Trainer loop, B=128", "torch eager loop, B=128"):
    if peer in cases:
        print(f"fit vs {peer}: {np.median(cpu[peer]) / fitc:.2f}x (cpu), "
              f"{np.median(wall[peer]) / fitw:.2f}x (wall)")
print([(p["internal_api"], p["version"], p.get("architecture"), p["num_threads"])
       for p in threadpool_info()])  # fmt: skip
