//! Gradient accumulation: sum the gradients of several micro-batches before one optimizer step.
//!
//! The loss of each micro-batch should be a *sum* over its supervised tokens; after the last
//! micro-batch, scale the total by 1 / (supervised tokens of the whole accumulated batch) with
//! [`Grads::scale`]. Then k micro-batches give exactly the gradient of one batch k times larger,
//! however the supervised tokens are spread between them.

use super::Grads;
use crate::Result;

/// Running sum of gradients over micro-batches.
#[derive(Debug, Default)]
pub struct GradAccumulator {
    sum: Option<Grads>,
    micro_batches: usize,
}

impl GradAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one micro-batch's gradients (same parameters, same order as the previous ones).
    pub fn add(&mut self, grads: &Grads) -> Result<()> {
        self.sum = Some(match &self.sum {
            None => grads.clone(),
            Some(sum) => sum.add(grads)?,
        });
        self.micro_batches += 1;
        Ok(())
    }

    /// Micro-batches added since the last [`GradAccumulator::take`].
    pub fn micro_batches(&self) -> usize {
        self.micro_batches
    }

    /// The summed gradients (None if nothing was added), leaving the accumulator empty.
    pub fn take(&mut self) -> Option<Grads> {
        self.micro_batches = 0;
        self.sum.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn sums_and_resets() -> Result<()> {
        let dev = Device::Cpu;
        let mut acc = GradAccumulator::new();
        assert!(acc.take().is_none());
        acc.add(&Grads::new(vec![Tensor::new(&[1f32, 2.], &dev)?]))?;
        acc.add(&Grads::new(vec![Tensor::new(&[0.5f32, -4.], &dev)?]))?;
        assert_eq!(acc.micro_batches(), 2);
        let sum = acc.take().map(|g| g.tensors()[0].to_vec1::<f32>());
        assert_eq!(sum.transpose()?, Some(vec![1.5, -2.0]));
        assert_eq!(acc.micro_batches(), 0);
        let bad = Grads::new(vec![Tensor::new(&[1f32], &dev)?]);
        acc.add(&Grads::new(vec![Tensor::new(&[1f32, 2.], &dev)?]))?;
        assert!(acc.add(&bad).is_err());
        Ok(())
    }
}
