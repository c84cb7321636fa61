// Weighted cross-entropy per row of logits [N, V] (f32 or bf16) against u32 targets [N], and its
// gradient with respect to the logits. One block per row (a power of two from 32 to 1024
// threads), strided loops over V (128k for Llama 3): one pass for the online max and sum of
// exponentials, one for the output (helpers in online_softmax.cuh).
//
// Forward: loss[i] = w[i] * (logsumexp(x[i]) - x[i, t[i]]), f32; rows with w = 0 give 0 without
// reading the logits, an out-of-range target gives NaN (the host validates labels first).
// Backward: dx[i, j] = gw[i] * (softmax(x[i])_j - [j == t[i]]) with gw = dloss * w; rows with
// gw = 0 are skipped, so dx must be zero-initialised.
#include "online_softmax.cuh"

template <typename T>
__device__ void ce_fwd(const T* logits, const uint32_t* targets, const float* weights, float* loss,
                       int v) {
    size_t row = blockIdx.x;
    float w = weights[row];
    if (w == 0.f) {  // uniform over the block: no thread reaches a barrier
        if (threadIdx.x == 0) loss[row] = 0.f;
        return;
    }
    const T* x = logits + row * v;
    float m, s;
    online_row(v, [&](int i) { return to_f(x[i]); }, m, s);
    block_online(m, s);
    if (threadIdx.x == 0) {
        uint32_t t = targets[row];
        float lse = logf(s) + m;
        loss[row] = t < (uint32_t)v ? (lse - to_f(x[t])) * w : NAN;
    }
}

template <typename T>
__device__ void ce_bwd(const T* logits, const uint32_t* targets, const float* gw, T* dx, int v) {
    size_t row = blockIdx.x;
    float g = gw[row];
    if (g == 0.f) return;  // uniform over the block; dx is already zero
    const T* x = logits + row * v;
    T* d = dx + row * v;
    float m, s;
    online_row(v, [&](int i) { return to_f(x[i]); }, m, s);
    block_online(m, s);
    uint32_t t = targets[row];
    float c = g / s;
#pragma unroll 4
    for (int i = threadIdx.x; i < v; i += blockDim.x)
        d[i] = from_f<T>(c * expf(to_f(x[i]) - m) - ((uint32_t)i == t ? g : 0.f));
}

#define EXPORT(T, S)                                                                            \
    extern "C" __global__ void cross_entropy_fwd_##S(const T* logits, const uint32_t* targets,  \
                                                     const float* weights, float* loss, int v) { \
        ce_fwd<T>(logits, targets, weights, loss, v);                                           \
    }                                                                                           \
    extern "C" __global__ void cross_entropy_bwd_##S(const T* logits, const uint32_t* targets,  \
                                                     const float* gw, T* dx, int v) {           \
        ce_bwd<T>(logits, targets, gw, dx, v);                                                  \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
