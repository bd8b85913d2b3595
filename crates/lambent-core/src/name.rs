//! Function names, version qualifiers, and `name[:qualifier]` targets.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::limits::{MAX_ALIAS_CHARS, MAX_NAME_CHARS};

/// Why a name, qualifier or target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// function name is empty; give 1 to 64 letters, digits, '-' or '_'
    #[error("function name is empty; give 1 to 64 letters, digits, '-' or '_'")]
    Empty,
    /// function name is too long
    #[error("function name {0:?} is longer than 64 characters")]
    TooLong(String),
    /// function name has a character outside the allowed set
    #[error("function name {name:?} contains {ch:?}; use only letters, digits, '-' and '_'")]
    BadCharacter {
        /// the refused name
        name: String,
        /// the first offending character
        ch: char,
    },
    /// qualifier is neither `$LATEST` nor a version number
    #[error("qualifier {0:?} is neither $LATEST nor a version number (1, 2, ...)")]
    BadQualifier(String),
    /// alias name outside Lambda's rules
    #[error(
        "alias name {0:?} is invalid; use 1 to 128 letters, digits, '-' or '_', not only digits, and not $LATEST"
    )]
    BadAlias(String),
}

/// A validated function name: 1 to 64 of ASCII letters, digits, `-` and `_` (Lambda's rules).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FunctionName(String);

impl FunctionName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(NameError::TooLong(name.to_owned()));
        }
        if let Some(ch) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(NameError::BadCharacter {
                name: name.to_owned(),
                ch,
            });
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FunctionName::new(&s).map_err(serde::de::Error::custom)
    }
}

/// Which version of a function: the mutable `$LATEST` or an immutable published number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Qualifier {
    /// The unpublished, mutable version.
    #[default]
    Latest,
    /// A published, immutable version (1, 2, ...).
    Version(u32),
}

/// The spelling of [`Qualifier::Latest`].
pub const LATEST: &str = "$LATEST";

impl FromStr for Qualifier {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if s == LATEST || s.eq_ignore_ascii_case("latest") {
            return Ok(Qualifier::Latest);
        }
        match s.parse::<u32>() {
            Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(Qualifier::Version(n)),
            _ => Err(NameError::BadQualifier(s.to_owned())),
        }
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Latest => f.write_str(LATEST),
            Qualifier::Version(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Qualifier {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A validated alias name: 1 to 128 of ASCII letters, digits, `-` and `_`, not all digits
/// (Lambda's rules; a number would read as a version).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AliasName(String);

impl AliasName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, NameError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_ALIAS_CHARS
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !name.bytes().all(|b| b.is_ascii_digit());
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(NameError::BadAlias(name.to_owned()))
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a caller names after `name:`: a version (or `$LATEST`), or an alias that points at one or
/// two versions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `$LATEST` or a published number.
    Version(Qualifier),
    /// An alias.
    Alias(AliasName),
}

impl Default for Selector {
    fn default() -> Self {
        Selector::Version(Qualifier::Latest)
    }
}

impl FromStr for Selector {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        if s == LATEST || s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().map(Selector::Version);
        }
        AliasName::new(s).map(Selector::Alias)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Version(q) => q.fmt(f),
            Selector::Alias(a) => a.fmt(f),
        }
    }
}

/// `name` or `name:qualifier`, as used in function URLs and the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// The function.
    pub name: FunctionName,
    /// The version or alias of it.
    pub qualifier: Selector,
}

impl FromStr for Target {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        let (name, qualifier) = match s.split_once(':') {
            Some((name, q)) => (name, q.parse()?),
            None => (s, Selector::default()),
        };
        Ok(Target {
            name: FunctionName::new(name)?,
            qualifier,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_lambda_rules() {
        assert!(FunctionName::new("hello-world_2").is_ok());
        assert_eq!(FunctionName::new(""), Err(NameError::Empty));
        assert!(matches!(
            FunctionName::new("a/b"),
            Err(NameError::BadCharacter { ch: '/', .. })
        ));
        assert!(matches!(
            FunctionName::new("héllo"),
            Err(NameError::BadCharacter { ch: 'é', .. })
        ));
        assert!(FunctionName::new(&"x".repeat(64)).is_ok());
        assert!(matches!(
            FunctionName::new(&"x".repeat(65)),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn qualifiers_and_targets_parse() {
        assert_eq!("$LATEST".parse::<Qualifier>(), Ok(Qualifier::Latest));
        assert_eq!("7".parse::<Qualifier>(), Ok(Qualifier::Version(7)));
        assert!("0".parse::<Qualifier>().is_err());
        assert!("+3".parse::<Qualifier>().is_err());
        assert!("x".parse::<Qualifier>().is_err());
        let t: Target = "hello:3".parse().expect("valid target");
        assert_eq!(t.name.as_str(), "hello");
        assert_eq!(t.qualifier, Selector::Version(Qualifier::Version(3)));
        let t: Target = "hello".parse().expect("valid target");
        assert_eq!(t.qualifier, Selector::Version(Qualifier::Latest));
        let t: Target = "hello:live".parse().expect("valid target");
        assert_eq!(
            t.qualifier,
            Selector::Alias(AliasName::new("live").expect("alias"))
        );
        assert!("hello:0".parse::<Target>().is_err());
        assert!("hello:a.b".parse::<Target>().is_err());
        assert!(AliasName::new(&"a".repeat(129)).is_err());
        assert!(AliasName::new("v1-blue_2").is_ok());
        assert!("bad name:1".parse::<Target>().is_err());
    }
}
