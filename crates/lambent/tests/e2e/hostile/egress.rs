//! Hostile: egress (see docs/sandbox.md, threat model).
