//! Device memory in use, read from the driver (`cuMemGetInfo`: total − free), and a background
//! sampler of its peak. candle keeps no allocator statistics, so this counts everything on
//! the GPU: this process's CUDA context, memory freed but still held by the stream-ordered
//! pool until the next synchronisation, and other processes. On the CPU both report `None`.

use candle_core::Device;

use crate::Result;

/// Bytes in use on `device` now; `None` on the CPU.
pub fn used_bytes(device: &Device) -> Result<Option<u64>> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => Ok(Some(cuda::used_bytes(d)?)),
        _ => Ok(None),
    }
}

/// Peak bytes allocated from the device's default memory pool (where candle's stream-ordered
/// allocations come from) since the last [`reset_allocated_peak`]: live tensors only, not what
/// the pool keeps for reuse. The counterpart of PyTorch's `max_memory_allocated`. `None` on the
/// CPU.
pub fn allocated_peak(device: &Device) -> Result<Option<u64>> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => Ok(Some(cuda::pool_used_high(d)?)),
        _ => Ok(None),
    }
}

/// Starts a new [`allocated_peak`] window (does nothing on the CPU).
pub fn reset_allocated_peak(device: &Device) -> Result<()> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => cuda::reset_pool_used_high(d),
        _ => Ok(()),
    }
}

/// Holds all but `limit` bytes of the device's free memory (CUDA; `None` on the CPU), so that
/// a run after it shows, by not failing, that it fits in `limit`.
pub fn hold_all_but(device: &Device, limit: u64) -> Result<Option<candle_core::Tensor>> {
    match device {
        #[cfg(feature = "cuda")]
        Device::Cuda(d) => {
            let (free, _) = cuda::free_total(d)?;
            let hold = free.saturating_sub(limit);
            Ok(Some(candle_core::Tensor::zeros(
                hold as usize,
                candle_core::DType::U8,
                device,
            )?))
        }
        _ => {
            let _ = limit;
            Ok(None)
        }
    }
}

/// Samples the memory in use every [`PeakProbe::PERIOD`] on a background thread until
/// [`PeakProbe::stop`], which returns the highest sample.
pub struct PeakProbe {
    #[cfg(feature = "cuda")]
    inner: Option<cuda::Sampler>,
}

impl PeakProbe {
    /// Sampling period.
    pub const PERIOD: std::time::Duration = std::time::Duration::from_millis(2);

    /// Starts sampling (does nothing on the CPU).
    pub fn start(device: &Device) -> Result<Self> {
        match device {
            #[cfg(feature = "cuda")]
            Device::Cuda(d) => Ok(Self {
                inner: Some(cuda::Sampler::start(d.clone(), Self::PERIOD)?),
            }),
            _ => Ok(Self {
                #[cfg(feature = "cuda")]
                inner: None,
            }),
        }
    }

    /// Stops sampling; the peak bytes in use (`None` on the CPU).
    pub fn stop(self) -> Result<Option<u64>> {
        #[cfg(feature = "cuda")]
        if let Some(s) = self.inner {
            return Ok(Some(s.stop()?));
        }
        Ok(None)
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::CudaDevice;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::Duration;

    use crate::Result;

    pub(super) fn free_total(d: &CudaDevice) -> Result<(u64, u64)> {
        let (free, total) = d
            .cuda_stream()
            .context()
            .mem_get_info()
            .map_err(|e| candle_core::Error::Msg(format!("cuMemGetInfo: {e}")))?;
        Ok((free as u64, total as u64))
    }

    pub(super) fn used_bytes(d: &CudaDevice) -> Result<u64> {
        let (free, total) = free_total(d)?;
        Ok(total - free)
    }

    /// Reads (`set: false`) or resets (`set: true`, value 0) the default pool's
    /// `CU_MEMPOOL_ATTR_USED_MEM_HIGH`.
    fn used_high(d: &CudaDevice, set: bool) -> Result<u64> {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let ctx = d.cuda_stream().context().clone();
        let fail =
            |what: &str, e: &dyn std::fmt::Display| crate::Error::model(format!("{what}: {e}"));
        ctx.bind_to_thread()
            .map_err(|e| fail("binding the CUDA context", &e))?;
        let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
        let mut value: u64 = 0;
        let attr = sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_USED_MEM_HIGH;
        // SAFETY: driver calls on the context bound above, with out-pointers to live locals of
        // the types the driver writes (a pool handle; a cuuint64_t for this attribute).
        #[allow(unsafe_code)]
        let r = unsafe {
            sys::cuDeviceGetDefaultMemPool(&mut pool, ctx.cu_device())
                .result()
                .and_then(|()| {
                    let v = &mut value as *mut u64 as *mut std::ffi::c_void;
                    if set {
                        sys::cuMemPoolSetAttribute(pool, attr, v).result()
                    } else {
                        sys::cuMemPoolGetAttribute(pool, attr, v).result()
                    }
                })
        };
        r.map_err(|e| fail("memory pool high watermark", &e))?;
        Ok(value)
    }

    pub(super) fn pool_used_high(d: &CudaDevice) -> Result<u64> {
        used_high(d, false)
    }

    pub(super) fn reset_pool_used_high(d: &CudaDevice) -> Result<()> {
        used_high(d, true).map(|_| ())
    }

    pub(super) struct Sampler {
        stop: Arc<AtomicBool>,
        handle: JoinHandle<Result<u64>>,
    }

    impl Sampler {
        pub(super) fn start(d: CudaDevice, period: Duration) -> Result<Self> {
            let first = used_bytes(&d)?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let handle = std::thread::spawn(move || {
                let mut peak = first;
                while !flag.load(Ordering::Relaxed) {
                    peak = peak.max(used_bytes(&d)?);
                    std::thread::sleep(period);
                }
                Ok(peak.max(used_bytes(&d)?))
            });
            Ok(Self { stop, handle })
        }

        pub(super) fn stop(self) -> Result<u64> {
            self.stop.store(true, Ordering::Relaxed);
            self.handle
                .join()
                .map_err(|_| candle_core::Error::Msg("memory sampler thread panicked".into()))?
        }
    }
}
