//! Hostile: seccomp (see docs/sandbox.md, threat model).
