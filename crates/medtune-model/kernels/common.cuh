// Shared helpers of medtune's fused kernels: dtype conversion and block reductions.
// Every kernel is written once as a template over the element type and exported as
// `<name>_f32` and `<name>_bf16`; arithmetic is always in f32.
#pragma once
#include <cuda_bf16.h>
#include <stdint.h>

typedef __nv_bfloat16 bf16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T> __device__ __forceinline__ T from_f(float x);
template <> __device__ __forceinline__ float from_f<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

// 16 bytes at p (16-byte aligned): a pack of 16 / sizeof(T) values, read through a T pointer.
template <typename T> __device__ __forceinline__ uint4 load16(const T* p) {
    return *reinterpret_cast<const uint4*>(p);
}
template <typename T> __device__ __forceinline__ void store16(T* p, uint4 v) {
    *reinterpret_cast<uint4*>(p) = v;
}

// Rounds through T (identity for f32): mirrors "compute in f32, store in the model dtype".
template <typename T> __device__ __forceinline__ float round_to(float x) { return to_f(from_f<T>(x)); }

// Reductions over a warp and over a block, for a sum or a max (Op: identity and combine).
struct SumOp {
    static constexpr float identity = 0.f;
    __device__ static float combine(float a, float b) { return a + b; }
};
struct MaxOp {
    static constexpr float identity = -INFINITY;
    __device__ static float combine(float a, float b) { return fmaxf(a, b); }
};

template <typename Op> __device__ __forceinline__ float warp_reduce(float v) {
    for (int o = 16; o > 0; o >>= 1) v = Op::combine(v, __shfl_xor_sync(0xffffffff, v, o));
    return v;
}

// Over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <typename Op> __device__ __forceinline__ float block_reduce(float v) {
    __shared__ float partial[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_reduce<Op>(v);
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float s = lane < (int)(blockDim.x >> 5) ? partial[lane] : Op::identity;
        s = warp_reduce<Op>(s);
        if (lane == 0) total = s;
    }
    __syncthreads();
    return total;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce<SumOp>(v); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce<MaxOp>(v); }
__device__ __forceinline__ float block_sum(float v) { return block_reduce<SumOp>(v); }
__device__ __forceinline__ float block_max(float v) { return block_reduce<MaxOp>(v); }
