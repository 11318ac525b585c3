//! A SoftHSM2 token in a temporary directory, for the PKCS#11 tests and benches. Included by
//! path (`#[path = "common/softhsm.rs"] mod softhsm;`).

use std::path::PathBuf;
use std::process::Command;

/// The SoftHSM2 module, or `None` when SoftHSM2 is not installed (module or
/// `softhsm2-util` missing). `CREDVAULT_PKCS11_MODULE` names another module.
pub(crate) fn module() -> Option<PathBuf> {
    let module = std::env::var_os("CREDVAULT_PKCS11_MODULE").map_or_else(
        || PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from,
    );
    let util = Command::new("softhsm2-util").arg("--version").output();
    (module.exists() && util.is_ok()).then_some(module)
}

/// Points this process's SoftHSM2 at a fresh token directory and initialises a token
/// labelled `label` with user PIN `pin` in it. Call once, before the module is first
/// initialised in the process (it reads `SOFTHSM2_CONF` then).
pub(crate) fn init_token(label: &str, pin: &str) {
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    std::fs::create_dir(dir.join("tokens")).expect("token directory");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .expect("softhsm2.conf");
    #[allow(unsafe_code, reason = "set once, before any thread reads it")]
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", &conf);
    }
    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label, "--pin", pin])
        .args(["--so-pin", "5678"])
        .env("SOFTHSM2_CONF", &conf)
        .output()
        .expect("softhsm2-util runs");
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
