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

    pub(super) fn used_bytes(d: &CudaDevice) -> Result<u64> {
        let (free, total) = d
            .cuda_stream()
            .context()
            .mem_get_info()
            .map_err(|e| candle_core::Error::Msg(format!("cuMemGetInfo: {e}")))?;
        Ok((total - free) as u64)
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
