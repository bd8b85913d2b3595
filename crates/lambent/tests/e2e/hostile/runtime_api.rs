//! Hostile: runtime_api (see docs/sandbox.md, threat model).
