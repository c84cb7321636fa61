// AdamW in place, f32 (LoRA masters and optimizer states are f32). The same arithmetic, in the
// same order, as the composed update of medtune-train's optim/adamw.rs:
//   m <- m + (g - m) * (1 - beta1)
//   v <- v * beta2 + (g * g) * (1 - beta2)
//   p <- p * decay - (m / (sqrt(v) * inv_bc2 + eps)) * step_size
// Three kernels because candle's in-place ops mutate one tensor each; every one is a single
// grid-stride pass instead of ~15 elementwise kernels per parameter.
#include "common.cuh"

#define GRID_STRIDE(i, n) \
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)

extern "C" __global__ void adam_first_moment_f32(float* m, const float* g, unsigned int n,
                                                 float one_minus_beta1) {
    GRID_STRIDE(i, n) { m[i] = m[i] + (g[i] - m[i]) * one_minus_beta1; }
}

extern "C" __global__ void adam_second_moment_f32(float* v, const float* g, unsigned int n,
                                                  float beta2, float one_minus_beta2) {
    GRID_STRIDE(i, n) { v[i] = v[i] * beta2 + (g[i] * g[i]) * one_minus_beta2; }
}

extern "C" __global__ void adamw_param_f32(float* p, const float* m, const float* v,
                                           unsigned int n, float decay, float inv_bc2, float eps,
                                           float step_size) {
    GRID_STRIDE(i, n) { p[i] = p[i] * decay - (m[i] / (sqrtf(v[i]) * inv_bc2 + eps)) * step_size; }
}
