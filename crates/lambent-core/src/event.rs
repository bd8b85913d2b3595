//! Asynchronous invocation settings: event invoke configurations (retries, maximum age,
//! destinations), and the names of queues and schedules.

use std::fmt;

use crate::arn::FunctionArn;
use crate::name::{FunctionName, Selector};

/// Retries after a failed asynchronous run, at most (Lambda's range is 0-2).
pub const MAX_RETRY_ATTEMPTS: u32 = 2;
/// Retries by default.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Smallest maximum event age.
pub const MIN_EVENT_AGE_S: u32 = 60;
/// Largest (and default) maximum event age: 6 hours.
pub const MAX_EVENT_AGE_S: u32 = 6 * 3600;
/// Longest queue or schedule name.
pub const MAX_QUEUE_NAME_CHARS: usize = 80;
/// Longest schedule name (EventBridge's rule name limit).
pub const MAX_SCHEDULE_NAME_CHARS: usize = 64;
/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 256;
/// Most messages per queue-trigger call (Lambda's SQS limit).
pub const MAX_BATCH_SIZE: u32 = 10_000;
/// Messages per queue-trigger call by default.
pub const DEFAULT_BATCH_SIZE: u32 = 10;
/// Longest batching window.
pub const MAX_BATCH_WINDOW_S: u32 = 300;
/// Largest queue message.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Default visibility timeout of a queue.
pub const DEFAULT_VISIBILITY_S: u32 = 30;
/// Longest visibility timeout (SQS's 12 hours).
pub const MAX_VISIBILITY_S: u32 = 12 * 3600;

/// A refused asynchronous setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventConfigError {
    /// retries out of range
    #[error("MaximumRetryAttempts must be between 0 and {MAX_RETRY_ATTEMPTS}, got {0}")]
    RetryAttempts(i64),
    /// event age out of range
    #[error(
        "MaximumEventAgeInSeconds must be between {MIN_EVENT_AGE_S} and {MAX_EVENT_AGE_S}, got {0}"
    )]
    EventAge(i64),
    /// a destination that is not a function or a queue
    #[error(
        "destination {0:?} is not a function or a queue; use arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER], arn:aws:sqs:REGION:ACCOUNT:QUEUE, function:NAME[:QUALIFIER] or queue:NAME"
    )]
    Destination(String),
    /// a bad queue or schedule name
    #[error("{what} name {name:?} is invalid: use 1 to {max} letters, digits, '-' and '_'")]
    Name {
        /// queue or schedule
        what: &'static str,
        /// the name given
        name: String,
        /// its longest form
        max: usize,
    },
}

/// Where an invocation record goes after an asynchronous run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// Another function, invoked asynchronously with the record as its event.
    Function {
        /// the function
        name: FunctionName,
        /// its version or alias
        qualifier: Selector,
    },
    /// A lambent queue (a dead-letter queue, or one a trigger consumes).
    Queue(QueueName),
}

impl Destination {
    /// Parses a Lambda destination ARN (`arn:aws:lambda:…:function:NAME[:Q]`,
    /// `arn:aws:sqs:…:QUEUE`) or lambent's short forms `function:NAME[:Q]` and `queue:NAME`.
    pub fn parse(s: &str) -> Result<Self, EventConfigError> {
        let bad = || EventConfigError::Destination(s.to_owned());
        if let Some(arn) = FunctionArn::parse(s) {
            return Ok(Self::Function {
                name: FunctionName::new(arn.name).map_err(|_| bad())?,
                qualifier: match arn.qualifier {
                    Some(q) => q.parse().map_err(|_| bad())?,
                    None => Selector::default(),
                },
            });
        }
        let parts: Vec<&str> = s.split(':').collect();
        let (kind, rest): (&str, &[&str]) = match parts.as_slice() {
            ["arn", _, "lambda", ..] => return Err(bad()),
            ["arn", _, "sqs", _, _, queue] => ("queue", std::slice::from_ref(queue)),
            ["function", rest @ ..] => ("function", rest),
            ["queue", queue] => ("queue", std::slice::from_ref(queue)),
            _ => return Err(bad()),
        };
        match (kind, rest) {
            ("queue", [q]) => Ok(Self::Queue(QueueName::new(q)?)),
            ("function", [name]) => Ok(Self::Function {
                name: FunctionName::new(name).map_err(|_| bad())?,
                qualifier: Selector::default(),
            }),
            ("function", [name, q]) => Ok(Self::Function {
                name: FunctionName::new(name).map_err(|_| bad())?,
                qualifier: q.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }

    /// The ARN Lambda clients expect back.
    pub fn arn(&self, region: &str, account: &str) -> String {
        match self {
            Self::Function { name, qualifier } => {
                let q = qualifier.to_string();
                FunctionArn {
                    region,
                    account,
                    name: name.as_str(),
                    qualifier: match qualifier {
                        Selector::Version(crate::Qualifier::Latest) => None,
                        _ => Some(&q),
                    },
                }
                .to_string()
            }
            Self::Queue(q) => format!("arn:aws:sqs:{region}:{account}:{q}"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Function {
                name,
                qualifier: Selector::Version(crate::Qualifier::Latest),
            } => write!(f, "function:{name}"),
            Self::Function { name, qualifier } => write!(f, "function:{name}:{qualifier}"),
            Self::Queue(q) => write!(f, "queue:{q}"),
        }
    }
}

/// How asynchronous invocations of a function (version or alias) are retried and where their
/// records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInvokeConfig {
    /// Retries after a failed run: 0-2.
    pub max_retry_attempts: u32,
    /// Oldest an event may be when it runs, in seconds: 60 to 21600.
    pub max_event_age_s: u32,
    /// Where records of successful runs go.
    pub on_success: Option<Destination>,
    /// Where records of failed events go.
    pub on_failure: Option<Destination>,
}

impl Default for EventInvokeConfig {
    fn default() -> Self {
        Self {
            max_retry_attempts: DEFAULT_RETRY_ATTEMPTS,
            max_event_age_s: MAX_EVENT_AGE_S,
            on_success: None,
            on_failure: None,
        }
    }
}

impl EventInvokeConfig {
    /// Checks a retry count given by a caller.
    pub fn retry_attempts(n: i64) -> Result<u32, EventConfigError> {
        u32::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_RETRY_ATTEMPTS)
            .ok_or(EventConfigError::RetryAttempts(n))
    }

    /// Checks a maximum age given by a caller.
    pub fn event_age(n: i64) -> Result<u32, EventConfigError> {
        u32::try_from(n)
            .ok()
            .filter(|n| (MIN_EVENT_AGE_S..=MAX_EVENT_AGE_S).contains(n))
            .ok_or(EventConfigError::EventAge(n))
    }
}

fn check_name(what: &'static str, name: &str, max: usize) -> Result<(), EventConfigError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EventConfigError::Name {
            what,
            name: name.to_owned(),
            max,
        })
    }
}

/// A lambent queue's name: 1-80 letters, digits, `-` and `_` (as SQS).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// Validates a queue name.
    pub fn new(name: &str) -> Result<Self, EventConfigError> {
        check_name("queue", name, MAX_QUEUE_NAME_CHARS)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A schedule's name: 1-64 letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScheduleName(String);

impl ScheduleName {
    /// Validates a schedule name.
    pub fn new(name: &str) -> Result<Self, EventConfigError> {
        check_name("schedule", name, MAX_SCHEDULE_NAME_CHARS)?;
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScheduleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_from_arns_and_short_forms() {
        let f = Destination::parse("arn:aws:lambda:us-east-1:000000000000:function:sink:prod")
            .expect("function arn");
        assert_eq!(f.to_string(), "function:sink:prod");
        assert_eq!(
            f.arn("eu-west-1", "1"),
            "arn:aws:lambda:eu-west-1:1:function:sink:prod"
        );
        let q = Destination::parse("arn:aws:sqs:us-east-1:000000000000:dlq").expect("sqs arn");
        assert_eq!(q, Destination::Queue(QueueName::new("dlq").expect("name")));
        assert_eq!(
            Destination::parse("function:sink")
                .expect("short")
                .arn("r", "a"),
            "arn:aws:lambda:r:a:function:sink"
        );
        for bad in [
            "",
            "sink",
            "queue:",
            "queue:a b",
            "arn:aws:sns:us-east-1:1:topic",
            "function:bad name",
            "function:a:b:c",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn limits_are_lambdas() {
        assert_eq!(EventInvokeConfig::retry_attempts(2), Ok(2));
        assert!(EventInvokeConfig::retry_attempts(3).is_err());
        assert!(EventInvokeConfig::retry_attempts(-1).is_err());
        assert_eq!(EventInvokeConfig::event_age(60), Ok(60));
        assert!(EventInvokeConfig::event_age(59).is_err());
        assert!(EventInvokeConfig::event_age(21601).is_err());
        assert!(QueueName::new(&"q".repeat(81)).is_err());
        assert!(ScheduleName::new("nightly-report_1").is_ok());
    }
}
