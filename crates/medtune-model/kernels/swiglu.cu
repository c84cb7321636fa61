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

// The same two kernels over 16-byte packs of N = 16 / sizeof(T) consecutive columns (8 bf16 or
// 4 f32 per load), for cols, in_stride, out_stride, du_off and every start offset multiples of
// N (the host checks); one grid-stride loop over rows * cols / N packs.
template <typename T>
__device__ void swiglu_fwd_vec(const T* g, const T* u, T* y, unsigned rows, unsigned cols,
                               unsigned long long in_stride) {
    constexpr unsigned N = 16 / sizeof(T);
    unsigned cv = cols / N;
    size_t packs = (size_t)rows * cv;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < packs;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cv, c = (i % cv) * N;
        uint4 gp = load16(g + r * in_stride + c), up = load16(u + r * in_stride + c), yp;
        const T* gv = reinterpret_cast<const T*>(&gp);
        const T* uv = reinterpret_cast<const T*>(&up);
        T* yv = reinterpret_cast<T*>(&yp);
#pragma unroll
        for (unsigned k = 0; k < N; k++) {
            float a = round_to<T>(silu_f(to_f(gv[k])));
            yv[k] = from_f<T>(a * to_f(uv[k]));
        }
        *reinterpret_cast<uint4*>(y + r * cols + c) = yp;
    }
}

template <typename T>
__device__ void swiglu_bwd_vec(const T* g, const T* u, const T* dy, T* out, unsigned rows,
                               unsigned cols, unsigned long long in_stride,
                               unsigned long long out_stride, unsigned long long du_off) {
    constexpr unsigned N = 16 / sizeof(T);
    unsigned cv = cols / N;
    size_t packs = (size_t)rows * cv;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < packs;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / cv, c = (i % cv) * N;
        size_t in = r * in_stride + c, o = r * out_stride + c;
        uint4 gp = load16(g + in), up = load16(u + in), dp = load16(dy + r * cols + c), dgp, dup;
        const T* gv = reinterpret_cast<const T*>(&gp);
        const T* uv = reinterpret_cast<const T*>(&up);
        const T* dv = reinterpret_cast<const T*>(&dp);
        T* dg = reinterpret_cast<T*>(&dgp);
        T* du = reinterpret_cast<T*>(&dup);
#pragma unroll
        for (unsigned k = 0; k < N; k++) {
            float gk = to_f(gv[k]), uk = to_f(uv[k]), dk = to_f(dv[k]);
            float den = 1.f + expf(-gk);
            float s = 1.f / den, silu = round_to<T>(gk / den);
            dg[k] = from_f<T>(round_to<T>(dk * uk) * (s * (1.f + gk * (1.f - s))));
            du[k] = from_f<T>(dk * silu);
        }
        *reinterpret_cast<uint4*>(out + o) = dgp;
        *reinterpret_cast<uint4*>(out + du_off + o) = dup;
    }
}

// swiglu_{fwd,bwd}<V>_<S>: V is empty (one element per thread) or _vec (16-byte packs).
#define EXPORT(T, S, V)                                                                           \
    extern "C" __global__ void swiglu_fwd##V##_##S(const T* g, const T* u, T* y, unsigned rows,   \
                                                   unsigned cols,                                 \
                                                   unsigned long long in_stride) {                \
        swiglu_fwd##V<T>(g, u, y, rows, cols, in_stride);                                         \
    }                                                                                             \
    extern "C" __global__ void swiglu_bwd##V##_##S(const T* g, const T* u, const T* dy, T* out,   \
                                                   unsigned rows, unsigned cols,                  \
                                                   unsigned long long in_stride,                  \
                                                   unsigned long long out_stride,                 \
                                                   unsigned long long du_off) {                   \
        swiglu_bwd##V<T>(g, u, dy, out, rows, cols, in_stride, out_stride, du_off);               \
    }
EXPORT(float, f32, )
EXPORT(bf16, bf16, )
EXPORT(float, f32, _vec)
EXPORT(bf16, bf16, _vec)
