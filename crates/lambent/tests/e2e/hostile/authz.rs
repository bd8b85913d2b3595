//! Hostile: authz (see docs/sandbox.md, threat model).
