//! credvault's Fernet next to the `fernet` crate's default OpenSSL backend, in one run.
//!
//! `cargo bench --manifest-path benches/peers/fernet-openssl/Cargo.toml`

#![allow(clippy::unwrap_used, reason = "benches fail loudly on unexpected errors")]

const PEER: &str = "fernet-openssl";

include!("../../fernet_peer.rs");
