//! Hostile: front_end (see docs/sandbox.md, threat model).
