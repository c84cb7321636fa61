// RMSNorm over the last dimension with a frozen weight, forward and input gradient.
// One block per row. Forward matches HF's LlamaRMSNorm: y = w * dtype(x * rsqrt(mean(x^2) + eps)).
// The _p<P> kernels hold the row in registers as 16-byte packs (at most P per thread; n a
// multiple of the pack, every start 16-byte aligned): one read of x (and dy), one write.
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

template <typename T, int P>
__device__ void rms_fwd_packs(const T* x, const T* w, T* y, int n, float eps) {
    constexpr int N = 16 / sizeof(T);
    int packs = n / N;
    const T* xr = x + (size_t)blockIdx.x * n;
    T* yr = y + (size_t)blockIdx.x * n;
    uint4 xp[P];
    float s = 0.f;
#pragma unroll
    for (int p = 0; p < P; p++) {
        int i = threadIdx.x + p * blockDim.x;
        if (i < packs) {
            xp[p] = load16(xr + i * N);
            const T* xv = reinterpret_cast<const T*>(&xp[p]);
#pragma unroll
            for (int k = 0; k < N; k++) s += to_f(xv[k]) * to_f(xv[k]);
        }
    }
    s = block_sum(s);
    float r = 1.f / sqrtf(s / n + eps);
#pragma unroll
    for (int p = 0; p < P; p++) {
        int i = threadIdx.x + p * blockDim.x;
        if (i < packs) {
            uint4 wp = load16(w + i * N), yp;
            const T* xv = reinterpret_cast<const T*>(&xp[p]);
            const T* wv = reinterpret_cast<const T*>(&wp);
            T* yv = reinterpret_cast<T*>(&yp);
#pragma unroll
            for (int k = 0; k < N; k++) yv[k] = from_f<T>(round_to<T>(to_f(xv[k]) * r) * to_f(wv[k]));
            store16(yr + i * N, yp);
        }
    }
}

template <typename T, int P>
__device__ void rms_bwd_packs(const T* x, const T* w, const T* dy, T* dx, int n, float eps) {
    constexpr int N = 16 / sizeof(T);
    int packs = n / N;
    size_t off = (size_t)blockIdx.x * n;
    uint4 xp[P], gp[P];
    float sxx = 0.f, sgx = 0.f;
#pragma unroll
    for (int p = 0; p < P; p++) {
        int i = threadIdx.x + p * blockDim.x;
        if (i < packs) {
            xp[p] = load16(x + off + i * N);
            gp[p] = load16(dy + off + i * N);
            uint4 wp = load16(w + i * N);
            const T* xv = reinterpret_cast<const T*>(&xp[p]);
            const T* gv = reinterpret_cast<const T*>(&gp[p]);
            const T* wv = reinterpret_cast<const T*>(&wp);
#pragma unroll
            for (int k = 0; k < N; k++) {
                float v = to_f(xv[k]);
                sxx += v * v;
                sgx += to_f(gv[k]) * to_f(wv[k]) * v;
            }
        }
    }
    sxx = block_sum(sxx);
    sgx = block_sum(sgx);
    float r = 1.f / sqrtf(sxx / n + eps);
    float c = r * r * r * sgx / n;
#pragma unroll
    for (int p = 0; p < P; p++) {
        int i = threadIdx.x + p * blockDim.x;
        if (i < packs) {
            uint4 wp = load16(w + i * N), op;
            const T* xv = reinterpret_cast<const T*>(&xp[p]);
            const T* gv = reinterpret_cast<const T*>(&gp[p]);
            const T* wv = reinterpret_cast<const T*>(&wp);
            T* ov = reinterpret_cast<T*>(&op);
#pragma unroll
            for (int k = 0; k < N; k++)
                ov[k] = from_f<T>(r * (to_f(gv[k]) * to_f(wv[k])) - to_f(xv[k]) * c);
            store16(dx + off + i * N, op);
        }
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

#define EXPORT_PACKS(T, S, P)                                                                  \
    extern "C" __global__ void rms_norm_fwd_p##P##_##S(const T* x, const T* w, T* y, int n,    \
                                                       float eps) {                            \
        rms_fwd_packs<T, P>(x, w, y, n, eps);                                                  \
    }                                                                                          \
    extern "C" __global__ void rms_norm_bwd_p##P##_##S(const T* x, const T* w, const T* dy,    \
                                                       T* dx, int n, float eps) {              \
        rms_bwd_packs<T, P>(x, w, dy, dx, n, eps);                                             \
    }
EXPORT_PACKS(float, f32, 1)
EXPORT_PACKS(float, f32, 2)
EXPORT_PACKS(float, f32, 4)
EXPORT_PACKS(bf16, bf16, 1)
EXPORT_PACKS(bf16, bf16, 2)
EXPORT_PACKS(bf16, bf16, 4)
