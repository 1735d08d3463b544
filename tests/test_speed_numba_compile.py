"""What the numba backend compiles (issue 13, target 6: the cold compile of a default fit).

The fused kernels take a ``TilePlan`` of the class count, whose numba type
carries the class groups of the register tiles: a class count compiles the
tiles of its own groups only, each once.
"""

import os
import subprocess
import sys

import pytest

numba = pytest.importorskip("numba")
from fastsoftmax._backends import _numba_tiles  # noqa: E402


def _groups_the_loops_use(n_classes, itemsize):
    # The class loops of the block functions with every group of the dtype
    # compiled: as many tiles of the largest group as fit, then of the next.
    used, c = [], 0
    for group in _numba_tiles.CLASS_GROUPS[itemsize]:
        while c + group <= n_classes:
            if group not in used:
                used.append(group)
            c += group
    assert c == n_classes
    return tuple(used)


@pytest.mark.parametrize("itemsize", [4, 8])
def test_a_plan_holds_the_groups_its_class_count_uses(itemsize):
    for n_classes in range(0, 64):
        plan = _numba_tiles.TilePlan(n_classes, itemsize)
        assert plan.groups == _groups_the_loops_use(n_classes, itemsize), n_classes
    assert _numba_tiles.TilePlan(10, 4).groups == (10,)
    assert _numba_tiles.TilePlan(10, 8).groups == (5,)
    assert _numba_tiles.TilePlan(3, 4).groups == (1,)


def test_generated_tiles_hold_one_accumulator_per_register():
    # straight-line code: rows x classes (logits) or vectors x classes (gradient) accumulators
    logits = _numba_tiles.logits_tile_source(2, 10)
    grad = _numba_tiles.grad_tile_source(4, 5)
    assert logits.startswith("def _logits_tile_2x10(") and grad.startswith("def _grad_tile_4x5(")
    assert logits.count("= _vfma(") == 20 and grad.count("= _vfma(") == 20
    assert "for k" not in logits and "for v" not in grad
    assert grad.count("_vstore(") == 20 and logits.count("_vsum(") == 20
    # the kernels' signatures name the tiles' digest: their disk cache renews with the tiles
    assert _numba_tiles.SOURCES[10][0] == logits and _numba_tiles.SOURCES[5][1] == grad
    assert numba.typeof(_numba_tiles.TilePlan(10, 4)).name.endswith("@" + _numba_tiles.DIGEST)


def test_a_class_count_compiles_only_its_tiles_and_each_once(tmp_path):
    # A fresh process and numba cache: 13 float32 classes are 10 + 3 x 1, so the
    # 2x10 and 4x1 tiles compile once each (a literal loop start used to compile
    # every tile a second time) and the 4x5 tiles not at all.  The fused pass
    # of one thread (the softmax_ce_sums and train_epoch kernels call it).
    code = (
        "import numpy as np; from fastsoftmax._backends import numba as nb;"
        "rng = np.random.default_rng(0); X = rng.standard_normal((9, 40)).astype(np.float32);"
        "W = rng.standard_normal((13, 40)).astype(np.float32); b = np.zeros(13, np.float32);"
        "y = rng.integers(0, 13, 9).astype(np.intp);"
        "Z, idx = np.empty((13, 67), np.float32), np.zeros((4, 67), np.intp);"
        "stats = np.empty((3, 64));"
        "nb._softmax_grad_range(X, X, False, y, False, 0, 9, W, b, y, b, False, np.zeros_like(W),"
        " np.zeros(13), Z, idx, stats, nb._numba_tiles.TilePlan(13, 4));"
        "print({f'{kind}{g}': len(tiles[g].signatures) for kind, tiles in"
        " (('logits', nb._LOGITS_TILES), ('grad', nb._GRAD_TILES)) for g in tiles})"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    compiled = eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 (our own output)
    assert compiled == {"logits10": 1, "logits5": 0, "logits1": 1,
                        "grad10": 1, "grad5": 0, "grad1": 1}  # fmt: skip
