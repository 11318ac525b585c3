//! Turns on the encrypted-SQLite cases of the library's shared tests (tests/common,
//! tests/vault_conformance.rs), which this crate's tests include with `#[path]`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(credvault_sqlcipher)");
    println!("cargo::rustc-cfg=credvault_sqlcipher");
}
