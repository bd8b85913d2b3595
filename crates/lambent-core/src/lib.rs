//! Domain types of lambent: function names and qualifiers, runtimes, function configuration and
//! its limits, and the records of invocations.
//!
//! This crate does no I/O (beyond reading the system clock in [`clock`]). Every limit and default is a named constant next to what it limits, and
//! user input becomes a runtime type only through the validating constructors here, so that the
//! rest of the platform never sees an unchecked name, runtime or setting.

#![forbid(unsafe_code)]

pub mod access;
pub mod alias;
pub mod arn;
pub mod budget;
pub mod clock;
pub mod event;
pub mod framing;
pub mod function;
pub mod invocation;
pub mod limits;
pub mod name;
pub mod scaling;
pub mod schedule;
pub mod sigv4;

pub use access::{Action, KeyRole, RoleError};
pub use alias::{Alias, AliasError, FunctionUrlConfig, UrlAuthType};
pub use arn::FunctionArn;
pub use budget::{MemoryBudget, MemoryReservation};
pub use clock::now_ms;
pub use event::{Destination, EventConfigError, EventInvokeConfig, QueueName, ScheduleName};
pub use function::{
    ConfigError, FunctionConfig, FunctionCreate, FunctionUpdate, FunctionVersion, NodeName,
    ProvidedName, PythonName, Runtime, RuntimeFamily,
};
pub use invocation::{
    DEFAULT_TENANT, InvocationOutcome, InvocationRecord, InvokeError, Throttle, UsageRow,
    UsageSums, billed_ms, gb_seconds,
};
pub use name::{AliasName, FunctionName, NameError, Qualifier, Selector, Target};
pub use scaling::{KeepAliveSetting, ScalingConfig, ScalingError};
