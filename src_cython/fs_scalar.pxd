# Scalar element functions shared by the Cython kernel modules (inline, nogil),
# cimported with ``from fs_scalar cimport *``.  The same formulas as the
# _sigmoid and _bce of _cython_kernels.pyx, which can cimport them from here.
from libc.math cimport exp, expf, log1p, log1pf, fabs, fabsf

ctypedef fused floating:
    float
    double


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
