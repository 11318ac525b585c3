//! credvault's Fernet next to the `fernet` crate's `rustcrypto` backend, in one run.
//!
//! `cargo bench --manifest-path benches/peers/fernet-rustcrypto/Cargo.toml`

#![allow(clippy::unwrap_used, reason = "benches fail loudly on unexpected errors")]

const PEER: &str = "fernet-rustcrypto";

include!("../../fernet_peer.rs");
