"""The register tiles of the numba backend's fused kernels, generated from their shape.

numba does not unroll loops into registers, so a tile is straight-line code
with one named variable per accumulator (an explicit SIMD vector, see
"Explicit SIMD vectors" in :mod:`fastsoftmax._backends.numba`).  Instead of
near-copies written out per shape, :func:`logits_tile_source` and
:func:`grad_tile_source` write that code for a shape and :func:`build_tiles`
compiles it.  The generated functions are attributed to this file, so
numba's on-disk cache finds them (and is renewed when this file changes;
the kernels that call them are renewed through :data:`DIGEST`).

The shapes follow ``src_cython/fs_gemm_impl.h``: the classes go in groups of
10 (float32: 2 rows of logits, or 2 vectors of features of the gradient, per
tile), then 5 (4 rows or 4 vectors), then single classes (4 rows or 4
vectors); about 20 accumulators each, of the 32 vector registers of
AVX-512.  float64 weights of 10 classes no longer fit in L1, so float64
starts with groups of 5.

:class:`TilePlan` names the groups that a class count uses.  The kernels
take it as an argument whose numba type carries the groups, so each class
count compiles only its own tiles (issue 13: the cold compile of a default
fit), and the compiled kernels stay cached on disk per plan.
"""

from __future__ import annotations

import hashlib

from numba import types
from numba.extending import NativeValue, models, register_model, typeof_impl, unbox

#: Class groups of the tiles, largest first, by the itemsize of the weights.
CLASS_GROUPS = {4: (10, 5, 1), 8: (5, 1)}

#: Rows of X per logits tile, and vectors of features per gradient tile, of a class group.
ROWS_OF_GROUP = {10: 2, 5: 4, 1: 4}


class TilePlan:
    """The class groups of the tiles for ``n_classes`` weights of ``itemsize`` bytes.

    The fused kernels cover the classes with as many tiles of the largest
    group as fit, then of the next: ``groups`` holds the groups that are used
    (e.g. ``(10,)`` for 10 float32 classes, ``(10, 1)`` for 13, ``(1,)`` for 3).
    """

    __slots__ = ("groups",)

    def __init__(self, n_classes, itemsize):
        groups, rest = [], n_classes
        for group in CLASS_GROUPS.get(itemsize, CLASS_GROUPS[8]):
            if rest >= group:
                groups.append(group)
                rest %= group
        self.groups = tuple(groups)

    def __repr__(self):
        return f"TilePlan(groups={self.groups})"


class TilePlanType(types.Type):
    """numba type of a :class:`TilePlan`: the groups, known when compiling (no runtime value).

    Its name holds :data:`DIGEST`: the disk cache of a kernel is keyed by its
    signature (and by its own file), so a kernel built with other tiles is
    never loaded after this file changes.
    """

    def __init__(self, groups):
        self.groups = groups
        super().__init__(name=f"fastsoftmax.TilePlan{groups}@{DIGEST}")


@typeof_impl.register(TilePlan)
def _typeof_tile_plan(plan, c):
    return TilePlanType(plan.groups)


register_model(TilePlanType)(models.OpaqueModel)


@unbox(TilePlanType)
def _unbox_tile_plan(typ, obj, c):
    return NativeValue(c.context.get_dummy_value())


def _lines(*lines, indent=1):
    return "".join("    " * indent + line + "\n" for line in lines)


def logits_tile_source(rows, classes):
    """Source of ``_logits_tile_{rows}x{classes}(A, ri, i, WT, b, c, Z, P, p)``.

    It sets ``Z[c + k, i + q] = A[ri[i + q]] . WT[c + k] + b[c + k]`` for
    ``q < rows``, ``k < classes``, but the last ``d % lanes`` features
    (``_logits_tail``), and prefetches the row ``p`` of ``P``.
    """
    acc = [[f"a{q}_{k}" for k in range(classes)] for q in range(rows)]
    code = f"def _logits_tile_{rows}x{classes}(A, ri, i, WT, b, c, Z, P, p):\n"
    code += _lines(
        f'"""Z[c + k, i + q] = A[ri[i + q]] . WT[c + k] + b[c + k], q < {rows}, k < {classes}."""',
        "d = A.shape[1]",
        "V = _vlanes(WT)",
        "zero = _vsplat(WT.dtype.type(0))",
        *(f"r{q} = ri[i + {q}]" for q in range(rows)),
        *(" = ".join(acc[q]) + " = zero" for q in range(rows)),
        "for j in range(0, d - d % V, V):",
    )
    loads = (f"x{q} = _vload_as(A, r{q}, j, WT)" for q in range(rows))
    code += _lines("_vprefetch(P, p, j)", *loads, indent=2)
    for k in range(classes):
        fmas = (f"{acc[q][k]} = _vfma(x{q}, w, {acc[q][k]})" for q in range(rows))
        code += _lines(f"w = _vload(WT, c + {k}, j)", *fmas, indent=2)
    for k in range(classes):
        code += _lines(*(f"Z[c + {k}, i + {q}] = _vsum({acc[q][k]}) + b[c + {k}]"
                         for q in range(rows)))  # fmt: skip
    return code


def grad_tile_source(vectors, classes):
    """Source of ``_grad_tile_{vectors}x{classes}(A, ri, m, Z, c, G, j, P, pn)``.

    It adds ``sum_(i < m) Z[c + k, i] A[ri[i], j:j + vectors V]`` to
    ``G[c + k, j:j + vectors V]`` for ``k < classes`` (``V`` lanes) and
    prefetches the same features of the rows ``pn[:m]`` of ``P``.
    """
    acc = [[f"g{k}_{v}" for v in range(vectors)] for k in range(classes)]
    offset = [f"j + {v} * V" for v in range(vectors)]
    code = f"def _grad_tile_{vectors}x{classes}(A, ri, m, Z, c, G, j, P, pn):\n"
    code += _lines(
        f'"""G[c + k, j:j + {vectors} V] += sum_(i < m) Z[c + k, i] A[ri[i], j:j + {vectors} V],'
        f' k < {classes}."""',
        "V = _vlanes(G)",
        *(f"{acc[k][v]} = _vload(G, c + {k}, {offset[v]})"
          for k in range(classes) for v in range(vectors)),
        "for i in range(m):",
    )  # fmt: skip
    code += _lines(
        "r = ri[i]",
        "p = pn[i]",
        *(f"_vprefetch(P, p, {offset[v]})" for v in range(vectors)),
        *(f"x{v} = _vload_as(A, r, {offset[v]}, G)" for v in range(vectors)),
        indent=2,
    )
    for k in range(classes):
        fmas = (f"{acc[k][v]} = _vfma(x{v}, z, {acc[k][v]})" for v in range(vectors))
        code += _lines(f"z = _vsplat(Z[c + {k}, i])", *fmas, indent=2)
    code += _lines(*(f"_vstore(G, c + {k}, {offset[v]}, {acc[k][v]})"
                     for k in range(classes) for v in range(vectors)))  # fmt: skip
    return code


#: The source of the (logits, gradient) tiles of each class group.
SOURCES = {group: (logits_tile_source(rows, group), grad_tile_source(rows, group))
           for group, rows in ROWS_OF_GROUP.items()}  # fmt: skip
#: A digest of the tiles and their groups (see :class:`TilePlanType`).
DIGEST = hashlib.sha256(repr((SOURCES, CLASS_GROUPS)).encode()).hexdigest()[:12]


def build_tiles(namespace, jit):
    """Compile the tiles of every class group with ``jit``; their globals are ``namespace``.

    ``namespace`` holds the vector intrinsics the tiles call (the globals of
    :mod:`fastsoftmax._backends.numba`).  Returns ``(logits, grad)``: dicts
    from a class group to its tile functions (numba compiles a tile on its
    first call, so a plan that does not use a group never compiles it).
    """
    logits, grad = {}, {}
    for group, sources in SOURCES.items():
        for tiles, source in zip((logits, grad), sources):
            defined = {}
            exec(compile(source, __file__, "exec"), namespace, defined)  # noqa: S102
            (function,) = defined.values()
            tiles[group] = jit(function)
    return logits, grad
