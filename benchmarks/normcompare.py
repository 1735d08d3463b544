"""Compare two commits' benchmark runs on a machine whose speed drifts.

    python benchmarks/normcompare.py OLD1.json,OLD2.json,... NEW1.json,NEW2.json,...

Prints new/old for every fastsoftmax benchmark: each run's median is first divided
by a peer timed in the same run (SciPy's function of the same shape for the row
kernels, one-thread OpenBLAS sgemm otherwise), run i of OLD is paired with run i
of NEW, and the median over the pairs comes first (above 1: slower).
"""

import json
import re
import statistics as st
import sys

def medians(path):
    return {b["fullname"].split("::")[-1]: b["stats"]["median"] for b in json.load(open(path))["benchmarks"]}

def reference(name, m):
    g = re.match(r"test_fastsoftmax\[\w+-(\w+)-(\w+)-(\w+)\]", name)
    if g:
        ref = f"test_scipy[{g[1]}-{g[2]}-{g[3]}]"
        if ref in m:
            return m[ref]
    return m["test_blas_reference[sgemm 2048-1]"]

olds, news = [medians(p) for p in sys.argv[1].split(",")], [medians(p) for p in sys.argv[2].split(",")]
names = sorted(set.intersection(*(set(m) for m in olds + news)))
rows = []
for name in names:
    if not re.search(r"fastsoftmax|train_epoch|trainer_loop|compiled_epoch|softmax_regression|logistic_regression\[", name):
        continue
    ratios = [(n[name] / reference(name, n)) / (o[name] / reference(name, o)) for o, n in zip(olds, news)]
    raw = [n[name] / o[name] for o, n in zip(olds, news)]
    rows.append((st.median(ratios), name, ratios, raw))
for r, name, ratios, raw in sorted(rows, reverse=True):
    print(f"{r:6.3f}  {name:60s} normalised {' '.join(f'{x:.3f}' for x in ratios)}  raw {' '.join(f'{x:.3f}' for x in raw)}")
