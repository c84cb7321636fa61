// Online softmax statistics shared by the attention-softmax and cross-entropy kernels: a
// running (max, sum of exp) pair per thread, folded across the block.
#pragma once
#include "common.cuh"

// Elements each thread loads before folding them in: independent loads in flight (the row
// loops are bound by memory latency otherwise), one rescale of the running sum per chunk.
#define CHUNK 8

// Running (max m, sum s of exp(x - m)) over this thread's elements of a row of n: elements
// threadIdx.x + j * blockDim.x, folded in chunks of CHUNK consecutive j.
template <typename F>
__device__ __forceinline__ void online_row(int n, F x, float& m, float& s) {
    m = -INFINITY;
    s = 0.f;
    for (int base = threadIdx.x; base < n; base += CHUNK * blockDim.x) {
        float v[CHUNK];
        float cm = -INFINITY;
#pragma unroll
        for (int k = 0; k < CHUNK; k++) {
            int i = base + k * blockDim.x;
            v[k] = i < n ? x(i) : -INFINITY;
            cm = fmaxf(cm, v[k]);
        }
        float nm = fmaxf(m, cm);
        float cs = 0.f;
#pragma unroll
        for (int k = 0; k < CHUNK; k++) cs += v[k] == -INFINITY ? 0.f : expf(v[k] - nm);
        s = (m == -INFINITY ? 0.f : s * expf(m - nm)) + cs;
        m = nm;
    }
}

// Block-wide (max, sum of exp(x - max)) from every thread's running pair.
__device__ __forceinline__ void block_online(float& m, float& s) {
    float mt = block_max(m);
    s = block_sum(m == -INFINITY ? 0.f : s * expf(m - mt));
    m = mt;
}
