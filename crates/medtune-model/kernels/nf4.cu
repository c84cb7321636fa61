// NF4 dequantization (bitsandbytes layout, see src/nf4.rs): element i of the weight is
// code[nibble(i)] * absmax[i / 64], computed in f32 and rounded to the output dtype once.
// packed holds two codes per byte, the FIRST element in the HIGH nibble.
//
// absmax is either stored (f32 [nb]) or double-quantized:
//   absmax[j] = state2_code[absmax_q[j]] * state2_absmax[j / 256] + offset
// as two separately rounded f32 operations (no fused multiply-add), exactly like the composed
// path (broadcast_mul, then affine), so that the result is bit-identical to it.
//
#include "common.cuh"

#define NF4_BLOCK 64
#define DQ_BLOCK 256

__device__ __forceinline__ float dq_absmax(const uint8_t* absmax_q, const float* state2_absmax,
                                           const float* state2_code, float offset, size_t j) {
    return __fadd_rn(__fmul_rn(state2_code[absmax_q[j]], state2_absmax[j / DQ_BLOCK]), offset);
}

// DQ selects the absmax source: false reads `absmax`, true decodes absmax_q/state2_*.
template <bool DQ>
__device__ __forceinline__ float block_absmax(const float* absmax, const uint8_t* absmax_q,
                                              const float* state2_absmax,
                                              const float* state2_code, float offset, size_t j) {
    return DQ ? dq_absmax(absmax_q, state2_absmax, state2_code, offset, j) : absmax[j];
}

// Main loop: each thread takes 8 packed bytes (16 outputs, all in one 64-element block: a
// block is 32 bytes) with one 8-byte load and 16-byte stores; the absmax is decoded once per
// 16 outputs. Then the remaining bytes one by one. `packed` must be 8-byte aligned for the
// vector loop (checked; otherwise every byte takes the scalar path).
template <typename T, bool DQ>
__device__ void nf4_dequant(const uint8_t* packed, const float* code, const float* absmax,
                            const uint8_t* absmax_q, const float* state2_absmax,
                            const float* state2_code, float offset, T* out, size_t n) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    size_t n_bytes = (n + 1) / 2;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t n_vec = ((reinterpret_cast<uintptr_t>(packed) & 7) == 0) ? n / 16 : 0;
    for (size_t v = tid; v < n_vec; v += stride) {
        uint2 raw = reinterpret_cast<const uint2*>(packed)[v];
        float a = block_absmax<DQ>(absmax, absmax_q, state2_absmax, state2_code, offset, v / 4);
        __align__(16) T vals[16];
#pragma unroll
        for (int k = 0; k < 8; k++) {
            uint8_t b = (uint8_t)(((k < 4 ? raw.x : raw.y) >> (8 * (k & 3))) & 0xFF);
            vals[2 * k] = from_f<T>(__fmul_rn(table[b >> 4], a));
            vals[2 * k + 1] = from_f<T>(__fmul_rn(table[b & 15], a));
        }
        // out is a fresh allocation: element 16v starts a 16-byte aligned run.
        const uint4* src = reinterpret_cast<const uint4*>(vals);
        uint4* dst = reinterpret_cast<uint4*>(out + 16 * v);
#pragma unroll
        for (int k = 0; k < (int)sizeof(T); k++) dst[k] = src[k];
    }
    for (size_t i = 8 * n_vec + tid; i < n_bytes; i += stride) {
        // Both elements of byte i (2i and 2i + 1) lie in block 2i / 64 = i / 32.
        float a = block_absmax<DQ>(absmax, absmax_q, state2_absmax, state2_code, offset,
                                   i / (NF4_BLOCK / 2));
        uint8_t b = packed[i];
        out[2 * i] = from_f<T>(__fmul_rn(table[b >> 4], a));
        // odd n: the low nibble of the last byte is padding
        if (2 * i + 1 < n) out[2 * i + 1] = from_f<T>(__fmul_rn(table[b & 15], a));
    }
}

#define EXPORT(T, S)                                                                            \
    extern "C" __global__ void nf4_dequant_##S(const uint8_t* packed, const float* code,         \
                                               const float* absmax, T* out, size_t n) {         \
        nf4_dequant<T, false>(packed, code, absmax, nullptr, nullptr, nullptr, 0.f, out, n);    \
    }                                                                                           \
    extern "C" __global__ void nf4_dequant_dq_##S(const uint8_t* packed, const float* code,      \
                                                  const uint8_t* absmax_q,                      \
                                                  const float* state2_absmax,                   \
                                                  const float* state2_code, float offset, T* out, \
                                                  size_t n) {                                   \
        nf4_dequant<T, true>(packed, code, nullptr, absmax_q, state2_absmax, state2_code, offset, \
                             out, n);                                                           \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
