//! Attacks on lambent, tried as an attacker would: from inside a real function, or as a real
//! client without a valid key. One module per attack class of the threat model in
//! `docs/sandbox.md`; each test says which class it covers.

mod authz;
mod data_at_rest;
mod egress;
mod framing;
mod front_end;
mod identity;
mod leaks;
mod runtime_api;
mod seccomp;
