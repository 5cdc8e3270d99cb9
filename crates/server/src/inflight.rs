//! A global budget of decompressed request-body bytes being decoded at once
//! (`server.max_inflight_decompressed_bytes`), so a burst of large writes cannot
//! exhaust memory. A request that finds the budget spent **waits** for its share (it is
//! never refused for this); its body size limit is at most the whole budget, so every
//! request eventually fits.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// A semaphore of bytes (one permit per byte).
#[derive(Debug)]
pub(crate) struct DecodeBudget {
    semaphore: Arc<Semaphore>,
    total: u32,
}

impl DecodeBudget {
    /// A budget of `total_bytes`, capped at what a semaphore can count (4 GiB - 1).
    pub(crate) fn new(total_bytes: u64) -> DecodeBudget {
        let cap = u64::from(u32::MAX).min(Semaphore::MAX_PERMITS as u64);
        let total = u32::try_from(total_bytes.clamp(1, cap)).unwrap_or(u32::MAX);
        DecodeBudget {
            semaphore: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `bytes` (capped at the whole budget) are free and takes them; they
    /// return when the permit is dropped, or in part with [`OwnedSemaphorePermit::split`].
    pub(crate) async fn acquire(&self, bytes: u64) -> Result<OwnedSemaphorePermit, ApiError> {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.total);
        Arc::clone(&self.semaphore)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| ApiError::internal("the decode budget is closed"))
    }

    /// Bytes free right now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

/// Gives back all but `keep` bytes of `permit` (e.g. once the real decompressed size
/// is known).
pub(crate) fn shrink_permit(permit: &mut OwnedSemaphorePermit, keep: u64) {
    let held = permit.num_permits();
    let keep = usize::try_from(keep).unwrap_or(usize::MAX).min(held);
    drop(permit.split(held - keep));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_until_bytes_are_released() {
        let budget = Arc::new(DecodeBudget::new(100));
        let first = budget.acquire(80).await.unwrap();
        assert_eq!(budget.available(), 20);
        let waiting = {
            let budget = Arc::clone(&budget);
            tokio::spawn(async move { budget.acquire(50).await.map(|p| p.num_permits()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiting.is_finished(),
            "must wait while the budget is spent"
        );
        drop(first);
        let got = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released in time")
            .unwrap()
            .unwrap();
        assert_eq!(got, 50);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn requests_larger_than_the_budget_take_all_of_it() {
        let budget = DecodeBudget::new(10);
        let mut permit = budget.acquire(1_000).await.unwrap();
        assert_eq!(permit.num_permits(), 10);
        shrink_permit(&mut permit, 3);
        assert_eq!(permit.num_permits(), 3);
        assert_eq!(budget.available(), 7);
        shrink_permit(&mut permit, 1_000);
        assert_eq!(permit.num_permits(), 3);
    }
}
