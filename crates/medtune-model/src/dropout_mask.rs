//! Counter-based dropout masks computed on the tensor's own device.
//!
//! LoRA dropout needs masks that a recomputed layer can draw again (see [`crate::recompute`]),
//! so they must be a pure function of (key, element index). On the CPU the adapter draws them
//! from ChaCha8; on a GPU, drawing on the host and copying every mask over made training about
//! 12× slower (bench/README.md). Here the mask is a keyed permutation of the element index,
//! evaluated with elementwise u32 tensor ops on the device:
//!
//! - the 32-bit index is split into two 16-bit halves (L, R);
//! - four Feistel rounds `L, R ← R, (L + F_k(R)) mod 2¹⁶` with the non-linear round function
//!   `F_k(x) = (⌊x² / 2⁸⌋ + x·m_k + c_k) mod 2¹⁶` (`m_k` odd, < 2¹⁵; `c_k` < 2¹⁶ from the key);
//! - `u = (L·2¹⁶ + R) / 2³²` is uniform on [0, 1) over the index range, and an element is kept
//!   when `u ≥ p`.
//!
//! Every intermediate stays below 2³², so the same ops run without overflow on any backend
//! (the CPU build checks overflow in debug), and [`keep_u32_reference`] reproduces them in
//! scalar code for tests. A Feistel network is a bijection, so distinct indices never collide.

use candle_core::{DType, Device, Result, Tensor};
use std::sync::Mutex;

const ROUNDS: usize = 4;
const HALF: u32 = 1 << 16;

/// Round constants (multiplier, addend) derived from `key` with SplitMix64 steps.
pub(crate) fn round_keys(key: u64) -> [(u32, u32); ROUNDS] {
    let mut z = key;
    let mut next = || {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let mut out = [(0u32, 0u32); ROUNDS];
    for k in out.iter_mut() {
        let r = next();
        // Odd multiplier below 2^15 keeps x·m < 2^31 for x < 2^16.
        let m = ((r as u32) & 0x7FFF) | 1;
        let c = ((r >> 32) as u32) & 0xFFFF;
        *k = (m, c);
    }
    out
}

/// The round function in scalar form: `(⌊x²/256⌋ + x·m + c) mod 2¹⁶`.
fn round_scalar(x: u32, m: u32, c: u32) -> u32 {
    (x * x / 256 + x * m + c) % HALF
}

/// The 32-bit permuted value of `index` under `key` (scalar reference of [`keep_mask`]).
pub fn permute_u32_reference(index: u32, key: u64) -> u32 {
    let (mut l, mut r) = (index / HALF, index % HALF);
    for (m, c) in round_keys(key) {
        let f = round_scalar(r, m, c);
        (l, r) = (r, (l + f) % HALF);
    }
    l * HALF + r
}

/// The smallest permuted value that is kept: `⌈p·2³²⌉`.
pub(crate) fn keep_threshold(p: f64) -> u64 {
    (p * 4_294_967_296.0).ceil() as u64
}

/// Whether element `index` is kept at drop probability `p` (scalar reference).
pub fn keep_u32_reference(index: u32, key: u64, p: f64) -> bool {
    permute_u32_reference(index, key) as u64 >= keep_threshold(p).min(u32::MAX as u64)
}

/// Per-device tensors that [`keep_mask`] would otherwise upload on every call (a host → device
/// copy synchronises the stream): the index range 0..n for the largest n seen, and u32 scalars.
struct DeviceConsts {
    device: Device,
    indices: Tensor,
    scalars: Vec<(u32, Tensor)>,
}

static CONSTS: Mutex<Vec<DeviceConsts>> = Mutex::new(Vec::new());

fn with_consts<T>(device: &Device, f: impl FnOnce(&mut DeviceConsts) -> Result<T>) -> Result<T> {
    let mut all = CONSTS
        .lock()
        .map_err(|_| candle_core::Error::Msg("dropout mask cache poisoned".into()))?;
    let pos = match all.iter().position(|c| c.device.same_device(device)) {
        Some(i) => i,
        None => {
            all.push(DeviceConsts {
                device: device.clone(),
                indices: Tensor::arange(0u32, 0, device)?,
                scalars: Vec::new(),
            });
            all.len() - 1
        }
    };
    f(&mut all[pos])
}

impl DeviceConsts {
    /// `0..n` as u32 (a prefix of a cached range, grown when a larger n is asked for).
    fn indices(&mut self, n: usize) -> Result<Tensor> {
        if self.indices.elem_count() < n {
            self.indices = Tensor::arange(0u32, n as u32, &self.device)?;
        }
        self.indices.narrow(0, 0, n)
    }

    /// A u32 scalar on the device.
    fn scalar(&mut self, v: u32) -> Result<Tensor> {
        if let Some((_, t)) = self.scalars.iter().find(|(x, _)| *x == v) {
            return Ok(t.clone());
        }
        let t = Tensor::new(v, &self.device)?;
        self.scalars.push((v, t.clone()));
        Ok(t)
    }
}

/// `x mod 2¹⁶` of a u32 tensor.
fn mod_half(x: &Tensor, half: &Tensor) -> Result<Tensor> {
    let q = x.broadcast_div(half)?;
    x - q.affine(HALF as f64, 0.0)?
}

/// Inverted-dropout multiplier for a tensor of `shape` on `device`: `1/(1−p)` where the element
/// is kept, 0 where it is dropped, in `dtype`. Elements are numbered in row-major order.
/// Nothing is copied from the host per call (see [`DeviceConsts`]); scalar multiply-adds use
/// `affine`, exact for u32 on every backend at these magnitudes.
pub fn keep_mask(
    shape: &candle_core::Shape,
    device: &Device,
    dtype: DType,
    key: u64,
    p: f64,
) -> Result<Tensor> {
    let n = shape.elem_count();
    if n > u32::MAX as usize {
        candle_core::bail!("dropout mask: {n} elements exceed the 2^32 index range");
    }
    let t = keep_threshold(p).min(u32::MAX as u64) as u32;
    let (idx, half, c256, threshold) = with_consts(device, |c| {
        Ok((c.indices(n)?, c.scalar(HALF)?, c.scalar(256)?, c.scalar(t)?))
    })?;
    let mut l = idx.broadcast_div(&half)?;
    let mut r = mod_half(&idx, &half)?;
    for (m, c) in round_keys(key) {
        let sq = r.mul(&r)?.broadcast_div(&c256)?;
        let f = mod_half(&(sq + r.affine(m as f64, c as f64)?)?, &half)?;
        let new_r = mod_half(&l.add(&f)?, &half)?;
        l = r;
        r = new_r;
    }
    // L·2^16 + R ≤ 2^32 − 1 fits a u32 exactly; kept ⇔ it is ≥ ⌈p·2^32⌉.
    let v = (l.affine(HALF as f64, 0.0)? + r)?;
    let keep = v.broadcast_ge(&threshold)?.to_dtype(dtype)?;
    (keep * (1.0 / (1.0 - p)))?.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_mask_equals_scalar_reference() -> Result<()> {
        let (key, p) = (0xDEAD_BEEF_u64, 0.3);
        let scale = (1.0 / (1.0 - p)) as f32;
        // Growing, shrinking and growing again exercises the cached index range.
        for dims in [(7, 300), (3, 5), (40, 400), (2, 9)] {
            let shape = candle_core::Shape::from(dims);
            let m = keep_mask(&shape, &Device::Cpu, DType::F32, key, p)?;
            assert_eq!(m.dims(), shape.dims());
            let got: Vec<f32> = m.flatten_all()?.to_vec1()?;
            for (i, g) in got.iter().enumerate() {
                let want = if keep_u32_reference(i as u32, key, p) {
                    scale
                } else {
                    0.0
                };
                assert_eq!(*g, want, "{dims:?}: element {i}");
            }
        }
        Ok(())
    }

    #[test]
    fn permutation_is_a_bijection_on_a_range() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..200_000u32 {
            assert!(
                seen.insert(permute_u32_reference(i, 42)),
                "collision at {i}"
            );
        }
        // Near the top of the index range too.
        for i in (u32::MAX - 1000)..=u32::MAX {
            assert!(
                seen.insert(permute_u32_reference(i, 42)),
                "collision at {i}"
            );
        }
    }

    #[test]
    fn keep_rate_matches_p_and_keys_give_different_masks() -> Result<()> {
        let shape = candle_core::Shape::from((64, 1024));
        for &p in &[0.05, 0.1, 0.5] {
            let a = keep_mask(&shape, &Device::Cpu, DType::F32, 7, p)?;
            let kept = a
                .ne(0f32)?
                .to_dtype(DType::F32)?
                .mean_all()?
                .to_scalar::<f32>()? as f64;
            // 65,536 Bernoulli draws: 5 standard deviations.
            let sd = (p * (1.0 - p) / 65_536.0).sqrt();
            assert!((kept - (1.0 - p)).abs() < 5.0 * sd, "p={p}: kept {kept}");
            let again = keep_mask(&shape, &Device::Cpu, DType::F32, 7, p)?;
            let same = a
                .eq(&again)?
                .to_dtype(DType::F32)?
                .mean_all()?
                .to_scalar::<f32>()?;
            assert_eq!(same, 1.0, "same key must repeat the mask");
            let other = keep_mask(&shape, &Device::Cpu, DType::F32, 8, p)?;
            let agree = a
                .eq(&other)?
                .to_dtype(DType::F32)?
                .mean_all()?
                .to_scalar::<f32>()? as f64;
            // Independent masks agree with probability p² + (1−p)².
            let expect = p * p + (1.0 - p) * (1.0 - p);
            assert!(
                (agree - expect).abs() < 0.02,
                "p={p}: agreement {agree} vs {expect}"
            );
        }
        Ok(())
    }

    #[test]
    fn neighbouring_elements_are_not_correlated() {
        // Lag-1 correlation of u over 100k consecutive indices.
        let u: Vec<f64> = (0..100_000u32)
            .map(|i| permute_u32_reference(i, 99) as f64 / 4_294_967_296.0)
            .collect();
        let mean = u.iter().sum::<f64>() / u.len() as f64;
        let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>();
        let cov = u
            .windows(2)
            .map(|w| (w[0] - mean) * (w[1] - mean))
            .sum::<f64>();
        let rho = cov / var;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert!(rho.abs() < 0.02, "lag-1 correlation {rho}");
    }
}
