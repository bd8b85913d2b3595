//! Aliases: a name that points at a version, optionally splitting traffic with a second one, and
//! the function URL configurations that expose a function (or one of its aliases) over HTTP.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_ADDITIONAL_VERSIONS;
use crate::name::{AliasName, FunctionName, Qualifier};

/// Why an alias or a function URL configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AliasError {
    /// a weight outside 0..=1
    #[error("routing weight {0} for version {1} is out of range; use a number from 0.0 to 1.0")]
    BadWeight(f64, u32),
    /// more additional versions than allowed
    #[error("an alias can route to at most {MAX_ADDITIONAL_VERSIONS} additional version; got {0}")]
    TooManyVersions(usize),
    /// weighted routing that names the alias's own version
    #[error(
        "version {0} is the alias's main version; AdditionalVersionWeights must name a different one"
    )]
    SameVersion(u32),
    /// weighted routing involving `$LATEST`
    #[error("weighted routing needs published versions on both sides; publish $LATEST first")]
    NeedsPublishedVersions,
    /// an additional version that is not a number
    #[error("{0:?} in AdditionalVersionWeights is not a published version number")]
    BadVersion(String),
    /// an auth type that is neither NONE nor AWS_IAM
    #[error("AuthType {0:?} is invalid; use NONE (public) or AWS_IAM (signed or bearer requests)")]
    BadAuthType(String),
    /// a function URL for a version number (Lambda allows `$LATEST` or an alias only)
    #[error("a function URL can point at $LATEST or an alias, not at version {0}")]
    UrlOnVersion(u32),
}

/// An alias of a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alias {
    /// The function.
    pub function: FunctionName,
    /// The alias.
    pub name: AliasName,
    /// The version that takes the traffic not routed elsewhere.
    pub version: Qualifier,
    /// Free text.
    pub description: String,
    /// Published versions that take a share of the calls, with the share (0..=1).
    pub additional_weights: BTreeMap<u32, f64>,
    /// Changes on every update.
    pub revision_id: String,
}

impl Alias {
    /// Checks the routing configuration.
    pub fn validate(&self) -> Result<(), AliasError> {
        validate_routing(self.version, &self.additional_weights)
    }

    /// The version a call goes to, given `r`, a uniform random number in `0..1`: the additional
    /// versions take their shares from the bottom of the range, the main version the rest.
    pub fn pick(&self, r: f64) -> Qualifier {
        let mut acc = 0.0;
        for (version, weight) in &self.additional_weights {
            acc += weight;
            if r < acc {
                return Qualifier::Version(*version);
            }
        }
        self.version
    }
}

/// Parses Lambda's `AdditionalVersionWeights` (`{"2": 0.25}`) into version numbers.
pub fn parse_weights(raw: &BTreeMap<String, f64>) -> Result<BTreeMap<u32, f64>, AliasError> {
    raw.iter()
        .map(|(k, w)| match k.parse::<u32>() {
            Ok(n) if n >= 1 && k.bytes().all(|b| b.is_ascii_digit()) => Ok((n, *w)),
            _ => Err(AliasError::BadVersion(k.clone())),
        })
        .collect()
}

/// Checks `weights` against `main`.
pub fn validate_routing(main: Qualifier, weights: &BTreeMap<u32, f64>) -> Result<(), AliasError> {
    if weights.len() > MAX_ADDITIONAL_VERSIONS {
        return Err(AliasError::TooManyVersions(weights.len()));
    }
    if weights.is_empty() {
        return Ok(());
    }
    let Qualifier::Version(main) = main else {
        return Err(AliasError::NeedsPublishedVersions);
    };
    for (version, weight) in weights {
        if !(0.0..=1.0).contains(weight) || weight.is_nan() {
            return Err(AliasError::BadWeight(*weight, *version));
        }
        if *version == main {
            return Err(AliasError::SameVersion(main));
        }
    }
    Ok(())
}

/// Who may call a function URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UrlAuthType {
    /// Anyone (Lambda's `NONE`).
    #[serde(rename = "NONE")]
    None,
    /// Callers with a lambent access key, as a SigV4 signature or a bearer token (Lambda's
    /// `AWS_IAM`).
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

impl UrlAuthType {
    /// Lambda's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlAuthType::None => "NONE",
            UrlAuthType::AwsIam => "AWS_IAM",
        }
    }
}

impl std::str::FromStr for UrlAuthType {
    type Err = AliasError;
    fn from_str(s: &str) -> Result<Self, AliasError> {
        match s {
            "NONE" => Ok(UrlAuthType::None),
            "AWS_IAM" => Ok(UrlAuthType::AwsIam),
            other => Err(AliasError::BadAuthType(other.to_owned())),
        }
    }
}

/// A function URL configuration (Lambda's `FunctionUrlConfig`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionUrlConfig {
    /// The function.
    pub function: FunctionName,
    /// `None` for the unqualified function (`$LATEST`), or the alias the URL calls.
    pub alias: Option<AliasName>,
    /// Who may call it.
    pub auth_type: UrlAuthType,
    /// Lambda's `Cors` object, kept as given and applied to responses.
    pub cors: Option<serde_json::Value>,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339.
    pub last_modified: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(weights: &[(u32, f64)]) -> Alias {
        Alias {
            function: FunctionName::new("f").expect("name"),
            name: AliasName::new("live").expect("alias"),
            version: Qualifier::Version(1),
            description: String::new(),
            additional_weights: weights.iter().copied().collect(),
            revision_id: String::new(),
        }
    }

    #[test]
    fn weights_split_the_range() {
        let a = alias(&[(2, 0.25)]);
        assert_eq!(a.pick(0.0), Qualifier::Version(2));
        assert_eq!(a.pick(0.2499), Qualifier::Version(2));
        assert_eq!(a.pick(0.25), Qualifier::Version(1));
        assert_eq!(a.pick(0.99), Qualifier::Version(1));
        assert_eq!(alias(&[]).pick(0.0), Qualifier::Version(1));
    }

    #[test]
    fn routing_is_checked() {
        assert!(alias(&[(2, 0.5)]).validate().is_ok());
        assert_eq!(
            alias(&[(1, 0.5)]).validate(),
            Err(AliasError::SameVersion(1))
        );
        assert!(matches!(
            alias(&[(2, 1.5)]).validate(),
            Err(AliasError::BadWeight(..))
        ));
        assert!(matches!(
            alias(&[(2, 0.1), (3, 0.1)]).validate(),
            Err(AliasError::TooManyVersions(2))
        ));
        let mut latest = alias(&[(2, 0.1)]);
        latest.version = Qualifier::Latest;
        assert_eq!(latest.validate(), Err(AliasError::NeedsPublishedVersions));
        let raw: BTreeMap<String, f64> = [("x".to_owned(), 0.1)].into_iter().collect();
        assert!(parse_weights(&raw).is_err());
        assert_eq!("NONE".parse::<UrlAuthType>(), Ok(UrlAuthType::None));
        assert!("none".parse::<UrlAuthType>().is_err());
    }
}
