//! A function's own scaling settings: how many calls one instance serves at once, and how long
//! an idle instance is kept.

use std::time::Duration;

use crate::RuntimeFamily;

/// Most calls one instance may serve at once (Cloud Run's maximum).
pub const MAX_INSTANCE_CONCURRENCY: u32 = 1000;
/// Longest fixed keep-alive a function may ask for.
pub const MAX_KEEP_ALIVE: Duration = Duration::from_secs(24 * 3600);

/// How long idle instances of a function are kept, when it does not follow the platform's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveSetting {
    /// Kept for this long after each call (zero: stopped as soon as the call ends).
    Fixed(Duration),
    /// Learnt from the function's idle times (the platform's keep-alive is the fallback).
    Adaptive,
}

/// A function's scaling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScalingConfig {
    /// Calls one instance serves at once.
    pub instance_concurrency: u32,
    /// Its own keep-alive, or `None` for the platform's.
    pub keep_alive: Option<KeepAliveSetting>,
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            instance_concurrency: 1,
            keep_alive: None,
        }
    }
}

/// Why scaling settings were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScalingError {
    /// out of range
    #[error("instanceConcurrency must be 1 to {MAX_INSTANCE_CONCURRENCY}; {0} is not")]
    InstanceConcurrency(u32),
    /// a Runtime API function takes one event at a time
    #[error(
        "instanceConcurrency above 1 is for WebAssembly functions: a {0} function speaks the Lambda Runtime API, which hands each instance one event at a time"
    )]
    NotConcurrent(&'static str),
    /// too long
    #[error("keepAlive seconds must be 0 to {max}; {0} is not", max = MAX_KEEP_ALIVE.as_secs())]
    KeepAlive(u64),
}

impl ScalingConfig {
    /// Checks the settings for a function of `family`.
    pub fn check(&self, family: RuntimeFamily) -> Result<(), ScalingError> {
        if !(1..=MAX_INSTANCE_CONCURRENCY).contains(&self.instance_concurrency) {
            return Err(ScalingError::InstanceConcurrency(self.instance_concurrency));
        }
        if self.instance_concurrency > 1 {
            match family {
                RuntimeFamily::Wasm => {}
                RuntimeFamily::Python => return Err(ScalingError::NotConcurrent("Python")),
                RuntimeFamily::Node => return Err(ScalingError::NotConcurrent("Node.js")),
                RuntimeFamily::Provided => return Err(ScalingError::NotConcurrent("provided")),
            }
        }
        if let Some(KeepAliveSetting::Fixed(d)) = self.keep_alive
            && d > MAX_KEEP_ALIVE
        {
            return Err(ScalingError::KeepAlive(d.as_secs()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_against_the_runtime() {
        let many = ScalingConfig {
            instance_concurrency: 80,
            keep_alive: None,
        };
        assert_eq!(many.check(RuntimeFamily::Wasm), Ok(()));
        assert_eq!(
            many.check(RuntimeFamily::Python),
            Err(ScalingError::NotConcurrent("Python"))
        );
        let zero = ScalingConfig {
            instance_concurrency: 0,
            keep_alive: None,
        };
        assert_eq!(
            zero.check(RuntimeFamily::Wasm),
            Err(ScalingError::InstanceConcurrency(0))
        );
        let long = ScalingConfig {
            instance_concurrency: 1,
            keep_alive: Some(KeepAliveSetting::Fixed(
                MAX_KEEP_ALIVE + Duration::from_secs(1),
            )),
        };
        assert!(long.check(RuntimeFamily::Python).is_err());
        assert_eq!(ScalingConfig::default().check(RuntimeFamily::Node), Ok(()));
    }
}
