// Attention softmax: p = softmax(scores * scale + bias) over the last dimension S, and its
// gradient with respect to the raw scores. One block per row; rows = B * H * T; any power of two
// from 32 to 1024 threads (the host picks about one per CHUNK keys, at most 128).
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
