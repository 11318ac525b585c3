//! The library's vault conformance suite (tests/vault_conformance.rs, unchanged) on the
//! encrypted SQLite file: its `sqlcipher` cases run here, where SQLCipher is linked.

#[path = "../../tests/vault_conformance.rs"]
mod suite;
