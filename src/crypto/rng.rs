//! Where every random byte of the crate comes from: one place, so that every nonce, IV and
//! salt is unique across `fork()`.
//!
//! # Nonces, IVs and salts: [`fill_nonce`]
//!
//! A per-thread ChaCha12 generator ([`StdRng`]) seeded from the operating system, which asks
//! a fork detector **on every draw, before using its state**, and reseeds from the OS in a
//! forked child (and after [`RESEED_AFTER`] bytes). The detector is `forkguard`'s
//! `pthread_atfork` counter: the C library bumps it in the child of every `fork()`, and
//! reading it is one relaxed atomic load. If registering the handler fails, the process id is
//! compared instead (one `getpid` system call per draw).
//!
//! `rand::rng()` (rand 0.10's `ThreadRng`) is not used: it is not reseeded after `fork()`, so a
//! process that sealed once and then forks draws the same bytes in parent and child, and two
//! AES-GCM seals under one key with one nonce give away the XOR of the plaintexts and the
//! authentication key (tests/fork.rs shows it: 128 of 128 nonces and IVs repeated).
//!
//! The options, measured side by side (benches/crypto.rs, groups `rng_12_bytes` and
//! `gcm_seal`, on the project's 2-core VM, Linux 6.18, glibc 2.36, which neither caches
//! `getpid` nor has a vDSO `getrandom`):
//!
//! | 12-byte draw                                          | cost    |
//! |-------------------------------------------------------|---------|
//! | `rand::rng()` (not fork-safe, the old way)            | ~11 ns  |
//! | (c) this module: ChaCha12 + `pthread_atfork` counter  | ~13 ns  |
//! | (b) ChaCha12 + process-id check (`getpid` per draw)   | ~150 ns |
//! | (a) the OS per draw (`getrandom`, `SysRng`)           | ~385 ns |
//!
//! | seal / raw `aes-gcm` with the same AAD | 32 B  | 256 B | 4 KiB |
//! |----------------------------------------|-------|-------|-------|
//! | `rand::rng()` (not fork-safe)          | 0.93x | 1.06x | 0.90x |
//! | (b) ChaCha12 + pid check               | 1.52x | 1.35x | 1.07x |
//! | (a) `getrandom` per draw               | 2.7x  | 1.6x  | ~1.0x |
//!
//! (`cargo bench --bench crypto -- 'rng_12|gcm_seal/(credvault-aead|aes-gcm-same-aad)/'
//! --measurement-time 2 --warm-up-time 1`, one build per option.) Both options the issue
//! named cost a system call per draw, half of a small seal here: (c) is chosen, which keeps a
//! seal within 1.10x of raw `aes-gcm` (see the closing note of issue 11 for the figures of
//! the chosen build).
//!
//! Limit: a child made without the C library's `fork()` (a raw `clone` system call) runs no
//! fork handlers and is not noticed; `posix_spawn`, `vfork` + `exec`, Python's `os.fork` and
//! every pre-fork server go through `fork()` or start a new program.
//!
//! # Keys: [`try_fill_from_os_rng`]
//!
//! Key bytes come straight from the operating system on every call: keys are few, and a key
//! should not depend on any state kept in the process.

use std::cell::RefCell;

use rand::rngs::{StdRng, SysRng};
use rand::{Rng as _, SeedableRng as _, TryRng as _};

use crate::crypto::CryptoError;

/// Bytes one seed serves before the generator is reseeded from the OS (as `ThreadRng` does).
pub(crate) const RESEED_AFTER: usize = 64 * 1024;

/// Notices that this process is a forked child of the one that made it.
enum ForkDetector {
    /// `pthread_atfork` counter: an atomic load.
    #[cfg(unix)]
    Atfork(forkguard::atfork::Guard),
    /// The process id, compared on every draw (if the handler could not be registered).
    Pid(forkguard::pid::Guard),
}

impl ForkDetector {
    fn new() -> Self {
        #[cfg(unix)]
        if let Ok(guard) = forkguard::atfork::Guard::try_new() {
            return Self::Atfork(guard);
        }
        Self::Pid(forkguard::pid::Guard::default())
    }

    fn forked(&mut self) -> bool {
        match self {
            #[cfg(unix)]
            Self::Atfork(guard) => guard.detected_fork(),
            Self::Pid(guard) => guard.detected_fork(),
        }
    }
}

/// A generator, with how much it has served and whether the process forked since seeding.
struct Seeded {
    detector: ForkDetector,
    drawn: usize,
    rng: StdRng,
}

thread_local! {
    static STATE: RefCell<Option<Seeded>> = const { RefCell::new(None) };
}

/// Fills `buf` with random bytes that no other process forked from this one (nor its parent)
/// draws: for nonces, IVs and salts.
///
/// # Errors
///
/// [`CryptoError::RandomnessUnavailable`] if the OS RNG fails when (re)seeding.
pub(crate) fn try_fill_nonce(buf: &mut [u8]) -> Result<(), CryptoError> {
    STATE
        .try_with(|state| {
            let mut state = state.borrow_mut();
            // Asked on every draw: a child of `fork()` starts with a copy of its parent's state.
            let fresh = match state.as_mut() {
                Some(s) => !s.detector.forked() && s.drawn < RESEED_AFTER,
                None => false,
            };
            if !fresh {
                let rng = StdRng::try_from_rng(&mut SysRng)
                    .map_err(|_| CryptoError::RandomnessUnavailable)?;
                *state = Some(Seeded {
                    detector: ForkDetector::new(),
                    drawn: 0,
                    rng,
                });
            }
            if let Some(seeded) = state.as_mut() {
                seeded.rng.fill_bytes(buf);
                seeded.drawn = seeded.drawn.saturating_add(buf.len());
            }
            Ok(())
        })
        // The thread is exiting and its state is gone: ask the OS.
        .unwrap_or_else(|_| try_fill_from_os_rng(buf))
}

/// [`try_fill_nonce`] for callers that cannot report a failure.
///
/// # Panics
///
/// If the OS RNG fails when (re)seeding.
pub(crate) fn fill_nonce(buf: &mut [u8]) {
    if try_fill_nonce(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

/// Fills `buf` from the operating system's RNG (for keys).
///
/// # Panics
///
/// If the OS RNG fails; callers that can report it use [`try_fill_from_os_rng`].
pub(crate) fn fill_from_os_rng(buf: &mut [u8]) {
    if try_fill_from_os_rng(buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
}

/// Fills `buf` from the operating system's RNG (for keys).
///
/// # Errors
///
/// [`CryptoError::RandomnessUnavailable`] if it fails.
pub(crate) fn try_fill_from_os_rng(buf: &mut [u8]) -> Result<(), CryptoError> {
    SysRng
        .try_fill_bytes(buf)
        .map_err(|_| CryptoError::RandomnessUnavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ() {
        let (mut a, mut b) = ([0u8; 12], [0u8; 12]);
        try_fill_nonce(&mut a).unwrap();
        try_fill_nonce(&mut b).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn reseeds_after_the_limit_and_keeps_drawing() {
        let mut buf = vec![0u8; RESEED_AFTER / 2 + 1];
        for _ in 0..3 {
            try_fill_nonce(&mut buf).unwrap();
        }
        let drawn = STATE.with_borrow(|s| s.as_ref().map(|s| s.drawn));
        assert_eq!(drawn, Some(RESEED_AFTER / 2 + 1));
    }
}
