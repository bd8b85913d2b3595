//! Hostile: framing (see docs/sandbox.md, threat model).
