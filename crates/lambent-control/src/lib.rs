//! The control plane of one node: deploys (validate, compile, store, all or nothing), versions,
//! and the invocation path (resolve the version, take its prepared code, run it, record it).
//!
//! It owns the metadata store, the code store and the executors (wasm and process), and keeps two caches in
//! front of them so that the invocation path touches neither SQLite nor the disk once a version is
//! warm. It does not speak HTTP: the `lambent-api` crate maps requests and errors onto it.
//! Counting, placement and the autoscaler will join it here.

#![forbid(unsafe_code)]

pub mod assignment;
pub mod auth;
pub mod concurrency;
pub mod data_dir;
mod events;
pub mod keepalive;
pub mod meter;
mod platform;
mod provisioned;
mod queues;
pub mod recorder;
mod routing;
mod schedules;

pub use assignment::DEFAULT_KEEP_ALIVE;
pub use events::{Clock, EventRequest, EventStats, EventsConfig};
pub use lambent_sandbox::{
    DEFAULT_MAX_SANDBOXES, DEFAULT_UID_BASE, HELPER_ARG, PackageError, helper_main,
};
pub use lambent_store::events::{
    Enqueued, Event, EventState, Message, QueueCounts, QueueRow, ScheduleRow, TriggerRow,
};
pub use lambent_wasm::DEFAULT_MAX_INSTANCES;
pub use lambent_wasm::{BodyError, InvokeError, ResponseBody};
pub use platform::{
    ControlError, InvokeFailure, InvokeOptions, MAX_ADMISSION_WAIT, Platform, PlatformConfig,
    PlatformStats, Served,
};
pub use provisioned::{ProvisionedConfig, ProvisionedSchedule};
pub use queues::{MAX_SEND_BATCH, QueueSpec, Redriven, TriggerSpec};
pub use routing::{AccountSettings, AliasUpdate};
pub use schedules::{MAX_SCHEDULE_INPUT_BYTES, ScheduleSpec};
