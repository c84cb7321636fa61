// RMSNorm over the last dimension with a frozen weight, forward and input gradient.
// One block per row. Forward matches HF's LlamaRMSNorm: y = w * dtype(x * rsqrt(mean(x^2) + eps)).
#include "common.cuh"

template <typename T>
__device__ void rms_fwd(const T* x, const T* w, T* y, int n, float eps) {
    const T* xr = x + (size_t)blockIdx.x * n;
    T* yr = y + (size_t)blockIdx.x * n;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) { float v = to_f(xr[i]); s += v * v; }
    s = block_sum(s);
    float r = 1.f / sqrtf(s / n + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = from_f<T>(round_to<T>(to_f(xr[i]) * r) * to_f(w[i]));
}

// dx = r * g - x * r^3 * sum(g * x) / n with g = dy * w, r = (mean(x^2) + eps)^-1/2.
template <typename T>
__device__ void rms_bwd(const T* x, const T* w, const T* dy, T* dx, int n, float eps) {
    size_t off = (size_t)blockIdx.x * n;
    float sxx = 0.f, sgx = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float v = to_f(x[off + i]);
        sxx += v * v;
        sgx += to_f(dy[off + i]) * to_f(w[i]) * v;
    }
    sxx = block_sum(sxx);
    sgx = block_sum(sgx);
    float r = 1.f / sqrtf(sxx / n + eps);
    float c = r * r * r * sgx / n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float g = to_f(dy[off + i]) * to_f(w[i]);
        dx[off + i] = from_f<T>(r * g - to_f(x[off + i]) * c);
    }
}

#define EXPORT(T, S)                                                                           \
    extern "C" __global__ void rms_norm_fwd_##S(const T* x, const T* w, T* y, int n, float eps) { \
        rms_fwd<T>(x, w, y, n, eps);                                                           \
    }                                                                                          \
    extern "C" __global__ void rms_norm_bwd_##S(const T* x, const T* w, const T* dy, T* dx, int n, \
                                                float eps) {                                   \
        rms_bwd<T>(x, w, dy, dx, n, eps);                                                      \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
