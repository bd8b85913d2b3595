//! Counting: how many calls each function has in flight, against its reserved concurrency or the
//! account's unreserved pool (Lambda's model). Taking a permit is two atomic operations under a
//! read lock; the permit gives its slot back when dropped, which for a wasm call is when the guest
//! has finished, not when the response head was sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use lambent_core::limits::MIN_UNRESERVED_CONCURRENCY;
use lambent_core::{FunctionName, Throttle};
use parking_lot::RwLock;

/// No reservation.
const UNRESERVED: u32 = u32::MAX;

#[derive(Debug)]
struct FunctionCounter {
    in_flight: AtomicU32,
    reserved: AtomicU32,
}

impl FunctionCounter {
    fn new(reserved: Option<u32>) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            reserved: AtomicU32::new(reserved.unwrap_or(UNRESERVED)),
        }
    }
}

/// The account's counters.
#[derive(Debug)]
pub struct Concurrency {
    account_limit: u32,
    /// Calls in flight of functions without a reservation.
    unreserved_in_flight: Arc<AtomicU32>,
    /// Sum of all reservations.
    reserved_total: AtomicU32,
    functions: RwLock<HashMap<FunctionName, Arc<FunctionCounter>>>,
}

/// A slot taken by one call; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    function: Arc<FunctionCounter>,
    pool: Option<Arc<AtomicU32>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.function.in_flight.fetch_sub(1, Ordering::AcqRel);
        if let Some(pool) = &self.pool {
            pool.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "reserving {asked} for this function would leave {left} unreserved concurrent executions; the account's limit is {limit} and at least {MIN_UNRESERVED_CONCURRENCY} must stay unreserved, so reserve at most {max}"
)]
pub struct ReservationError {
    /// what was asked
    pub asked: u32,
    /// what would be left
    pub left: i64,
    /// the account limit
    pub limit: u32,
    /// the most that may be reserved for this function
    pub max: u32,
}

impl Concurrency {
    /// Counters for an account with `account_limit` concurrent executions and these reservations.
    pub fn new(
        account_limit: u32,
        reservations: impl IntoIterator<Item = (FunctionName, u32)>,
    ) -> Self {
        let mut functions = HashMap::new();
        let mut total = 0u32;
        for (name, reserved) in reservations {
            total = total.saturating_add(reserved);
            functions.insert(name, Arc::new(FunctionCounter::new(Some(reserved))));
        }
        Self {
            account_limit,
            unreserved_in_flight: Arc::new(AtomicU32::new(0)),
            reserved_total: AtomicU32::new(total),
            functions: RwLock::new(functions),
        }
    }

    fn counter(&self, name: &FunctionName) -> Arc<FunctionCounter> {
        if let Some(c) = self.functions.read().get(name) {
            return c.clone();
        }
        self.functions
            .write()
            .entry(name.clone())
            .or_insert_with(|| Arc::new(FunctionCounter::new(None)))
            .clone()
    }

    /// Takes a slot for one call of `name`, or says which limit is reached.
    pub fn acquire(&self, name: &FunctionName) -> Result<Permit, Throttle> {
        let function = self.counter(name);
        let reserved = function.reserved.load(Ordering::Acquire);
        let before = function.in_flight.fetch_add(1, Ordering::AcqRel);
        if reserved != UNRESERVED {
            if before >= reserved {
                function.in_flight.fetch_sub(1, Ordering::AcqRel);
                return Err(Throttle::Reserved { limit: reserved });
            }
            return Ok(Permit {
                function,
                pool: None,
            });
        }
        let limit = self.unreserved_limit();
        let pool = self.unreserved_in_flight.clone();
        if pool.fetch_add(1, Ordering::AcqRel) >= limit {
            pool.fetch_sub(1, Ordering::AcqRel);
            function.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Throttle::Account { limit });
        }
        Ok(Permit {
            function,
            pool: Some(pool),
        })
    }

    /// Checks that reserving `asked` for `name` leaves the minimum unreserved.
    pub fn check_reservation(
        &self,
        name: &FunctionName,
        asked: u32,
    ) -> Result<(), ReservationError> {
        let current = self.reservation(name).unwrap_or(0);
        let others = i64::from(self.reserved_total.load(Ordering::Acquire)) - i64::from(current);
        let left = i64::from(self.account_limit) - others - i64::from(asked);
        if left < i64::from(MIN_UNRESERVED_CONCURRENCY) {
            let max =
                i64::from(self.account_limit) - others - i64::from(MIN_UNRESERVED_CONCURRENCY);
            return Err(ReservationError {
                asked,
                left,
                limit: self.account_limit,
                max: u32::try_from(max.max(0)).unwrap_or(0),
            });
        }
        Ok(())
    }

    /// Sets or removes `name`'s reservation (already checked and stored).
    pub fn set_reservation(&self, name: &FunctionName, reserved: Option<u32>) {
        let counter = self.counter(name);
        let old = counter
            .reserved
            .swap(reserved.unwrap_or(UNRESERVED), Ordering::AcqRel);
        let old = if old == UNRESERVED { 0 } else { old };
        let new = reserved.unwrap_or(0);
        if new >= old {
            self.reserved_total.fetch_add(new - old, Ordering::AcqRel);
        } else {
            self.reserved_total.fetch_sub(old - new, Ordering::AcqRel);
        }
    }

    /// Forgets a deleted function's reservation.
    pub fn forget(&self, name: &FunctionName) {
        self.set_reservation(name, None);
    }

    /// `name`'s reservation.
    pub fn reservation(&self, name: &FunctionName) -> Option<u32> {
        let r = self
            .functions
            .read()
            .get(name)
            .map(|c| c.reserved.load(Ordering::Acquire))?;
        (r != UNRESERVED).then_some(r)
    }

    /// The account's limit.
    pub fn account_limit(&self) -> u32 {
        self.account_limit
    }

    /// What functions without a reservation share.
    pub fn unreserved_limit(&self) -> u32 {
        self.account_limit
            .saturating_sub(self.reserved_total.load(Ordering::Acquire))
    }

    /// Calls in flight per function (functions called at least once).
    pub fn in_flight_by_function(&self) -> Vec<(FunctionName, u32)> {
        self.functions
            .read()
            .iter()
            .map(|(k, c)| (k.clone(), c.in_flight.load(Ordering::Acquire)))
            .collect()
    }

    /// Calls in flight, over all functions.
    pub fn in_flight(&self) -> u64 {
        self.functions
            .read()
            .values()
            .map(|c| u64::from(c.in_flight.load(Ordering::Acquire)))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> FunctionName {
        FunctionName::new(s).expect("name")
    }

    #[test]
    fn reservations_are_exact() {
        let c = Concurrency::new(1000, [(name("r"), 3)]);
        let permits: Vec<_> = (0..3)
            .map(|_| c.acquire(&name("r")).expect("slot"))
            .collect();
        assert_eq!(
            c.acquire(&name("r")).err(),
            Some(Throttle::Reserved { limit: 3 })
        );
        drop(permits);
        assert!(c.acquire(&name("r")).is_ok());
        assert_eq!(c.unreserved_limit(), 997);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn the_unreserved_pool_is_shared() {
        let c = Concurrency::new(150, [(name("big"), 48)]);
        let held: Vec<_> = (0..102)
            .map(|i| c.acquire(&name(&format!("f{}", i % 3))).expect("slot"))
            .collect();
        assert_eq!(
            c.acquire(&name("f0")).err(),
            Some(Throttle::Account { limit: 102 })
        );
        assert!(
            c.acquire(&name("big")).is_ok(),
            "the reservation is kept apart"
        );
        drop(held);
    }

    #[test]
    fn zero_reserved_stops_a_function() {
        let c = Concurrency::new(1000, []);
        c.set_reservation(&name("off"), Some(0));
        assert!(c.acquire(&name("off")).is_err());
        c.set_reservation(&name("off"), None);
        assert!(c.acquire(&name("off")).is_ok());
    }

    #[test]
    fn reservations_leave_the_minimum() {
        let c = Concurrency::new(1000, [(name("a"), 800)]);
        assert!(c.check_reservation(&name("b"), 100).is_ok());
        let e = c.check_reservation(&name("b"), 101).expect_err("too much");
        assert_eq!(e.max, 100);
        assert!(
            c.check_reservation(&name("a"), 900).is_ok(),
            "its own reservation is replaced"
        );
    }
}
