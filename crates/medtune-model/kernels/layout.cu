// Copy of a strided 4-D tensor into a contiguous one, e.g. the [B, H, T, D] <-> [B, T, H, D]
// transposes around attention. Dtype-blind: the copy moves units U of 16, 8, 4 or 2 bytes (the
// host picks the widest unit that divides the last dimension's bytes, the strides and the
// start offset), so that one thread moves up to 8 bf16 values in one load and one store.
//
// x has dims (n0, n1, n2, n3) in units, strides (s0, s1, s2, 1) in units; y is contiguous.
// n (= n0 n1 n2 n3) is below 2^32, so the index arithmetic is 32-bit.
#include <stdint.h>

template <typename U>
__device__ void copy4(const U* x, U* y, unsigned n, unsigned n1, unsigned n2, unsigned n3,
                      unsigned long long s0, unsigned long long s1, unsigned long long s2) {
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned e = i % n3, r = i / n3;
        unsigned c = r % n2;
        r /= n2;
        unsigned b = r % n1, a = r / n1;
        y[i] = x[a * s0 + b * s1 + c * s2 + e];
    }
}

#define EXPORT(U, S)                                                                            \
    extern "C" __global__ void copy4_##S(const U* x, U* y, unsigned n, unsigned n1, unsigned n2, \
                                         unsigned n3, unsigned long long s0,                    \
                                         unsigned long long s1, unsigned long long s2) {        \
        copy4<U>(x, y, n, n1, n2, n3, s0, s1, s2);                                              \
    }
EXPORT(uint4, b16)
EXPORT(uint2, b8)
EXPORT(unsigned int, b4)
EXPORT(unsigned short, b2)
