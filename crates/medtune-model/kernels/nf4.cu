// NF4 dequantization (bitsandbytes layout, see src/nf4.rs): element i of the weight is
// code[nibble(i)] * absmax[i / 64], computed in f32 and rounded to the output dtype once.
// packed holds two codes per byte, the FIRST element in the HIGH nibble.
//
// absmax is either stored (f32 [nb]) or double-quantized:
//   absmax[j] = state2_code[absmax_q[j]] * state2_absmax[j / 256] + offset
// as two separately rounded f32 operations (no fused multiply-add), exactly like the composed
// path (broadcast_mul, then affine), so that the result is bit-identical to it.
//
// One thread per packed byte (two outputs), grid-stride loop over the bytes.
#include "common.cuh"

#define NF4_BLOCK 64
#define DQ_BLOCK 256

__device__ __forceinline__ float dq_absmax(const uint8_t* absmax_q, const float* state2_absmax,
                                           const float* state2_code, float offset, size_t j) {
    return __fadd_rn(__fmul_rn(state2_code[absmax_q[j]], state2_absmax[j / DQ_BLOCK]), offset);
}

template <typename T> struct Pair;
template <> struct Pair<float> {
    typedef float2 type;
    static __device__ __forceinline__ float2 make(float a, float b) { return make_float2(a, b); }
};
template <> struct Pair<bf16> {
    typedef __nv_bfloat162 type;
    static __device__ __forceinline__ __nv_bfloat162 make(float a, float b) {
        __nv_bfloat162 p;
        p.x = __float2bfloat16_rn(a);
        p.y = __float2bfloat16_rn(b);
        return p;
    }
};

// DQ selects the absmax source: false reads `absmax`, true decodes absmax_q/state2_*.
template <typename T, bool DQ>
__device__ void nf4_dequant(const uint8_t* packed, const float* code, const float* absmax,
                            const uint8_t* absmax_q, const float* state2_absmax,
                            const float* state2_code, float offset, T* out, size_t n) {
    __shared__ float table[16];
    if (threadIdx.x < 16) table[threadIdx.x] = code[threadIdx.x];
    __syncthreads();
    size_t n_bytes = (n + 1) / 2;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_bytes; i += stride) {
        // Both elements of byte i (2i and 2i + 1) lie in block 2i / 64 = i / 32.
        size_t j = i / (NF4_BLOCK / 2);
        float a = DQ ? dq_absmax(absmax_q, state2_absmax, state2_code, offset, j) : absmax[j];
        uint8_t b = packed[i];
        float hi = __fmul_rn(table[b >> 4], a);
        float lo = __fmul_rn(table[b & 15], a);
        if (2 * i + 1 < n) {
            // out is a fresh allocation, so element 2i is aligned for the pair store.
            reinterpret_cast<typename Pair<T>::type*>(out)[i] = Pair<T>::make(hi, lo);
        } else {
            out[2 * i] = from_f<T>(hi);  // odd n: the low nibble of the last byte is padding
        }
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
