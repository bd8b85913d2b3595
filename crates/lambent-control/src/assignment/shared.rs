//! Seats: where a call runs, and what it holds while it runs.
//!
//! A wasm call runs in a fresh store from the pooling allocator (microseconds to make), so a wasm
//! "instance" is the unit that the limits count rather than a long-lived object: it holds one
//! concurrency permit and one reservation of its memory limit from the node's budget. A function
//! with per-instance concurrency N (as on Cloud Run) lets up to N calls share one such instance,
//! its permit and its memory limit (their linear memories together stay within it), so reserved
//! concurrency 3 with N = 10 admits 30 calls at once. The instance goes when its last call ends.
//! Process-tier calls hold a permit alone; their sandbox reserves its own memory.

use std::collections::HashMap;
use std::sync::Arc;

use lambent_core::{FunctionName, MemoryReservation};
use lambent_wasm::SharedMemory;
use parking_lot::{Mutex, RwLock};

use crate::concurrency::Permit;

/// What a call holds while it runs; dropping it gives everything back.
#[derive(Debug)]
pub(crate) enum Seat {
    /// Alone on its instance.
    Own {
        _permit: Permit,
        /// The wasm instance's memory (process sandboxes reserve their own).
        _memory: Option<MemoryReservation>,
    },
    /// On an instance shared with other calls.
    Shared(SharedSeat),
}

impl Seat {
    /// The memory this call shares with the others on its instance, if it shares one.
    pub(crate) fn shared_memory(&self) -> Option<Arc<SharedMemory>> {
        match self {
            Seat::Own { .. } => None,
            Seat::Shared(s) => Some(s.memory.clone()),
        }
    }
}

/// One shared instance.
#[derive(Debug)]
struct Unit {
    id: u64,
    active: u32,
    memory: Arc<SharedMemory>,
    _permit: Permit,
    _memory: MemoryReservation,
}

#[derive(Debug, Default)]
struct Units {
    next_id: u64,
    list: Vec<Unit>,
}

type UnitList = Arc<Mutex<Units>>;

/// A call's place on a shared instance.
#[derive(Debug)]
pub(crate) struct SharedSeat {
    units: UnitList,
    id: u64,
    memory: Arc<SharedMemory>,
}

impl Drop for SharedSeat {
    fn drop(&mut self) {
        let gone = {
            let mut units = self.units.lock();
            let Some(i) = units.list.iter().position(|u| u.id == self.id) else {
                return;
            };
            units.list[i].active -= 1;
            (units.list[i].active == 0).then(|| units.list.swap_remove(i))
        };
        // The last call out gives the instance's permit and memory back.
        drop(gone);
    }
}

/// The shared wasm instances of every function version (by revision).
#[derive(Debug, Default)]
pub(crate) struct SharedInstances {
    versions: RwLock<HashMap<(FunctionName, String), UnitList>>,
}

impl SharedInstances {
    fn units(&self, function: &FunctionName, revision: &str) -> UnitList {
        let key = (function.clone(), revision.to_owned());
        if let Some(u) = self.versions.read().get(&key) {
            return u.clone();
        }
        self.versions.write().entry(key).or_default().clone()
    }

    /// A seat on an instance of this version that serves fewer than `per_instance` calls.
    /// The fullest such instance is chosen, so that calls pack onto few instances and the others
    /// drain and go.
    pub(crate) fn join(
        &self,
        function: &FunctionName,
        revision: &str,
        per_instance: u32,
    ) -> Option<Seat> {
        let units = self.units(function, revision);
        let mut guard = units.lock();
        let unit = guard
            .list
            .iter_mut()
            .filter(|u| u.active < per_instance)
            .max_by_key(|u| u.active)?;
        unit.active += 1;
        let (id, memory) = (unit.id, unit.memory.clone());
        drop(guard);
        Some(Seat::Shared(SharedSeat { units, id, memory }))
    }

    /// Starts an instance of this version with the permit and memory it holds, seating one call;
    /// if another call started one with room meanwhile, joins that instead (and gives the permit
    /// and memory back).
    pub(crate) fn start(
        &self,
        function: &FunctionName,
        revision: &str,
        per_instance: u32,
        permit: Permit,
        reservation: MemoryReservation,
        memory_bytes: usize,
    ) -> Seat {
        let units = self.units(function, revision);
        let memory = SharedMemory::new(memory_bytes);
        let id = {
            let mut guard = units.lock();
            if let Some(unit) = guard
                .list
                .iter_mut()
                .filter(|u| u.active < per_instance)
                .max_by_key(|u| u.active)
            {
                unit.active += 1;
                let (id, memory) = (unit.id, unit.memory.clone());
                drop(guard);
                return Seat::Shared(SharedSeat { units, id, memory });
            }
            guard.next_id += 1;
            let id = guard.next_id;
            guard.list.push(Unit {
                id,
                active: 1,
                memory: memory.clone(),
                _permit: permit,
                _memory: reservation,
            });
            id
        };
        Seat::Shared(SharedSeat { units, id, memory })
    }

    /// Shared instances and the calls on them, per function.
    pub(crate) fn by_function(&self) -> HashMap<FunctionName, (u32, u32)> {
        let mut out: HashMap<FunctionName, (u32, u32)> = HashMap::new();
        for ((function, _), units) in self.versions.read().iter() {
            let units = units.lock();
            if units.list.is_empty() {
                continue;
            }
            let entry = out.entry(function.clone()).or_default();
            entry.0 += u32::try_from(units.list.len()).unwrap_or(u32::MAX);
            entry.1 += units.list.iter().map(|u| u.active).sum::<u32>();
        }
        out
    }

    /// Forgets a deleted function's (empty) lists; instances still serving calls finish.
    pub(crate) fn forget(&self, function: &FunctionName) {
        self.versions.write().retain(|(f, _), _| f != function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::Concurrency;
    use lambent_core::MemoryBudget;

    #[test]
    fn calls_share_instances_up_to_the_limit_and_the_last_one_out_frees_it() {
        let name = FunctionName::new("f").expect("name");
        let concurrency = Concurrency::new(1000, [(name.clone(), 2)]);
        let budget = MemoryBudget::new(256);
        let shared = SharedInstances::default();
        let start = || {
            let permit = concurrency.acquire(&name).expect("permit");
            let memory = budget.try_reserve(128).expect("memory");
            shared.start(&name, "r1", 3, permit, memory, 128 << 20)
        };
        let first = start();
        let mut seats = vec![first];
        for _ in 0..2 {
            seats.push(
                shared
                    .join(&name, "r1", 3)
                    .expect("room on the first instance"),
            );
        }
        assert!(
            shared.join(&name, "r1", 3).is_none(),
            "the first instance is full"
        );
        seats.push(start());
        assert_eq!(shared.by_function()[&name], (2, 4));
        assert!(
            concurrency.acquire(&name).is_err(),
            "both reserved slots are instances"
        );
        assert_eq!(budget.free_mb(), 0);
        // Another revision never joins these instances.
        assert!(shared.join(&name, "r2", 3).is_none());
        // The three calls on the first instance end: it goes, with its permit and memory.
        seats.drain(..3);
        assert_eq!(shared.by_function()[&name], (1, 1));
        assert_eq!(budget.free_mb(), 128);
        assert!(concurrency.acquire(&name).is_ok());
        seats.clear();
        assert!(shared.by_function().is_empty());
        assert_eq!(budget.reserved_mb(), 0);
    }
}
