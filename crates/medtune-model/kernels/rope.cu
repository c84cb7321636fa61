// Rotary position embedding in HF's rotate_half layout, forward and input gradient.
//
// x is [B, H, T, D] with any strides (sb, sh, st) over B, H, T and unit stride over D; row
// (b, h, t) of the output starts at b * ob + h * oh + t * ot (contiguous [B, H, T, D], or
// [B, T, H, D] for the gradient handed to the q/k projections). cos/sin are contiguous [CB, 1, T, R] with CB = 1 (shared) or B.
// With half = R / 2, i < half and j = i + half:
//   forward:  y[i] = x[i] cos[i] - x[j] sin[i],   y[j] = x[j] cos[j] + x[i] sin[j]
//   backward: dx[i] = dy[i] cos[i] + dy[j] sin[j], dx[j] = dy[j] cos[j] - dy[i] sin[i]
// (the backward is the same rotation with sin's pair swapped and negated: bwd != 0), and
// dims i >= R pass through. Each product and each sum is rounded to T, like the composed path
// (x * cos + rotate_half(x) * sin in the model dtype); _rn intrinsics keep nvcc from fusing them.
// A block holds blockDim.y rows; thread x of a row handles a pair (i, j) or one pass-through
// dim (grid-stride over rows).
#include "common.cuh"

template <typename T>
__device__ void rope_row(const T* x, const T* cos, const T* sin, T* y, unsigned H, unsigned Tn,
                         unsigned D, unsigned R, unsigned long long sb, unsigned long long sh,
                         unsigned long long st, unsigned long long ob, unsigned long long oh,
                         unsigned long long ot, unsigned cos_batch, int bwd, unsigned rows) {
    unsigned half = R / 2, work = half + (D - R);
    for (unsigned row = blockIdx.x * blockDim.y + threadIdx.y; row < rows;
         row += gridDim.x * blockDim.y) {
        unsigned t = row % Tn, bh = row / Tn, h = bh % H, b = bh / H;
        const T* xr = x + (size_t)b * sb + (size_t)h * sh + (size_t)t * st;
        T* yr = y + (size_t)b * ob + (size_t)h * oh + (size_t)t * ot;
        size_t cs = ((size_t)(cos_batch == 1 ? 0 : b) * Tn + t) * R;
        const T* cr = cos + cs;
        const T* sr = sin + cs;
        for (unsigned k = threadIdx.x; k < work; k += blockDim.x) {
            if (k < half) {
                unsigned i = k, j = k + half;
                float x1 = to_f(xr[i]), x2 = to_f(xr[j]);
                float c1 = to_f(cr[i]), c2 = to_f(cr[j]);
                float s1 = to_f(sr[i]), s2 = to_f(sr[j]);
                float sa = bwd ? -s2 : s1, sb2 = bwd ? -s1 : s2;
                float a = round_to<T>(__fmul_rn(x1, c1)), p = round_to<T>(__fmul_rn(x2, sa));
                float c = round_to<T>(__fmul_rn(x2, c2)), q = round_to<T>(__fmul_rn(x1, sb2));
                yr[i] = from_f<T>(__fsub_rn(a, p));
                yr[j] = from_f<T>(__fadd_rn(c, q));
            } else {
                unsigned i = R + (k - half);
                yr[i] = xr[i];
            }
        }
    }
}

#define EXPORT(T, S)                                                                              \
    extern "C" __global__ void rope_##S(const T* x, const T* cos, const T* sin, T* y, unsigned H, \
                                        unsigned Tn, unsigned D, unsigned R,                      \
                                        unsigned long long sb, unsigned long long sh,             \
                                        unsigned long long st, unsigned long long ob,             \
                                        unsigned long long oh, unsigned long long ot,             \
                                        unsigned cos_batch, int bwd, unsigned rows) {             \
        rope_row<T>(x, cos, sin, y, H, Tn, D, R, sb, sh, st, ob, oh, ot, cos_batch, bwd, rows);   \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
