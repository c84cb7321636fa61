// Rotary position embedding in HF's rotate_half layout, forward and input gradient.
//
// x is [B, H, T, D] with any strides (sb, sh, st) over B, H, T and unit stride over D; row
// (b, h, t) of the output starts at b * ob + h * oh + t * ot (contiguous [B, H, T, D], or
// [B, T, H, D] for the gradient handed to the q/k projections). cos/sin are contiguous
// [CB, 1, T, R] with CB = 1 (shared) or B.
// With half = R / 2, i < half and j = i + half:
//   forward:  y[i] = x[i] cos[i] - x[j] sin[i],   y[j] = x[j] cos[j] + x[i] sin[j]
//   backward: dx[i] = dy[i] cos[i] + dy[j] sin[j], dx[j] = dy[j] cos[j] - dy[i] sin[i]
// (the backward is the same rotation with sin's pair swapped and negated: bwd != 0), and
// dims i >= R pass through. Each product and each sum is rounded to T, like the composed path
// (x * cos + rotate_half(x) * sin in the model dtype); _rn intrinsics keep nvcc from fusing them.
//
// Threads (x, y) of a block: x walks a row's pairs (i, j) and pass-through dims, y picks a
// group of RPT consecutive rows (grid-stride over groups). A thread issues the loads of all its
// RPT rows before the first store: one row's few loads per thread cannot hide the memory latency.
#include "common.cuh"

#define RPT 4

template <typename T>
__device__ void rope_rows(const T* x, const T* cos, const T* sin, T* y, unsigned H, unsigned Tn,
                          unsigned D, unsigned R, unsigned long long sb, unsigned long long sh,
                          unsigned long long st, unsigned long long ob, unsigned long long oh,
                          unsigned long long ot, unsigned cos_batch, int bwd, unsigned rows) {
    unsigned half = R / 2, work = half + (D - R);
    for (unsigned g0 = (blockIdx.x * blockDim.y + threadIdx.y) * RPT; g0 < rows;
         g0 += gridDim.x * blockDim.y * RPT) {
        const T* xr[RPT];
        const T* cr[RPT];
        const T* sr[RPT];
        T* yr[RPT];
#pragma unroll
        for (int q = 0; q < RPT; q++) {
            unsigned row = min(g0 + q, rows - 1);
            unsigned t = row % Tn, bh = row / Tn, h = bh % H, b = bh / H;
            xr[q] = x + (size_t)b * sb + (size_t)h * sh + (size_t)t * st;
            yr[q] = y + (size_t)b * ob + (size_t)h * oh + (size_t)t * ot;
            size_t cs = ((size_t)(cos_batch == 1 ? 0 : b) * Tn + t) * R;
            cr[q] = cos + cs;
            sr[q] = sin + cs;
        }
        for (unsigned k = threadIdx.x; k < work; k += blockDim.x) {
            if (k < half) {
                unsigned i = k, j = k + half;
                float x1[RPT], x2[RPT], c1[RPT], c2[RPT], s1[RPT], s2[RPT];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    x1[q] = to_f(xr[q][i]);
                    x2[q] = to_f(xr[q][j]);
                    c1[q] = to_f(cr[q][i]);
                    c2[q] = to_f(cr[q][j]);
                    s1[q] = to_f(sr[q][i]);
                    s2[q] = to_f(sr[q][j]);
                }
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    if (g0 + q >= rows) break;
                    float sa = bwd ? -s2[q] : s1[q], sb2 = bwd ? -s1[q] : s2[q];
                    float a = round_to<T>(__fmul_rn(x1[q], c1[q]));
                    float p = round_to<T>(__fmul_rn(x2[q], sa));
                    float c = round_to<T>(__fmul_rn(x2[q], c2[q]));
                    float r = round_to<T>(__fmul_rn(x1[q], sb2));
                    yr[q][i] = from_f<T>(__fsub_rn(a, p));
                    yr[q][j] = from_f<T>(__fadd_rn(c, r));
                }
            } else {
                unsigned i = R + (k - half);
                T v[RPT];
#pragma unroll
                for (int q = 0; q < RPT; q++) v[q] = xr[q][i];
#pragma unroll
                for (int q = 0; q < RPT; q++) {
                    if (g0 + q >= rows) break;
                    yr[q][i] = v[q];
                }
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
        rope_rows<T>(x, cos, sin, y, H, Tn, D, R, sb, sh, st, ob, oh, ot, cos_batch, bwd, rows);   \
    }
EXPORT(float, f32)
EXPORT(bf16, bf16)
