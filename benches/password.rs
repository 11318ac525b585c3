//! Password benches (in progress).
fn main() {}
