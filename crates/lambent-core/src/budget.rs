//! The node's memory budget. Every instance reserves its memory limit for as long as it exists
//! (a sandbox while it lives, idle or busy; a wasm instance while it serves calls), so the sum of
//! the limits never exceeds what the node may give out. A reservation is given back when dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Share of the host's memory that instances may reserve by default: the rest is for lambent,
/// the page cache and the host.
pub const DEFAULT_BUDGET_PERCENT: u64 = 80;

/// The default budget for a host with `total_mb` of memory.
pub fn default_budget_mb(total_mb: u64) -> u64 {
    total_mb.saturating_mul(DEFAULT_BUDGET_PERCENT) / 100
}

/// Memory that instances of this node may reserve, and how much they hold.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_mb: u64,
    reserved_mb: AtomicU64,
}

/// A part of the budget held by one instance; given back when dropped.
#[derive(Debug)]
pub struct MemoryReservation {
    budget: Arc<MemoryBudget>,
    mb: u64,
}

impl MemoryReservation {
    /// The reserved amount in MB.
    pub fn mb(&self) -> u64 {
        self.mb
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        self.budget.reserved_mb.fetch_sub(self.mb, Ordering::AcqRel);
    }
}

impl MemoryBudget {
    /// A budget of `limit_mb`.
    pub fn new(limit_mb: u64) -> Arc<Self> {
        Arc::new(Self {
            limit_mb,
            reserved_mb: AtomicU64::new(0),
        })
    }

    /// The budget in MB.
    pub fn limit_mb(&self) -> u64 {
        self.limit_mb
    }

    /// MB reserved now.
    pub fn reserved_mb(&self) -> u64 {
        self.reserved_mb.load(Ordering::Acquire)
    }

    /// MB still free.
    pub fn free_mb(&self) -> u64 {
        self.limit_mb.saturating_sub(self.reserved_mb())
    }

    /// Reserves `mb` if that much is free; never lets the reservations pass the limit, even
    /// when callers race.
    pub fn try_reserve(self: &Arc<Self>, mb: u64) -> Option<MemoryReservation> {
        self.reserved_mb
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(mb).filter(|n| *n <= self.limit_mb)
            })
            .ok()
            .map(|_| MemoryReservation {
                budget: self.clone(),
                mb,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_never_pass_the_limit_and_come_back_when_dropped() {
        let budget = MemoryBudget::new(1000);
        let a = budget.try_reserve(600).expect("600 of 1000");
        assert!(budget.try_reserve(500).is_none(), "600 + 500 > 1000");
        let b = budget.try_reserve(400).expect("exactly the rest");
        assert_eq!(budget.reserved_mb(), 1000);
        assert_eq!(budget.free_mb(), 0);
        drop(a);
        assert_eq!(budget.free_mb(), 600);
        assert_eq!(b.mb(), 400);
        drop(b);
        assert_eq!(budget.reserved_mb(), 0);
    }

    #[test]
    fn racing_reservations_stay_within_the_limit() {
        let budget = MemoryBudget::new(128 * 10);
        let held: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        (0..10)
                            .filter_map(|_| budget.try_reserve(128))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|_| Vec::new()))
                .collect::<Vec<MemoryReservation>>()
        });
        assert_eq!(held.len(), 10, "exactly ten 128 MB instances fit");
        assert_eq!(budget.reserved_mb(), 1280);
    }

    #[test]
    fn the_default_is_most_of_the_host() {
        assert_eq!(default_budget_mb(24_576), 19_660);
    }
}
