//! lambent's embedded storage for one machine: function metadata and invocation records in a
//! SQLite file, and code in a content-addressed, zstd-compressed file store.
//!
//! It does not decide anything: validation happens before data reaches it, and it knows nothing
//! of executors. The NATS JetStream backends for a fleet will sit beside these ones.

#![forbid(unsafe_code)]

pub mod code;
pub mod events;
pub mod metadata;
pub mod registry;
pub mod routing;

pub use code::{CodeStore, CodeStoreError};
pub use events::{EventStore, EventStoreError, SqliteEventStore};
pub use metadata::{MetadataError, SqliteMetadataStore, UsageGroup, UsageGroupSums, UsageQuery};
pub use registry::{
    FunctionStore, InvocationStore, KeyStore, MetadataStore, Publish, RoutingStore,
};
pub use routing::{AccessKeyRow, AccountUsage, ProvisionedScheduleRow};
