// Attention softmax: p = softmax(scores * scale + bias) over the last dimension S, and its
// gradient with respect to the raw scores. Rows of at most 1024 keys (the usual case): one warp
// per row holding the row in registers (read once, written once; the _w<K> kernels, K = keys per
// lane rounded up to a power of two). Longer rows: one block per row, any power of two from 32
// to 1024 threads (the host picks about one per CHUNK keys, at most 128). rows = B * H * T.
//
// scores, p, dp, ds: [B, H, T, S] in T (f32 or bf16); bias: [Bb, 1, T, S] f32 with Bb = B or 1
// (bias_batched = 0 for Bb = 1). Row r is (b, h, t) with b = r / (H * T), t = r % T.
// The online max/sum helpers are in online_softmax.cuh; the CPU path of
// src/fused/attn_softmax.rs (`online_max_sum`) follows them step by step.
#include "online_softmax.cuh"

template <typename T>
__device__ void attn_fwd(const T* scores, const float* bias, T* p, int s_len, int heads, int t_len,
                         int bias_batched, float scale) {
    size_t row = blockIdx.x;
    size_t b = bias_batched ? row / ((size_t)heads * t_len) : 0;
    size_t t = row % t_len;
    const T* x = scores + row * s_len;
    const float* br = bias + (b * t_len + t) * s_len;
    T* y = p + row * s_len;
    float m, s;
    online_row(s_len, [&](int i) { return to_f(x[i]) * scale + br[i]; }, m, s);
    block_online(m, s);
#pragma unroll 4
    for (int i = threadIdx.x; i < s_len; i += blockDim.x)
        y[i] = from_f<T>(expf(to_f(x[i]) * scale + br[i] - m) / s);
}

// ds = scale * p * (dp - sum(dp * p)).
template <typename T>
__device__ void attn_bwd(const T* p, const T* dp, T* ds, int s_len, float scale) {
    size_t off = (size_t)blockIdx.x * s_len;
    float dot = 0.f;
#pragma unroll 4
    for (int i = threadIdx.x; i < s_len; i += blockDim.x) dot += to_f(dp[off + i]) * to_f(p[off + i]);
    dot = block_sum(dot);
#pragma unroll 4
    for (int i = threadIdx.x; i < s_len; i += blockDim.x)
        ds[off + i] = from_f<T>(scale * to_f(p[off + i]) * (to_f(dp[off + i]) - dot));
}

// One warp per row of at most 32 K keys; lane l holds keys l, l + 32, ... The row max is folded
// first, then each lane sums its exponentials in key order and the warp adds the lanes' sums
// (xor butterfly of warp_sum; `warp_max_sum` in src/fused/attn_softmax.rs mirrors this). Each
// exponential is computed once and kept; the output is e * (1 / sum).
template <typename T, int K>
__device__ void attn_fwd_warp(const T* scores, const float* bias, T* p, int s_len, int heads,
                              int t_len, int bias_batched, float scale, unsigned rows) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // the whole warp leaves together
    size_t b = bias_batched ? row / ((size_t)heads * t_len) : 0;
    size_t t = row % t_len;
    const T* x = scores + row * s_len;
    const float* br = bias + (b * t_len + t) * s_len;
    T* y = p + row * s_len;
    float v[K];
    float m = -INFINITY;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        v[k] = i < s_len ? to_f(x[i]) * scale + br[i] : -INFINITY;
        m = fmaxf(m, v[k]);
    }
    m = warp_max(m);
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        v[k] = v[k] == -INFINITY ? 0.f : expf(v[k] - m);
        s += v[k];
    }
    float inv = 1.f / warp_sum(s);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        if (i < s_len) y[i] = from_f<T>(v[k] * inv);
    }
}

template <typename T, int K>
__device__ void attn_bwd_warp(const T* p, const T* dp, T* ds, int s_len, float scale,
                              unsigned rows) {
    int lane = threadIdx.x & 31;
    size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    size_t off = row * s_len;
    float pv[K], gv[K];
    float dot = 0.f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        pv[k] = i < s_len ? to_f(p[off + i]) : 0.f;
        gv[k] = i < s_len ? to_f(dp[off + i]) : 0.f;
        dot += gv[k] * pv[k];
    }
    dot = warp_sum(dot);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        if (i < s_len) ds[off + i] = from_f<T>(scale * pv[k] * (gv[k] - dot));
    }
}

#define EXPORT_WARP(T, S, K)                                                                     \
    extern "C" __global__ void attn_softmax_fwd_w##K##_##S(const T* scores, const float* bias,   \
                                                           T* p, int s_len, int heads, int t_len, \
                                                           int bias_batched, float scale,        \
                                                           unsigned rows) {                      \
        attn_fwd_warp<T, K>(scores, bias, p, s_len, heads, t_len, bias_batched, scale, rows);    \
    }                                                                                            \
    extern "C" __global__ void attn_softmax_bwd_w##K##_##S(const T* p, const T* dp, T* ds,       \
                                                           int s_len, float scale,               \
                                                           unsigned rows) {                      \
        attn_bwd_warp<T, K>(p, dp, ds, s_len, scale, rows);                                      \
    }
#define EXPORT_WARPS(T, S)                                                                       \
    EXPORT_WARP(T, S, 1)                                                                         \
    EXPORT_WARP(T, S, 2)                                                                         \
    EXPORT_WARP(T, S, 4)                                                                         \
    EXPORT_WARP(T, S, 8)                                                                         \
    EXPORT_WARP(T, S, 16)                                                                        \
    EXPORT_WARP(T, S, 32)
EXPORT_WARPS(float, f32)
EXPORT_WARPS(bf16, bf16)

#define EXPORT(T, S)                                                                            \
    extern "C" __global__ void attn_softmax_fwd_##S(const T* scores, const float* bias, T* p,   \
                                                    int s_len, int heads, int t_len,            \
                                                    int bias_batched, float scale) {            \
        attn_fwd<T>(scores, bias, p, s_len, heads, t_len, bias_batched, scale);                 \
    }                                                                                           \
    extern "C" __global__ void attn_softmax_bwd_##S(const T* p, const T* dp, T* ds, int s_len,  \
                                                    float scale) {                              \
        attn_bwd<T>(p, dp, ds, s_len, scale);                                                   \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
