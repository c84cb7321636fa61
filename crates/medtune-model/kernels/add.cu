// y = a + b over n contiguous values (the residual adds of the hand-written layer path), each sum
// computed in f32 and rounded once to T. 16-byte packs (a, b and y 16-byte aligned, checked by
// the host), then the n % pack tail one value per thread; grid-stride.
#include "common.cuh"

template <typename T>
__device__ void add(const T* a, const T* b, T* y, unsigned long long n) {
    constexpr unsigned N = 16 / sizeof(T);
    size_t packs = n / N;
    size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x, step = (size_t)gridDim.x * blockDim.x;
    for (size_t i = first; i < packs; i += step) {
        uint4 ap = load16(a + i * N), bp = load16(b + i * N), yp;
        const T* av = reinterpret_cast<const T*>(&ap);
        const T* bv = reinterpret_cast<const T*>(&bp);
        T* yv = reinterpret_cast<T*>(&yp);
#pragma unroll
        for (unsigned k = 0; k < N; k++) yv[k] = from_f<T>(to_f(av[k]) + to_f(bv[k]));
        store16(y + i * N, yp);
    }
    for (size_t i = packs * N + first; i < n; i += step) y[i] = from_f<T>(to_f(a[i]) + to_f(b[i]));
}

#define EXPORT(T, S)                                                                        \
    extern "C" __global__ void add_##S(const T* a, const T* b, T* y, unsigned long long n) { \
        add<T>(a, b, y, n);                                                                 \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
