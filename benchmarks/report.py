"""Turn a pytest-benchmark JSON file into a markdown report and a PNG bar chart.

Usage::

    pytest benchmarks/ --benchmark-only --benchmark-json=out.json
    python benchmarks/report.py out.json -o report.md --png report.png
    # several runs: tables from the first, the issue-5 targets for every run
    python benchmarks/report.py run1.json run2.json run3.json -o report.md

The report has, for every benchmark group (one comparison: same work, same
data, same threads), the median time of each contender, its speed-up over the
numpy backend (``numpy / this``: above 1 is faster than the numpy backend) and
how many times slower it is than the fastest fastsoftmax backend of the group
(``this / best``: a peer at 3.0 takes three times as long).  Then the six
targets of issue 5, computed from the groups the suite writes, each marked met
or not met.  Benchmarks name themselves through ``extra_info`` (``impl``,
``kind``), see ``benchmarks/conftest.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

NUMPY = "fastsoftmax[numpy]"

# Group names written by the benchmark modules (test_bench_*.py).
G_GRAD_1 = "grad mnist float32 1 thread"
G_GRAD_2 = "grad mnist float32 2 threads"
G_EPOCH = "epoch sgd batch 128 mnist float32"
G_FIT_SOFTMAX = "fit SoftmaxRegression() mnist float32"
G_FIT_LOGISTIC = "fit LogisticRegression(max_iter=100) mnist float32"
G_SOFTMAX_BIG = "softmax 2048x16384 float32"
G_SOFTMAX_TALL = "softmax 60000x10 float32"
G_BLAS = "BLAS reference float32 1 thread"
G_IMPORT = "startup: python -c 'import fastsoftmax'"
G_FIRST_DEFAULT = "startup: first calls in a new process, default backend"
G_FIRST_NUMBA = "startup: first calls in a new process, numba backend"

# extra_info keys worth a note in the tables
NOTE_KEYS = (
    "test_accuracy",
    "train_time",
    "epochs",
    "n_iter",
    "coef_rel_diff_vs_sklearn",
    "epoch_time",
    "import_seconds",
    "compile_seconds",
    "backend",
    "api",
    "loadavg_1min",
)


# --------------------------------------------------------------------------- loading


class Entry:
    """One benchmark of a run: its group, contender name, kind, median and extra info."""

    def __init__(self, bench):
        info = bench.get("extra_info") or {}
        stats = bench["stats"]
        self.group = bench.get("group") or bench["name"]
        self.name = bench["name"]
        self.impl = info.get("impl", bench["name"])
        self.kind = info.get("kind", "other")
        self.median = stats["median"]
        self.iqr = stats["iqr"]
        self.rounds = stats["rounds"]
        self.info = info

    @property
    def gflops(self):
        flops = self.info.get("flops")
        return flops / self.median / 1e9 if flops and self.median > 0 else None


def load(path):
    with open(path) as f:
        run = json.load(f)
    groups = {}
    for bench in run["benchmarks"]:
        entry = Entry(bench)
        groups.setdefault(entry.group, []).append(entry)
    for entries in groups.values():
        entries.sort(key=lambda e: e.median)
    return run, groups


def reference(entries):
    return next((e for e in entries if e.impl == NUMPY), None)


def best_fastsoftmax(entries, exclude_numpy=True):
    """The fastest fastsoftmax entry of a group (by default not the numpy reference)."""
    pool = [
        e for e in entries if e.kind == "fastsoftmax" and not (exclude_numpy and e.impl == NUMPY)
    ]
    return min(pool, key=lambda e: e.median) if pool else None


def find(entries, impl):
    return next((e for e in entries if e.impl == impl), None)


# --------------------------------------------------------------------------- formatting


def fmt_time(seconds):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "n/a"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def fmt_note(key, value):
    if isinstance(value, float):
        if key.endswith(("time", "seconds")):
            return f"{key}={fmt_time(value)}"
        return f"{key}={value:.4g}"
    return f"{key}={value}"


def group_table(name, entries):
    ref = reference(entries)
    best = best_fastsoftmax(entries) or best_fastsoftmax(entries, exclude_numpy=False)
    lines = [
        f"### {name}",
        "",
        "| contender | kind | median | IQR | rounds | numpy / this | this / best fastsoftmax "
        "| notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for e in entries:
        vs_numpy = ref.median / e.median if ref else None
        vs_best = e.median / best.median if best else None
        notes = [
            fmt_note(k, e.info[k])
            for k in NOTE_KEYS
            if k in e.info and k != "backend" and not (k == "api" and e.info[k] == "public")
        ]
        if e.gflops:
            notes.insert(0, f"{e.gflops:.1f} GFLOP/s")
        if "data" in e.info and e.info["data"] != "mnist":
            notes.append(f"data={e.info['data']}")
        lines.append(
            f"| {e.impl} | {e.kind} | {fmt_time(e.median)} | {fmt_time(e.iqr)} | {e.rounds} | "
            f"{fmt_ratio(vs_numpy)} | {fmt_ratio(vs_best)} | {', '.join(notes)} |"
        )
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- targets


def _who(entry):
    """'impl median' of an entry, or 'n/a'."""
    return "n/a" if entry is None else f"{entry.impl} {fmt_time(entry.median)}"


def _ratio(slow, fast):
    return slow.median / fast.median if slow and fast else None


def _check(value, threshold, *, below=False):
    if value is None:
        return None
    return value < threshold if below else value >= threshold


def targets(groups):
    """The issue-5 targets of one run: a list of (target, figure, met) rows."""
    g = lambda name: groups.get(name, [])  # noqa: E731
    rows = []

    rows.append(
        _speedup_row(
            "1. loss+grad MNIST f32, 1 thread: best backend >= 3x numpy and >= 3x sklearn",
            g(G_GRAD_1),
            [(NUMPY, "numpy", 3), ("sklearn", "sklearn", 3)],
            peak=getattr(find(g(G_BLAS), "np.matmul sgemm 2048"), "gflops", None),
        )
    )
    rows.append(
        _speedup_row(
            "2. SGD epoch (batch 128): >= 3x numpy Python loop, >= 8x PyTorch loop",
            g(G_EPOCH),
            [(NUMPY, "numpy loop", 3), ("torch", "torch loop", 8)],
        )
    )

    # 3a. SoftmaxRegression().fit: >= 92 % in < 0.2 s of training
    fit = g(G_FIT_SOFTMAX)
    best = best_fastsoftmax(fit)
    acc = best.info.get("test_accuracy") if best else None
    train = best.info.get("train_time", best.median) if best else None
    rows.append(
        (
            "3a. SoftmaxRegression().fit MNIST: >= 92% test accuracy, < 0.2 s training",
            f"{best.impl if best else 'n/a'}: accuracy {acc if acc is None else f'{acc:.2%}'}, "
            f"training {fmt_time(train)} (fit wall {fmt_time(best.median if best else None)})",
            _all(_check(acc, 0.92), _check(train, 0.2, below=True)),
        )
    )

    # 3b. LogisticRegression(max_iter=100) vs sklearn
    fit = g(G_FIT_LOGISTIC)
    best, sk = best_fastsoftmax(fit), find(fit, "sklearn")
    r_sk = _ratio(sk, best)
    detail = ""
    if best and sk:
        detail = (
            f"; accuracy {best.info.get('test_accuracy', float('nan')):.2%} vs sklearn "
            f"{sk.info.get('test_accuracy', float('nan')):.2%}; coef relative difference "
            f"{best.info.get('coef_rel_diff_vs_sklearn', float('nan')):.2g}"
        )
    rows.append(
        (
            "3b. LogisticRegression(max_iter=100).fit: >= 3x sklearn, same coefficients",
            f"{_who(best)}: "
            f"{fmt_ratio(r_sk)} sklearn{detail}",
            _check(r_sk, 3),
        )
    )

    # 4. softmax fast path
    big, tall = g(G_SOFTMAX_BIG), g(G_SOFTMAX_TALL)
    best_big, best_tall = best_fastsoftmax(big), best_fastsoftmax(tall)
    r_big, r_copy = _ratio(reference(big), best_big), _ratio(best_big, find(big, "np.copyto"))
    r_tall = _ratio(reference(tall), best_tall)
    rows.append(
        (
            "4. softmax 2048x16384 f32: >= 3x numpy, <= 1.5x np.copyto; 60000x10: >= 5x numpy",
            f"2048x16384 {best_big.impl if best_big else 'n/a'}: {fmt_ratio(r_big)} numpy, "
            f"{fmt_ratio(r_copy)} the copy's time; 60000x10 "
            f"{best_tall.impl if best_tall else 'n/a'}: {fmt_ratio(r_tall)} numpy",
            _all(_check(r_big, 3), _check(r_copy, 1.5, below=True), _check(r_tall, 5)),
        )
    )

    # 5. two threads vs one: fastest vs fastest, and each backend against itself
    one, two = best_fastsoftmax(g(G_GRAD_1)), best_fastsoftmax(g(G_GRAD_2))
    r_threads = _ratio(one, two)
    per_backend = [
        f"{e.impl} {fmt_ratio(_ratio(e, find(g(G_GRAD_2), e.impl)))}"
        for e in g(G_GRAD_1)
        if e.kind == "fastsoftmax" and find(g(G_GRAD_2), e.impl)
    ]
    rows.append(
        (
            "5. loss+grad MNIST f32: 2 threads >= 1.7x faster than 1 thread",
            f"fastest on 1 thread {_who(one)}, on 2 threads {_who(two)}: "
            f"{fmt_ratio(r_threads)} (per backend: {', '.join(per_backend) or 'n/a'})",
            _check(r_threads, 1.7),
        )
    )

    # 6. start-up
    imp = find(g(G_IMPORT), "import fastsoftmax")
    import_s = imp.info.get("import_seconds") if imp else None
    default_cold = find(g(G_FIRST_DEFAULT), "cold numba cache")
    numba_cold = find(g(G_FIRST_NUMBA), "cold numba cache")
    numba_warm = find(g(G_FIRST_NUMBA), "warm numba cache")
    default_s = default_cold.info.get("compile_seconds") if default_cold else None
    default_fit = default_cold.info.get("fit_first_call_seconds") if default_cold else None
    default_backend = default_cold.info.get("backend") if default_cold else "n/a"
    cold_s = numba_cold.info.get("compile_seconds") if numba_cold else None
    warm_s = numba_warm.info.get("compile_seconds") if numba_warm else None
    rows.append(
        (
            "6. import < 0.3 s; default backend: no JIT on first call; numba cached on disk",
            f"import {fmt_time(import_s)}; default backend ({default_backend}) with an empty "
            f"numba cache: load + first call of every kernel {fmt_time(default_s)}, first "
            f"SoftmaxRegression.fit (tiny data) {fmt_time(default_fit)}; numba kernels: cold "
            f"compile {fmt_time(cold_s)}, warm (from the disk cache) {fmt_time(warm_s)}",
            _all(
                _check(import_s, 0.3, below=True),
                # "no JIT": first calls well under a second even with an empty numba cache
                _check(default_s, 1.0, below=True),
                _check(default_fit, 1.0, below=True) if default_cold else None,
                _check(warm_s, cold_s / 5 if cold_s else None, below=True)
                if cold_s and warm_s
                else None,
            ),
        )
    )
    return rows


def _speedup_row(label, entries, others, peak=None):
    """Target row "the fastest fastsoftmax entry is at least k times faster than each other".

    ``others``: (impl, name in the text, k) triples; ``peak``: the machine's
    measured sgemm GFLOP/s, to put the best entry's rate in proportion.
    """
    best = best_fastsoftmax(entries)
    parts, checks = [], []
    for impl, name, threshold in others:
        ratio = _ratio(find(entries, impl), best)
        parts.append(f"{fmt_ratio(ratio)} {name}")
        checks.append(_check(ratio, threshold))
    flops = f", {best.gflops:.0f} GFLOP/s" if best and best.gflops else ""
    if flops and peak:
        flops += f" ({best.gflops / peak:.0%} of sgemm's {peak:.0f})"
    return label, f"{_who(best)}{flops}: {', '.join(parts)}", _all(*checks)


def _all(*checks):
    if any(c is None for c in checks):
        return None
    return all(checks)


def status(met):
    return {True: "met", False: "NOT met", None: "n/a (not measured)"}[met]


def targets_table(runs):
    """Markdown table of the targets, one figure column per run."""
    per_run = [targets(groups) for _, groups, _ in runs]
    header = "| target | " + " | ".join(f"run {i + 1}" for i in range(len(runs))) + " |"
    lines = [header, "|---|" + "---|" * len(runs)]
    for i, (label, _, _) in enumerate(per_run[0]):
        cells = [f"{rows[i][1]} — **{status(rows[i][2])}**" for rows in per_run]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- machine


def machine_lines(run):
    info = run.get("machine_info", {})
    cpu = info.get("cpu", {})
    extra = info.get("fastsoftmax", {})
    lines = [
        f"- date: {run.get('datetime', 'n/a')}",
        f"- commit: {run.get('commit_info', {}).get('id', 'n/a')}"
        f"{' (dirty tree)' if run.get('commit_info', {}).get('dirty') else ''}",
        f"- CPU: {extra.get('cpu_model') or cpu.get('brand_raw', 'n/a')}, "
        f"{extra.get('cores', cpu.get('count', 'n/a'))} cores",
        f"- Python {info.get('python_version', 'n/a')}",
    ]
    for key in ("backends", "default_backend", "versions", "blas", "loadavg_start", "loadavg_end"):
        if key in extra:
            lines.append(f"- {key}: {extra[key]}")
    return lines


# --------------------------------------------------------------------------- chart


def plot(groups, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"fastsoftmax": "#1f77b4", "peer": "#ff7f0e", "floor": "#7f7f7f", "other": "#2ca02c"}
    names = [name for name, entries in groups.items() if len(entries) > 1]
    ncols = 3
    nrows = math.ceil(len(names) / ncols)
    rows = [names[r * ncols : (r + 1) * ncols] for r in range(nrows)]
    heights = [max(len(groups[n]) for n in row) for row in rows]
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(6 * ncols, sum(0.35 * h + 1.2 for h in heights)),
        gridspec_kw={"height_ratios": [h + 2 for h in heights]},
        squeeze=False,
    )
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        entries = groups[name]
        ref = reference(entries)
        scale, unit = _unit(max(e.median for e in entries))
        y = range(len(entries))
        ax.barh(
            y,
            [e.median * scale for e in entries],
            color=[colors.get(e.kind, colors["other"]) for e in entries],
        )
        ax.set_yticks(list(y), [e.impl for e in entries], fontsize=8)
        ax.invert_yaxis()  # fastest on top
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"median time ({unit})", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        for i, e in enumerate(entries):
            label = f" {e.median * scale:.3g}"
            if ref:
                label += f" ({_short_ratio(ref.median / e.median)} numpy)"
            ax.text(e.median * scale, i, label, va="center", fontsize=7)
        low, high = (f(e.median for e in entries) * scale for f in (min, max))
        if high > 30 * low:
            # e.g. the pure-Python backend next to compiled code: a linear axis hides the rest
            ax.set_xscale("log")
            ax.set_xlim(low / 2, high * 30)
            ax.set_xlabel(f"median time ({unit}, log scale)", fontsize=8)
        else:
            ax.set_xlim(0, high * 1.6)
    kinds = [k for k in colors if any(e.kind == k for n in names for e in groups[n])]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[k]) for k in kinds]
    fig.legend(handles, kinds, loc="upper right", fontsize=8)
    fig.suptitle("fastsoftmax benchmarks: median time per call (shorter is faster)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _short_ratio(x):
    return f"{x:.0f}x" if x >= 10 else f"{x:.2g}x"


def _unit(seconds):
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "µs"


# --------------------------------------------------------------------------- main


def render(runs):
    path, groups, run = runs[0]
    parts = [
        "# fastsoftmax benchmark report",
        "",
        f"From `{path}`"
        + (f" (targets also from {len(runs) - 1} more runs)" if len(runs) > 1 else "")
        + ".",
        "",
        *machine_lines(run),
        "",
        "Medians over the rounds shown. `numpy / this` > 1: faster than the numpy backend; "
        "`this / best fastsoftmax`: how many times longer than the fastest fastsoftmax backend "
        "of the group.",
        "",
        "## Targets of issue 5",
        "",
        targets_table(runs),
        "## Groups",
        "",
    ]
    parts += [group_table(name, groups[name]) for name in sorted(groups)]
    return "\n".join(parts)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON file(s) (--benchmark-json)")
    parser.add_argument("-o", "--output", help="markdown file to write (default: stdout)")
    parser.add_argument("--png", help="bar chart to write (default: next to --output)")
    args = parser.parse_args(argv)

    runs = []
    for path in args.json:
        run, groups = load(path)
        runs.append((path, groups, run))
    markdown = render(runs)
    if args.output:
        Path(args.output).write_text(markdown)
    else:
        sys.stdout.write(markdown)
    png = args.png or (str(Path(args.output).with_suffix(".png")) if args.output else None)
    if png:
        plot(runs[0][1], png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
