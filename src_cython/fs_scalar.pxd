# Scalar element functions shared by the Cython kernel modules (inline, nogil):
# the one definition of the scalar sigmoid and binary cross-entropy, cimported by
# _cython_kernels.pyx (dense) and _sparse_kernels.pyx (CSR), so that both paths give
# the same bits.  cdivision as in those modules' headers, which do not reach a .pxd:
# without it Cython checks the divisor, so ``1 + e`` is first stored (rounded to
# float32) and then divided in double, a double rounding 1 ulp off the dense result
# (float32 sigmoid(log 3) gave 0.75000006, not 0.75).
cimport cython
from libc.math cimport exp, expf, log1p, log1pf, fabs, fabsf

ctypedef fused floating:
    float
    double


@cython.cdivision(True)
cdef inline floating fs_sigmoid(floating x) noexcept nogil:
    # exp(-|x|) never overflows
    cdef floating e
    if floating is float:
        e = expf(-fabsf(x))
    else:
        e = exp(-fabs(x))
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


@cython.cdivision(True)
cdef inline floating fs_bce(floating z, floating y) noexcept nogil:
    # log(1 + exp(z)) - y z == (1 - y) z + log1p(exp(-z)) for z > 0, -y z +
    # log1p(exp(z)) otherwise; a zero coefficient gives 0 (not 0 * inf), so
    # z = +-inf gives the limit
    cdef floating coef = (1 - y) if z > 0 else -y
    cdef floating lin = coef * z if coef != 0 else 0
    if floating is float:
        return lin + log1pf(expf(-fabsf(z)))
    else:
        return lin + log1p(exp(-fabs(z)))
