//! Roles of access keys and the classes of action they allow.
//!
//! Every request of both APIs is classified into one [`Action`] (the front end does it, from the
//! route it matched); a key's [`KeyRole`] allows some of them. The roles nest: `admin` may do all
//! that `deploy` may, and `deploy` all that `invoke` may.

use std::fmt;
use std::str::FromStr;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyRole {
    /// Invoke functions and read everything that is not a key.
    Invoke,
    /// What `invoke` may, and create, change and delete functions and their configuration
    /// (aliases, versions, concurrency, URLs, event configurations, schedules, queues).
    Deploy,
    /// Everything, including access keys.
    Admin,
}

/// The class of a request, the least role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Reads (GET): functions, configuration, logs, usage, metrics.
    Read,
    /// Calls of a function, synchronous or asynchronous, and function URLs.
    Invoke,
    /// Changes to functions and their configuration.
    Deploy,
    /// Access keys and the platform's own controls.
    Admin,
}

/// The role names, as the API and the CLI take them.
pub const ROLE_NAMES: [&str; 3] = ["admin", "deploy", "invoke"];

/// A role name that is not one of [`ROLE_NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}; a key's role is admin, deploy or invoke")]
pub struct RoleError(pub String);

impl KeyRole {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invoke => "invoke",
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }

    /// Whether a key of this role may do `action`.
    pub fn allows(self, action: Action) -> bool {
        self >= action.least_role()
    }
}

impl Action {
    /// The least role that may do this.
    pub fn least_role(self) -> KeyRole {
        match self {
            Self::Read | Self::Invoke => KeyRole::Invoke,
            Self::Deploy => KeyRole::Deploy,
            Self::Admin => KeyRole::Admin,
        }
    }
}

impl fmt::Display for KeyRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyRole {
    type Err = RoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "deploy" => Ok(Self::Deploy),
            "invoke" => Ok(Self::Invoke),
            other => Err(RoleError(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        use Action::*;
        let table = [
            (KeyRole::Invoke, [true, true, false, false]),
            (KeyRole::Deploy, [true, true, true, false]),
            (KeyRole::Admin, [true, true, true, true]),
        ];
        for (role, allowed) in table {
            for (action, want) in [Read, Invoke, Deploy, Admin].into_iter().zip(allowed) {
                assert_eq!(role.allows(action), want, "{role} {action:?}");
            }
        }
    }

    #[test]
    fn role_names_round_trip() {
        for name in ROLE_NAMES {
            assert_eq!(name.parse::<KeyRole>().expect("role").as_str(), name);
        }
        assert!("Admin".parse::<KeyRole>().is_err());
        assert!("".parse::<KeyRole>().is_err());
    }
}
