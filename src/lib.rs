#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod password;
pub mod secret;

pub use password::{PasswordError, PasswordPolicy, Verification};
pub use secret::{SecretBytes, SecretString};
