//! A local AWS KMS for the `aws-kms` tests and bench: moto's server (`pip install
//! 'moto[server]'`) on 127.0.0.1, on a free port, one per test process. Included by path
//! (`#[path = "common/moto.rs"] mod moto;`).
//!
//! Without moto the tests say how to install it and pass, unless `CREDVAULT_REQUIRE_KMS=1`
//! (`.ci/run` sets it). The server stops when the test process ends (it waits on its stdin).

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use credvault::KeyVersion;
use credvault::keys::awskms::{AwsKmsKeys, KmsConfig};

/// The region every test uses.
pub(crate) const REGION: &str = "us-east-1";
/// Test credentials (moto accepts any); the secret must never show in output.
pub(crate) const ACCESS_KEY: &str = "AKIDCREDVAULTTEST";
pub(crate) const SECRET_KEY: &str = "credvault-moto-secret-access-key";

const SERVER: &str = r#"
import socket, sys
from moto.server import ThreadedMotoServer
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop()
"#;

/// The server's endpoint (`http://127.0.0.1:PORT`), started on first use; `None` (after
/// saying how to install it) when moto is missing and `CREDVAULT_REQUIRE_KMS` is not `1`.
pub(crate) fn endpoint() -> Option<String> {
    static SERVER_CHILD: OnceLock<Option<(Mutex<Child>, String)>> = OnceLock::new();
    SERVER_CHILD
        .get_or_init(start)
        .as_ref()
        .map(|(_, endpoint)| endpoint.clone())
}

fn start() -> Option<(Mutex<Child>, String)> {
    let required = std::env::var("CREDVAULT_REQUIRE_KMS").as_deref() == Ok("1");
    let python = std::env::var("CREDVAULT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_moto = Command::new(&python)
        .args(["-c", "import moto.server, flask, werkzeug"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_moto {
        assert!(
            !required,
            "CREDVAULT_REQUIRE_KMS=1 but moto's server is missing (pip install 'moto[server]')"
        );
        eprintln!(
            "skipping the AWS KMS tests: moto's server is not installed \
             (pip install 'moto[server]', see tests/python/requirements.txt)"
        );
        return None;
    }
    let (child, endpoint) = start_server();
    Some((Mutex::new(child), endpoint))
}

/// Starts a moto server of the caller's own (for a test that stops it): the child process and
/// its endpoint. Call [`endpoint`] first, which checks that moto is there.
pub(crate) fn start_server() -> (Child, String) {
    let python = std::env::var("CREDVAULT_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = Command::new(&python)
        .args(["-c", SERVER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto's server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("moto's stdout"))
        .read_line(&mut line)
        .expect("read moto's port");
    let port: u16 = line.trim().parse().expect("moto printed its port");
    (child, format!("http://127.0.0.1:{port}"))
}

/// A configuration for the local server with no keys yet.
pub(crate) fn config(endpoint: &str) -> KmsConfig {
    let mut config = KmsConfig::new(REGION, "unused")
        .endpoint(endpoint)
        .credentials(credvault::keys::awskms::Credentials::new(
            ACCESS_KEY, SECRET_KEY, None, None, "tests",
        ));
    config.keys.clear();
    config
}

/// A new key in the local server, and a provider with it as version 1.
pub(crate) fn provider_with_new_key(endpoint: &str) -> (AwsKmsKeys, String) {
    let key = AwsKmsKeys::create_key(&config(endpoint), "credvault test").expect("create a key");
    let keys = AwsKmsKeys::open(config(endpoint).key(KeyVersion::FIRST, key.clone()))
        .expect("open the key");
    (keys, key)
}
