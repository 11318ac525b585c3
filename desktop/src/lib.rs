//! Desktop mode's tests, example and bench (see Cargo.toml): nothing of its own.
