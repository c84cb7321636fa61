// SwiGLU: y = dtype(silu(g)) * u, and its gradients d_g = dtype(dy * u) * silu'(g),
// d_u = dy * dtype(silu(g)), with silu(g) = g / (1 + e^-g) and
// silu'(g) = s * (1 + g * (1 - s)), s = 1 / (1 + e^-g).
//
// The inputs are `rows` rows of `cols` elements: row r of the gate starts at g + r * in_stride,
// of the up projection at u + r * in_stride (in_stride = cols for two separate tensors, 2 * cols
// for Phi-3's packed [gate | up] projection, where u = g + cols). Grid: x over columns, y over
// rows (both grid-stride).
#include "common.cuh"

__device__ __forceinline__ float silu_f(float g) { return g / (1.f + expf(-g)); }

template <typename T>
__device__ void swiglu_fwd(const T* g, const T* u, T* y, unsigned rows, unsigned cols,
                           unsigned long long in_stride) {
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        size_t in = (size_t)r * in_stride, out = (size_t)r * cols;
        for (unsigned c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
            float a = round_to<T>(silu_f(to_f(g[in + c])));
            y[out + c] = from_f<T>(a * to_f(u[in + c]));
        }
    }
}

// dy is contiguous [rows, cols]; d_g of row r goes to out + r * out_stride, d_u to
// out + du_off + r * out_stride.
template <typename T>
__device__ void swiglu_bwd(const T* g, const T* u, const T* dy, T* out, unsigned rows,
                           unsigned cols, unsigned long long in_stride,
                           unsigned long long out_stride, unsigned long long du_off) {
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        size_t in = (size_t)r * in_stride, o = (size_t)r * out_stride, d = (size_t)r * cols;
        for (unsigned c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
            float gv = to_f(g[in + c]), uv = to_f(u[in + c]), dv = to_f(dy[d + c]);
            float den = 1.f + expf(-gv);
            float s = 1.f / den, silu = round_to<T>(gv / den);
            out[o + c] = from_f<T>(round_to<T>(dv * uv) * (s * (1.f + gv * (1.f - s))));
            out[du_off + o + c] = from_f<T>(dv * silu);
        }
    }
}

#define EXPORT(T, S)                                                                              \
    extern "C" __global__ void swiglu_fwd_##S(const T* g, const T* u, T* y, unsigned rows,        \
                                              unsigned cols, unsigned long long in_stride) {      \
        swiglu_fwd<T>(g, u, y, rows, cols, in_stride);                                            \
    }                                                                                             \
    extern "C" __global__ void swiglu_bwd_##S(const T* g, const T* u, const T* dy, T* out,        \
                                              unsigned rows, unsigned cols,                       \
                                              unsigned long long in_stride,                       \
                                              unsigned long long out_stride,                      \
                                              unsigned long long du_off) {                        \
        swiglu_bwd<T>(g, u, dy, out, rows, cols, in_stride, out_stride, du_off);                  \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
