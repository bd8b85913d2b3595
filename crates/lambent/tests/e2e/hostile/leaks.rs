//! Hostile: leaks (see docs/sandbox.md, threat model).
