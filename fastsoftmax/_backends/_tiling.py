"""Regime choice of the dense ``softmax_ce_sums`` kernels: single pass or class tiles.

With few classes a block of rows' logits (rows x C) fits in L2 and the kernels
make one pass: logits, softmax, residual and gradient of the block at once.
With many classes that block no longer fits (and materialising all n x C
logits costs gigabytes), so the kernels switch to the *tiled* regime: for each
block of rows,

* pass A runs over tiles of ``class_tile`` classes, computing each logit tile
  and keeping only, per row, the tile's maximum and sum of exponentials (and
  the label's logit): their combination is the row's log-sum-exp, hence the
  loss;
* pass B recomputes each logit tile, forms ``s (softmax - onehot)`` and
  accumulates the tile's gradient rows.  A (row, tile) pair whose largest
  softmax entry is below :func:`skip_threshold` and which does not hold the
  row's label is skipped (``skip_negligible=True``, the default): its residual
  counts as zero.

Extra memory is O(rows per block x (class tile + tiles)), independent of n;
the compiled kernel also keeps a block's logits from pass A to pass B instead
of recomputing them when they fit in :data:`STORED_LOGITS_BYTES` (40 MB, e.g.
192 rows x 50,000 float32 classes), which is still independent of n (it
keeps them as ``exp(z - tile max)``, so that pass B's residual is a product);
beyond that, those of as many tiles as fit (:func:`stored_tiles`).
The loss is never affected by the skipping of pass B (pass A is exact); each
skipped entry ``s_i p_ic`` is below ``s_i * eps``, so every gradient entry moves by
at most ``eps * sum_i s_i |x_ij|`` (``eps * sum_i s_i`` for the intercept).

Where the CPU has the AMX bfloat16 tiles, the compiled float32 kernel also
*screens* pass A when skipping (:func:`screen_pass_a`, ``fs_tile_screen.h``):
a bfloat16 product bounds every logit of a (row, tile) from above and below,
exactly (rounding and Cauchy-Schwarz), and pass A computes in float32 only the
rows of a tile whose upper bound reaches ``log(eps / C)`` above a lower bound
of the row's log-sum-exp (and the rows whose label is in the tile).  The rows
left out have every ``p_ic < eps / C``: together less than ``eps`` of the
row's sum of exponentials, so each row's log-sum-exp, hence its loss, is
within ``eps`` (``s_i eps`` weighted) below the exact one, and pass B skips
them (the gradient bound above holds with ``eps (1 + eps)``).

Tests force either regime and small tiles with :func:`forced`.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

# Bytes of X per block of rows of the compiled fused kernels: the block stays in L2
# between the forward and the backward product.
BLOCK_BYTES = 1 << 17
# A block of rows' logits larger than this goes to the tiled regime (L2 is 2 MB a core here).
SINGLE_PASS_LOGITS_BYTES = 1 << 20
# Bytes of one tile of weights (class_tile x d) of the compiled kernels.
TILE_WEIGHT_BYTES = 1 << 18
# The compiled tiled kernel keeps a block of rows' logits from pass A to pass B
# (reading them back costs a tenth of recomputing them) when they take at most
# this much memory, in blocks of at least STORED_MIN_ROWS rows; else it recomputes.
STORED_LOGITS_BYTES = 40 << 20
STORED_MIN_ROWS = 96
# From this many classes the compiled tiled kernel, without skipping, is faster than the
# compiled single pass even where a block's logits fit in L2 (session 6, one thread, N = 8192:
# 1.3x at 200 classes x 256 float32 features, 2x at 1,000; equal at 200 x 784): the compiled
# backend then runs it for the single-pass regime too (compiled_tiles_for_single_pass).
COMPILED_TILED_MIN_CLASSES = 200
# CSR rows (plan_csr): rows per block of the compiled single pass (cython's _CSR_BLOCK), rows
# per block, bytes of a row's class tile and of a tile's weights of a block's columns
# in the tiled regime.
CSR_BLOCK_ROWS = 64
CSR_TILE_ROWS = 256
CSR_CLASS_TILE_BYTES = 1 << 12
CSR_TILE_WEIGHT_BYTES = 1 << 19

# The compiled float32 tiled kernel screens pass A when skipping (bfloat16 bounds on the
# AMX tiles, where the CPU has them: fs_tile_screen.h); False turns it off (A/B runs).
SCREEN_PASS_A = True

_forced = {"tiled": None, "class_tile": None, "row_block": None, "store_logits": None,
           "screen": None}  # fmt: skip


def skip_threshold(dtype):
    """The skipping bound: the machine epsilon of the float type (2**-23 for float32, 2**-52 for float64)."""
    return float(np.finfo(dtype).eps)


def screen_pass_a():
    """Whether the compiled tiled kernel may screen pass A when skipping (:data:`SCREEN_PASS_A`).

    ``forced(screen=...)`` decides; otherwise never while a test forces the regime
    (:func:`forced`), so that those tests keep checking the unscreened skipping, whose
    loss is exact.
    """
    if _forced["screen"] is not None:
        return bool(_forced["screen"])
    return SCREEN_PASS_A and _forced["tiled"] is None


def log_skip_threshold(dtype):
    return math.log(skip_threshold(dtype))


def block_rows(d, itemsize):
    """Rows per block of the compiled fused kernels (a multiple of 4, 4..512)."""
    return max(4, min(512, BLOCK_BYTES // max(1, d * itemsize)) // 4 * 4)


def plan(d, C, itemsize, x_itemsize=None, rows=None, class_tile=None):
    """``(tiled, rows per block, classes per tile)`` for a pass over rows of ``d`` features.

    ``itemsize`` is that of the weights and logits, ``x_itemsize`` that of X
    (default: the same).  ``rows`` and ``class_tile`` are the backend's
    defaults (None: those of the compiled kernels); :func:`forced` overrides
    all three.
    """
    compiled_rows = block_rows(d, x_itemsize or itemsize)
    rows = compiled_rows if rows is None else rows
    if class_tile is None:  # a multiple of the 8 and 5 classes of the compiled register blocks
        class_tile = max(40, TILE_WEIGHT_BYTES // max(1, d * itemsize) // 40 * 40)
    tiled = compiled_rows * C * itemsize > SINGLE_PASS_LOGITS_BYTES
    return _with_forced(tiled, rows, class_tile, C)


def compiled_tiles_for_single_pass(C, class_tile, threads):
    """Whether the compiled backend computes the single-pass regime with its tiled kernel.

    The regime (hence the skipping) stays that of :func:`plan`, the same in
    every backend; this only picks the compiled implementation of the exact
    single pass: the tiled kernel, without skipping, from
    :data:`COMPILED_TILED_MIN_CLASSES` classes when its threads (which own
    class tiles) get at least 4 tiles each.  Never while a test forces the
    regime (:func:`forced`), so that forcing the single pass still runs the
    single-pass kernel.
    """
    if _forced["tiled"] is not None or C < COMPILED_TILED_MIN_CLASSES:
        return False
    return threads == 1 or -(-C // class_tile) >= 4 * threads


def plan_csr(C, itemsize, indptr=None, d=None, rows=None, class_tile=None):
    """``(tiled, rows per block, classes per tile)`` for a pass over CSR rows (``softmax_ce_sums_csr``).

    The compiled CSR pass holds the logits of a block of :data:`CSR_BLOCK_ROWS`
    rows (all classes, class-major); the tiled regime starts where those stop
    fitting in L2 as for dense rows (4,096 float32 classes).  Its blocks have
    :data:`CSR_TILE_ROWS` rows and its class tiles at most
    :data:`CSR_CLASS_TILE_BYTES` per row; given the matrix's ``indptr`` and
    its ``d`` columns, fewer, so that the tile's weights of the columns a
    block may touch (``min(d, rows x mean entries per row)``) take at most
    :data:`CSR_TILE_WEIGHT_BYTES` (they stay in L2 across the block).
    ``rows``/``class_tile`` are the backend's own defaults, :func:`forced`
    overrides all three.
    """
    tiled = CSR_BLOCK_ROWS * C * itemsize > SINGLE_PASS_LOGITS_BYTES
    rows = CSR_TILE_ROWS if rows is None else rows
    if class_tile is None:
        class_tile = max(16, CSR_CLASS_TILE_BYTES // itemsize)
        if indptr is not None and d:
            n = max(1, indptr.shape[0] - 1)
            per_row = -(-int(indptr[-1] - indptr[0]) // n)
            columns = max(1, min(d, rows * per_row))
            class_tile = min(class_tile, max(64, CSR_TILE_WEIGHT_BYTES // (columns * itemsize) // 16 * 16))
    return _with_forced(tiled, rows, class_tile, C)


def _with_forced(tiled, rows, class_tile, C):
    if _forced["tiled"] is not None:
        tiled = _forced["tiled"]
    rows = _forced["row_block"] or rows
    class_tile = _forced["class_tile"] or class_tile
    return tiled, int(rows), int(max(1, min(class_tile, max(C, 1))))


def stored_rows(rows, C, itemsize):
    """Rows per block for which the compiled tiled kernel keeps the logits of all tiles, or 0."""
    forced = _forced["store_logits"]
    if forced is not None:
        return rows if forced is True else 0
    fitting = min(rows, STORED_LOGITS_BYTES // max(1, C * itemsize) // 48 * 48)
    return fitting if fitting >= STORED_MIN_ROWS else 0


def stored_tiles(rows, C, class_tile, itemsize):
    """How many tiles (the first ones) keep their logits when not all do (:func:`stored_rows` 0).

    Blocks of ``rows`` rows; the kept logits take at most :data:`STORED_LOGITS_BYTES`
    (e.g. 227 tiles of 240 classes x 192 rows at C = 256,000 float32: a fifth of the
    classes), pass B recomputes the others' logits.  ``forced(store_logits=k)`` with an
    integer k keeps k tiles.
    """
    ntiles = -(-C // max(1, class_tile))
    forced = _forced["store_logits"]
    if forced is not None:
        return ntiles if forced is True else min(ntiles, int(forced))
    padded = -(-rows // 16) * 16
    return min(ntiles, STORED_LOGITS_BYTES // max(1, class_tile * padded * itemsize))


@contextlib.contextmanager
def forced(tiled=True, class_tile=None, row_block=None, store_logits=None, screen=None):
    """Force the regime (``tiled`` True/False, None: automatic), the class tile and the row block
    (and whether the compiled tiled kernel keeps a block's logits or recomputes them:
    ``store_logits`` True, False, or the number of tiles, the first ones, that keep them;
    and whether it screens pass A when skipping: ``screen`` True, False, None: automatic).

    For tests: small shapes then run the tiled code with tile tails.  Not
    thread-safe (a module-level setting).
    """
    saved = dict(_forced)
    _forced.update(tiled=tiled, class_tile=class_tile, row_block=row_block,
                   store_logits=store_logits, screen=screen)  # fmt: skip
    try:
        yield
    finally:
        _forced.update(saved)
