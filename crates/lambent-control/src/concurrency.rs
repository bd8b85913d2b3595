//! Counting: how many calls each function has in flight, against its reserved concurrency or the
//! account's unreserved pool (Lambda's model). Taking a permit is two atomic operations under a
//! read lock; the permit gives its slot back when dropped, which for a wasm call is when the guest
//! has finished, not when the response head was sent.
//!
//! Admission queueing: a function may let a refused call wait (up to its `max_wait`) for a slot
//! instead of getting a 429 at once. Waiters line up first come, first served behind a fair
//! lock per function; only the head of the line watches for released slots, and a new call
//! does not overtake a waiting one. A released slot wakes waiters only when there are any, so
//! the common path pays one relaxed load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use lambent_core::limits::MIN_UNRESERVED_CONCURRENCY;
use lambent_core::{FunctionName, Throttle};
use parking_lot::RwLock;
use tokio::sync::Notify;

/// No reservation.
const UNRESERVED: u32 = u32::MAX;

/// No admission wait of the function's own: the account default applies.
const NO_WAIT_SET: u32 = u32::MAX;

#[derive(Debug)]
struct FunctionCounter {
    in_flight: AtomicU32,
    reserved: AtomicU32,
    /// The function's own admission wait in ms, or [`NO_WAIT_SET`].
    max_wait_ms: AtomicU32,
    /// Calls waiting for a slot.
    waiting: AtomicU32,
    /// Waiters line up here, in arrival order (tokio's mutex is fair).
    line: tokio::sync::Mutex<()>,
    /// Rung when a slot of this function is released and someone waits.
    released: Notify,
}

impl FunctionCounter {
    fn new(reserved: Option<u32>) -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            reserved: AtomicU32::new(reserved.unwrap_or(UNRESERVED)),
            max_wait_ms: AtomicU32::new(NO_WAIT_SET),
            waiting: AtomicU32::new(0),
            line: tokio::sync::Mutex::new(()),
            released: Notify::new(),
        }
    }
}

/// Counts a call as waiting for as long as it lives.
struct Waiting<'a>(&'a AtomicU32, &'a AtomicU32);

impl<'a> Waiting<'a> {
    fn new(function: &'a AtomicU32, pool: &'a AtomicU32) -> Self {
        function.fetch_add(1, Ordering::AcqRel);
        pool.fetch_add(1, Ordering::AcqRel);
        Self(function, pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        self.1.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The shared pool's counter and its waiters.
#[derive(Debug, Default)]
struct Pool {
    in_flight: AtomicU32,
    waiting: AtomicU32,
    released: Notify,
}

/// The account's counters.
#[derive(Debug)]
pub struct Concurrency {
    account_limit: u32,
    /// Calls in flight of functions without a reservation.
    unreserved: Arc<Pool>,
    /// The admission wait of functions without one of their own, in ms.
    default_wait_ms: AtomicU32,
    /// Sum of all reservations.
    reserved_total: AtomicU32,
    functions: RwLock<HashMap<FunctionName, Arc<FunctionCounter>>>,
}

/// A slot taken by one call; dropping it gives the slot back.
#[derive(Debug)]
pub struct Permit {
    function: Arc<FunctionCounter>,
    pool: Option<Arc<Pool>>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.function.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.function.waiting.load(Ordering::Acquire) > 0 {
            self.function.released.notify_waiters();
        }
        if let Some(pool) = &self.pool {
            pool.in_flight.fetch_sub(1, Ordering::AcqRel);
            if pool.waiting.load(Ordering::Acquire) > 0 {
                pool.released.notify_waiters();
            }
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
            unreserved: Arc::default(),
            default_wait_ms: AtomicU32::new(0),
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
        let pool = self.unreserved.clone();
        if pool.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            pool.in_flight.fetch_sub(1, Ordering::AcqRel);
            function.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(Throttle::Account { limit });
        }
        Ok(Permit {
            function,
            pool: Some(pool),
        })
    }

    /// The admission wait of `name`: its own, or the account default.
    pub fn max_wait(&self, name: &FunctionName) -> Duration {
        let own = self
            .functions
            .read()
            .get(name)
            .map_or(NO_WAIT_SET, |c| c.max_wait_ms.load(Ordering::Relaxed));
        let ms = if own == NO_WAIT_SET {
            self.default_wait_ms.load(Ordering::Relaxed)
        } else {
            own
        };
        Duration::from_millis(u64::from(ms))
    }

    /// `name`'s own admission wait, if it has one.
    pub fn own_max_wait(&self, name: &FunctionName) -> Option<Duration> {
        let own = self
            .functions
            .read()
            .get(name)
            .map_or(NO_WAIT_SET, |c| c.max_wait_ms.load(Ordering::Relaxed));
        (own != NO_WAIT_SET).then(|| Duration::from_millis(u64::from(own)))
    }

    /// Sets (or with `None` clears) `name`'s own admission wait.
    pub fn set_max_wait(&self, name: &FunctionName, wait: Option<Duration>) {
        let ms = wait.map_or(NO_WAIT_SET, |w| {
            u32::try_from(w.as_millis()).unwrap_or(NO_WAIT_SET - 1)
        });
        self.counter(name).max_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// Sets the admission wait of functions without one of their own.
    pub fn set_default_wait(&self, wait: Duration) {
        let ms = u32::try_from(wait.as_millis()).unwrap_or(NO_WAIT_SET - 1);
        self.default_wait_ms.store(ms, Ordering::Relaxed);
    }

    /// Takes a slot for one call of `name`, waiting up to the function's admission wait, in
    /// arrival order, when a limit is reached; the limit's error if none frees in time.
    pub async fn acquire_waiting(&self, name: &FunctionName) -> Result<Permit, Throttle> {
        let function = self.counter(name);
        // Nobody waits: the fast path. Someone waits: a new call lines up behind them.
        if function.waiting.load(Ordering::Acquire) == 0 {
            match self.acquire(name) {
                Ok(p) => return Ok(p),
                Err(t) if self.max_wait(name).is_zero() => return Err(t),
                Err(_) => {}
            }
        }
        let wait = self.max_wait(name);
        if wait.is_zero() {
            return self.acquire(name);
        }
        let deadline = tokio::time::Instant::now() + wait;
        let pool = self.unreserved.clone();
        // Counted while waiting, and uncounted even if the caller goes away mid-wait.
        let _waiting = Waiting::new(&function.waiting, &pool.waiting);
        self.wait_in_line(name, &function, &pool, deadline).await
    }

    async fn wait_in_line(
        &self,
        name: &FunctionName,
        function: &FunctionCounter,
        pool: &Pool,
        deadline: tokio::time::Instant,
    ) -> Result<Permit, Throttle> {
        let Ok(_head) = tokio::time::timeout_at(deadline, function.line.lock()).await else {
            return self.acquire(name);
        };
        loop {
            // Listen before trying, so a slot released in between is not missed.
            let mine = function.released.notified();
            let shared = pool.released.notified();
            tokio::pin!(mine, shared);
            mine.as_mut().enable();
            shared.as_mut().enable();
            match self.acquire(name) {
                Ok(p) => return Ok(p),
                Err(t) => {
                    let woken = tokio::time::timeout_at(deadline, async {
                        tokio::select! {
                            () = &mut mine => {}
                            () = &mut shared => {}
                        }
                    })
                    .await;
                    if woken.is_err() {
                        return self.acquire(name).map_err(|_| t);
                    }
                }
            }
        }
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
        self.set_max_wait(name, None);
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

    #[tokio::test]
    async fn waiting_calls_get_released_slots_in_arrival_order() {
        let c = Arc::new(Concurrency::new(1000, [(name("q"), 1)]));
        c.set_max_wait(&name("q"), Some(Duration::from_secs(30)));
        let held = c.acquire(&name("q")).expect("slot");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for i in 0..3 {
            let (c2, tx) = (c.clone(), tx.clone());
            tokio::spawn(async move {
                let permit = c2.acquire_waiting(&name("q")).await.expect("waited");
                tx.send(i).expect("send");
                // Hold the slot briefly so the next waiter really has to wait for it.
                tokio::time::sleep(Duration::from_millis(20)).await;
                drop(permit);
            });
            // Let each waiter take its place in the line before the next arrives.
            while c.counter(&name("q")).waiting.load(Ordering::Acquire) < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        let order: Vec<u32> = vec![
            rx.recv().await.expect("first"),
            rx.recv().await.expect("second"),
            rx.recv().await.expect("third"),
        ];
        assert_eq!(order, [0, 1, 2]);
    }

    #[tokio::test]
    async fn a_wait_that_runs_out_is_throttled_and_no_wait_is_instant() {
        let c = Concurrency::new(1000, [(name("q"), 1)]);
        let _held = c.acquire(&name("q")).expect("slot");
        assert_eq!(
            c.acquire_waiting(&name("q")).await.err(),
            Some(Throttle::Reserved { limit: 1 }),
            "no wait configured: refused at once"
        );
        c.set_default_wait(Duration::from_millis(30));
        assert_eq!(c.max_wait(&name("q")), Duration::from_millis(30));
        assert!(c.acquire_waiting(&name("q")).await.is_err());
        assert_eq!(c.counter(&name("q")).waiting.load(Ordering::Acquire), 0);
        c.set_max_wait(&name("q"), Some(Duration::ZERO));
        assert_eq!(
            c.max_wait(&name("q")),
            Duration::ZERO,
            "its own setting wins"
        );
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_leaves_the_line() {
        let c = Concurrency::new(1000, [(name("q"), 1)]);
        c.set_max_wait(&name("q"), Some(Duration::from_secs(30)));
        let held = c.acquire(&name("q")).expect("slot");
        // The caller disconnects while waiting: its future is dropped.
        let gave_up =
            tokio::time::timeout(Duration::from_millis(20), c.acquire_waiting(&name("q"))).await;
        assert!(gave_up.is_err());
        assert_eq!(c.counter(&name("q")).waiting.load(Ordering::Acquire), 0);
        assert_eq!(c.unreserved.waiting.load(Ordering::Acquire), 0);
        drop(held);
        assert!(
            c.acquire_waiting(&name("q")).await.is_ok(),
            "the fast path is back"
        );
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
