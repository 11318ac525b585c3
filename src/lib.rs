#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod secret;

pub use secret::{SecretBytes, SecretString};
pub mod crypto;
mod ids;

pub use ids::KeyVersion;
