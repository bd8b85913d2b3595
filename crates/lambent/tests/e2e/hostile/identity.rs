//! Hostile: identity (see docs/sandbox.md, threat model).
