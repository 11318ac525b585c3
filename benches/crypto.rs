//! Placeholder until the crypto benches land (main branch).
fn main() {}
