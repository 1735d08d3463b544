"""Per-iteration cost of the L-BFGS driver alone (issue 10): scipy's L-BFGS-B against
fastsoftmax._lbfgs.minimize_lbfgs on a trivial quadratic objective, whose own time is
subtracted; the median over iterations 12 to 24 (the 10 pairs of history full), one thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/lbfgs_driver.py [n_params]

(default 4,542,270 = 78,315 features x 58 classes, the issue's corpus).
"""
import time, sys, numpy as np
from threadpoolctl import threadpool_limits, threadpool_info
from scipy.optimize import minimize
import fastsoftmax
from fastsoftmax._lbfgs import minimize_lbfgs
fastsoftmax.set_num_threads(1)  # the compiled passes' threads
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4_542_270
h = np.geomspace(1, 1e4, n)
buf = np.empty(n)
tf = [0.0]
def fun(x):
    t0 = time.perf_counter()
    np.subtract(x, 1.0, out=buf)
    g = buf * h
    f = 0.5 * float(np.dot(buf, g))
    tf[0] += time.perf_counter() - t0
    return f, g
def per_iter(solve):
    stamps = []
    def cb(*a):
        stamps.append((time.perf_counter(), tf[0]))
    tf[0] = 0; solve(cb)
    d = [(t1 - t0) - (f1 - f0) for (t0, f0), (t1, f1) in zip(stamps[:-1], stamps[1:])][11:]
    return np.median(d) * 1e3, len(stamps)
with threadpool_limits(1):
    for r in range(2):
        sc, k1 = per_iter(lambda cb: minimize(fun, np.zeros(n), jac=True, method="L-BFGS-B", callback=cb,
                                            options=dict(maxiter=24, gtol=1e-12, ftol=0, maxls=50)))
        me, k2 = per_iter(lambda cb: minimize_lbfgs(fun, np.zeros(n), tol=1e-12, max_iter=24, ftol=0, report=cb))
        print(f"n={n} driver ms/iteration (median of iterations 12-{k1}/{k2}): scipy {sc:.1f}  fastsoftmax {me:.1f}  ratio {sc/me:.1f}")
print([(i['internal_api'], i['num_threads'], i.get('architecture')) for i in threadpool_info()])
