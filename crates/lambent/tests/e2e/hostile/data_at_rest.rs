//! Hostile: data_at_rest (see docs/sandbox.md, threat model).
