// Inverted dropout with the counter-based mask of dropout_mask.rs: element i is kept when the
// keyed 4-round Feistel permutation of i (16-bit halves) is >= threshold; kept values are
// multiplied by `scale` (1/(1-p) rounded to the dtype, as the composed path does).
#include "common.cuh"

struct Keys { unsigned int m[4]; unsigned int c[4]; };

__device__ __forceinline__ unsigned int permute(unsigned int i, const Keys& k) {
    unsigned int l = i >> 16, r = i & 0xFFFF;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        unsigned int f = (r * r / 256 + r * k.m[j] + k.c[j]) & 0xFFFF;
        unsigned int nr = (l + f) & 0xFFFF;
        l = r;
        r = nr;
    }
    return (l << 16) | r;
}

template <typename T>
__device__ void dropout(const T* x, T* y, unsigned int n, Keys k, unsigned int threshold, float scale) {
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        bool keep = permute(i, k) >= threshold;
        y[i] = from_f<T>(keep ? to_f(x[i]) * scale : 0.f);
    }
}

// The same mask over 16-byte packs (x and y 16-byte aligned, checked by the host), then the
// n % pack tail one element per thread: the same values, with a pack's loads in flight at once.
template <typename T>
__device__ void dropout_vec(const T* x, T* y, unsigned int n, Keys k, unsigned int threshold,
                            float scale) {
    constexpr unsigned N = 16 / sizeof(T);
    unsigned int packs = n / N;
    unsigned int first = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (unsigned int p = first; p < packs; p += step) {
        uint4 xp = load16(x + p * N), yp;
        const T* xv = reinterpret_cast<const T*>(&xp);
        T* yv = reinterpret_cast<T*>(&yp);
#pragma unroll
        for (unsigned j = 0; j < N; j++) {
            bool keep = permute(p * N + j, k) >= threshold;
            yv[j] = from_f<T>(keep ? to_f(xv[j]) * scale : 0.f);
        }
        store16(y + p * N, yp);
    }
    for (unsigned int i = packs * N + first; i < n; i += step) {
        bool keep = permute(i, k) >= threshold;
        y[i] = from_f<T>(keep ? to_f(x[i]) * scale : 0.f);
    }
}

// Round keys as eight scalars (m0..m3, c0..c3): plain kernel arguments. V: empty or _vec.
#define EXPORT(T, S, V)                                                                        \
    extern "C" __global__ void dropout##V##_##S(                                               \
        const T* x, T* y, unsigned int n, unsigned int m0, unsigned int m1, unsigned int m2,   \
        unsigned int m3, unsigned int c0, unsigned int c1, unsigned int c2, unsigned int c3,   \
        unsigned int threshold, float scale) {                                                 \
        Keys k = {{m0, m1, m2, m3}, {c0, c1, c2, c3}};                                         \
        dropout##V<T>(x, y, n, k, threshold, scale);                                           \
    }
EXPORT(float, f32, )
EXPORT(bf16, bf16, )
EXPORT(float, f32, _vec)
EXPORT(bf16, bf16, _vec)
