//! Fernet interop with Python's `cryptography` (the reference implementation), both ways.
//!
//! Each test starts one Python process and passes its cases as JSON (bytes as standard
//! base64), not one process per case. Without the `cryptography` package the tests skip with
//! a message (or fail under `CREDVAULT_REQUIRE_INTEROP=1`): see `tests/common/mod.rs`.

#![allow(
    clippy::unwrap_used,
    reason = "tests and benches fail loudly on unexpected errors"
)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use credvault::crypto::fernet::InvalidTokenReason;
use credvault::crypto::{Fernet, MultiFernet};
use rand::Rng as _;
use serde_json::{Value, json};

/// Plaintext sizes: empty, around one AES block, and large.
const SIZES: [usize; 8] = [0, 1, 15, 16, 17, 255, 4096, 100_000];

fn have_python() -> bool {
    common::python_has(&["cryptography"])
}

fn random_bytes(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rng().fill_bytes(&mut v);
    v
}

fn b64(data: &[u8]) -> String {
    STANDARD.encode(data)
}

fn unb64(v: &Value) -> Vec<u8> {
    STANDARD
        .decode(text(v))
        .expect("standard base64 from python")
}

fn text(v: &Value) -> &str {
    v.as_str().expect("a json string")
}

fn run_json(script: &str, request: &Value) -> Value {
    let out = common::run_python(script, request.to_string().as_bytes());
    serde_json::from_slice(&out).expect("python printed json")
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A Python process answering one JSON line per JSON line, for a test that needs Python both
/// before and after credvault does its part (keys from Python, then Python decrypts).
struct PythonSession {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl PythonSession {
    fn start(script: &str) -> Self {
        let mut child = Command::new(common::python_exe())
            .args(["-c", script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn python");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("python stdout"));
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, request: &Value) -> Value {
        let stdin = self.stdin.as_mut().expect("session finished");
        writeln!(stdin, "{request}").expect("write python stdin");
        stdin.flush().expect("flush python stdin");
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("read python stdout");
        if line.is_empty() {
            self.stdin = None;
            let mut err = String::new();
            if let Some(mut e) = self.child.stderr.take() {
                e.read_to_string(&mut err).ok();
            }
            panic!("python exited early: {err}");
        }
        serde_json::from_str(&line).expect("python printed a json line")
    }

    fn finish(mut self) {
        self.stdin = None;
        let status = self.child.wait().expect("wait for python");
        assert!(status.success(), "python session failed: {status}");
    }
}

// ---------------------------------------------------------------------------------------------
// Python encrypts, credvault decrypts.

const PY_ENCRYPT: &str = r#"
import base64, json, os, sys
from cryptography.fernet import Fernet
req = json.load(sys.stdin)
keys = [("rust", k) for k in req["rust_keys"]]
keys += [("python", Fernet.generate_key().decode()) for _ in range(req["python_keys"])]
out = []
for origin, key in keys:
    f = Fernet(key)
    for size in req["sizes"]:
        data = os.urandom(size)
        out.append({"origin": origin, "key": key, "size": size,
                    "data": base64.b64encode(data).decode(),
                    "token": f.encrypt(data).decode()})
json.dump(out, sys.stdout)
"#;

#[test]
fn tokens_made_by_python_decrypt_in_credvault() {
    if !have_python() {
        return;
    }
    let rust_keys: Vec<String> = (0..2)
        .map(|_| Fernet::generate_key().expose_secret().to_owned())
        .collect();
    let before = now_unix();
    let cases = run_json(
        PY_ENCRYPT,
        &json!({ "rust_keys": rust_keys, "python_keys": 2, "sizes": SIZES }),
    );
    let after = now_unix();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 4 * SIZES.len());
    let mut origins = std::collections::BTreeSet::new();
    for c in cases {
        let what = format!("{} key, {} bytes", text(&c["origin"]), c["size"]);
        origins.insert(text(&c["origin"]).to_owned());
        let f = Fernet::new(text(&c["key"])).unwrap();
        let data = unb64(&c["data"]);
        assert_eq!(
            data.len(),
            usize::try_from(c["size"].as_u64().unwrap()).unwrap()
        );
        let token = text(&c["token"]);
        assert_eq!(f.decrypt(token).unwrap().expose_secret(), data, "{what}");
        let ts = f.extract_timestamp(token).unwrap();
        assert!((before..=after).contains(&ts), "{what}: timestamp {ts}");
        let within = f.decrypt_at_time(token, 60, ts + 60).unwrap();
        assert_eq!(within.expose_secret(), data, "{what}");
        let m = MultiFernet::new(vec![
            Fernet::new(Fernet::generate_key().expose_secret()).unwrap(),
            f,
        ])
        .unwrap();
        assert_eq!(m.decrypt(token).unwrap().expose_secret(), data, "{what}");
    }
    assert_eq!(origins.len(), 2, "keys from both rust and python");
}

// ---------------------------------------------------------------------------------------------
// credvault encrypts, Python decrypts.

const PY_SESSION: &str = r#"
import base64, json, sys
from cryptography.fernet import Fernet, InvalidToken
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "keys":
        resp = [Fernet.generate_key().decode() for _ in range(req["n"])]
    elif req["op"] == "decrypt":
        resp = []
        for c in req["cases"]:
            f = Fernet(c["key"])
            try:
                data = f.decrypt(c["token"])
                resp.append({"data": base64.b64encode(data).decode(),
                             "timestamp": f.extract_timestamp(c["token"])})
            except InvalidToken:
                resp.append(None)
    else:
        raise SystemExit("unknown op " + req["op"])
    print(json.dumps(resp), flush=True)
"#;

#[test]
fn tokens_made_by_credvault_decrypt_in_python() {
    if !have_python() {
        return;
    }
    let mut py = PythonSession::start(PY_SESSION);
    let python_keys: Vec<String> = py
        .call(&json!({ "op": "keys", "n": 2 }))
        .as_array()
        .unwrap()
        .iter()
        .map(|k| text(k).to_owned())
        .collect();
    let rust_keys: Vec<String> = (0..2)
        .map(|_| Fernet::generate_key().expose_secret().to_owned())
        .collect();

    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (origin, key) in rust_keys
        .iter()
        .map(|k| ("rust", k))
        .chain(python_keys.iter().map(|k| ("python", k)))
    {
        let f = Fernet::new(key).unwrap();
        for size in SIZES {
            let data = random_bytes(size);
            let token = f.encrypt(&data);
            let ts = f.extract_timestamp(&token).unwrap();
            cases.push(json!({ "key": key, "token": token }));
            expected.push((format!("{origin} key, {size} bytes"), Some((data, ts))));
        }
    }
    // Negative control: Python must refuse a credvault token under another key.
    let token = Fernet::new(&rust_keys[0]).unwrap().encrypt(b"control");
    cases.push(json!({ "key": python_keys[0], "token": token }));
    expected.push(("wrong key".to_owned(), None));

    let answers = py.call(&json!({ "op": "decrypt", "cases": cases }));
    py.finish();
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), expected.len());
    for (answer, (what, want)) in answers.iter().zip(&expected) {
        match want {
            Some((data, ts)) => {
                assert!(!answer.is_null(), "{what}: python refused the token");
                assert_eq!(&unb64(&answer["data"]), data, "{what}");
                assert_eq!(answer["timestamp"].as_u64(), Some(*ts), "{what}");
            }
            None => assert!(answer.is_null(), "{what}: python accepted {answer}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TTL edges: the same decisions as Python's `decrypt_at_time`.

const PY_TTL: &str = r#"
import base64, json, sys
from cryptography.fernet import Fernet, InvalidToken
req = json.load(sys.stdin)
f = Fernet(req["key"])
out = []
for c in req["cases"]:
    token = f.encrypt_at_time(base64.b64decode(c["data"]), c["ts"])
    try:
        f.decrypt_at_time(token, c["ttl"], c["now"])
        decision = "ok"
    except InvalidToken:
        decision = "invalid"
    out.append({"token": token.decode(), "decision": decision})
json.dump(out, sys.stdout)
"#;

/// What credvault should decide; Python only says ok or `InvalidToken`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Ok,
    Expired,
    /// `InvalidTokenReason::FromTheFuture`.
    Future,
}

fn ttl_cases() -> Vec<(u64, u64, u64, Want)> {
    let mut cases = Vec::new();
    for ts in [499_162_800u64, 1_700_000_000, 4_102_444_800, 1 << 40] {
        for ttl in [0u64, 1, 60, 3600, 86_400 * 365] {
            cases.push((ts, ttl, ts + ttl, Want::Ok)); // exactly ttl old
            cases.push((ts, ttl, ts + ttl + 1, Want::Expired)); // one second more
            cases.push((ts, ttl, ts, Want::Ok));
            cases.push((ts, ttl, ts - 60, Want::Ok)); // 60 s in the future: allowed skew
            cases.push((ts, ttl, ts - 61, Want::Future));
        }
    }
    // Extremes: a timestamp near u64::MAX, where `ts + ttl` does not fit in a u64 (Python's
    // integers do not overflow; credvault must decide the same without wrapping).
    let big = u64::MAX - 10;
    cases.push((big, 60, big, Want::Ok));
    cases.push((big, 60, u64::MAX, Want::Ok));
    cases.push((big, u64::MAX, u64::MAX, Want::Ok));
    cases.push((big, 60, big - 60, Want::Ok));
    cases.push((big, 60, big - 61, Want::Future));
    cases.push((big, 0, 0, Want::Future));
    cases.push((0, 0, 0, Want::Ok));
    cases.push((0, 0, 1, Want::Expired));
    cases.push((0, u64::MAX, u64::MAX, Want::Ok));
    cases.push((0, 60, u64::MAX, Want::Expired));
    cases
}

#[test]
fn ttl_edges_decide_as_python_decrypt_at_time_does() {
    if !have_python() {
        return;
    }
    let key = Fernet::generate_key();
    let f = Fernet::new(key.expose_secret()).unwrap();
    let cases = ttl_cases();
    let data: Vec<Vec<u8>> = (0..cases.len()).map(|i| random_bytes(i % 40)).collect();
    let request: Vec<Value> = cases
        .iter()
        .zip(&data)
        .map(|(&(ts, ttl, now, _), d)| json!({ "ts": ts, "ttl": ttl, "now": now, "data": b64(d) }))
        .collect();
    let answers = run_json(
        PY_TTL,
        &json!({ "key": key.expose_secret(), "cases": request }),
    );
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), cases.len());
    for ((&(ts, ttl, now, want), d), answer) in cases.iter().zip(&data).zip(answers) {
        let what = format!("ts {ts}, ttl {ttl}, now {now}");
        let python_ok = match text(&answer["decision"]) {
            "ok" => true,
            "invalid" => false,
            other => panic!("{what}: python said {other}"),
        };
        assert_eq!(
            python_ok,
            want == Want::Ok,
            "{what}: python disagrees with the table"
        );
        let token = text(&answer["token"]);
        assert_eq!(f.extract_timestamp(token).unwrap(), ts, "{what}");
        let ours = f.decrypt_at_time(token, ttl, now);
        match want {
            Want::Ok => assert_eq!(ours.unwrap().expose_secret(), d.as_slice(), "{what}"),
            Want::Expired => assert_eq!(
                ours.unwrap_err().reason(),
                InvalidTokenReason::Expired,
                "{what}"
            ),
            Want::Future => assert_eq!(
                ours.unwrap_err().reason(),
                InvalidTokenReason::FromTheFuture,
                "{what}"
            ),
        }
        // Without a TTL, neither side checks time.
        assert_eq!(
            f.decrypt(token).unwrap().expose_secret(),
            d.as_slice(),
            "{what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation.

const PY_ROTATE: &str = r#"
import base64, json, os, sys
from cryptography.fernet import Fernet, MultiFernet
req = json.load(sys.stdin)
old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
old, new = Fernet(old_key), Fernet(new_key)
both = MultiFernet([new, old])
out = []
for c in req["cases"]:
    data = os.urandom(c["size"])
    token = old.encrypt_at_time(data, c["ts"])
    out.append({"ts": c["ts"], "data": base64.b64encode(data).decode(),
                "token": token.decode(), "rotated": both.rotate(token).decode()})
json.dump({"old": old_key.decode(), "new": new_key.decode(), "cases": out}, sys.stdout)
"#;

const ROTATE_CASES: [(usize, u64); 5] = [
    (0, 499_162_800),
    (1, 1_000_000_000),
    (16, 1_700_000_000),
    (100, 4_102_444_800),
    (4096, 1),
];

#[test]
fn tokens_rotated_by_python_decrypt_in_credvault_and_keep_their_timestamp() {
    if !have_python() {
        return;
    }
    let request: Vec<Value> = ROTATE_CASES
        .iter()
        .map(|&(size, ts)| json!({ "size": size, "ts": ts }))
        .collect();
    let answer = run_json(PY_ROTATE, &json!({ "cases": request }));
    let old = Fernet::new(text(&answer["old"])).unwrap();
    let new = Fernet::new(text(&answer["new"])).unwrap();
    let cases = answer["cases"].as_array().unwrap();
    assert_eq!(cases.len(), ROTATE_CASES.len());
    for c in cases {
        let ts = c["ts"].as_u64().unwrap();
        let data = unb64(&c["data"]);
        let (token, rotated) = (text(&c["token"]), text(&c["rotated"]));
        let what = format!("ts {ts}, {} bytes", data.len());
        assert_ne!(token, rotated, "{what}");
        assert_eq!(old.decrypt(token).unwrap().expose_secret(), data, "{what}");
        assert_eq!(
            new.decrypt(rotated).unwrap().expose_secret(),
            data,
            "{what}"
        );
        assert_eq!(new.extract_timestamp(rotated).unwrap(), ts, "{what}");
        assert_eq!(
            old.decrypt(rotated).unwrap_err().reason(),
            InvalidTokenReason::Unauthenticated,
            "{what}"
        );
        // credvault's own rotation of the original agrees on plaintext and timestamp.
        let both = MultiFernet::new(vec![new.clone(), old.clone()]).unwrap();
        let ours = both.rotate(token).unwrap();
        assert_eq!(new.decrypt(&ours).unwrap().expose_secret(), data, "{what}");
        assert_eq!(new.extract_timestamp(&ours).unwrap(), ts, "{what}");
        assert_eq!(both.extract_timestamp(rotated).unwrap(), ts, "{what}");
    }
}

const PY_CHECK_ROTATED: &str = r#"
import base64, json, sys
from cryptography.fernet import Fernet, InvalidToken
req = json.load(sys.stdin)
new = Fernet(req["new"])
olds = [Fernet(k) for k in req["olds"]]
out = []
for c in req["cases"]:
    r = {"data": base64.b64encode(new.decrypt(c["rotated"])).decode(),
         "timestamp": new.extract_timestamp(c["rotated"]),
         "original_timestamp": Fernet(c["key"]).extract_timestamp(c["token"])}
    refused = 0
    for old in olds:
        try:
            old.decrypt(c["rotated"])
        except InvalidToken:
            refused += 1
    r["old_keys_refusing"] = refused
    out.append(r)
json.dump(out, sys.stdout)
"#;

#[test]
fn tokens_rotated_by_credvault_decrypt_in_python_with_the_new_key_only() {
    if !have_python() {
        return;
    }
    let keys: Vec<_> = (0..3).map(|_| Fernet::generate_key()).collect();
    let fernets: Vec<Fernet> = keys
        .iter()
        .map(|k| Fernet::new(k.expose_secret()).unwrap())
        .collect();
    // Priority order: new, middle, oldest.
    let multi = MultiFernet::new(fernets.clone()).unwrap();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for (i, &(size, ts)) in ROTATE_CASES.iter().enumerate() {
        let under = 1 + i % 2; // alternate the middle and the oldest key
        let data = random_bytes(size);
        let token = fernets[under].encrypt_at_time(&data, ts);
        let rotated = multi.rotate(&token).unwrap();
        request.push(json!({
            "key": keys[under].expose_secret(),
            "token": token,
            "rotated": rotated,
        }));
        expected.push((data, ts));
    }
    let answers = run_json(
        PY_CHECK_ROTATED,
        &json!({
            "new": keys[0].expose_secret(),
            "olds": [keys[1].expose_secret(), keys[2].expose_secret()],
            "cases": request,
        }),
    );
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), expected.len());
    for (answer, (data, ts)) in answers.iter().zip(&expected) {
        let what = format!("ts {ts}, {} bytes", data.len());
        assert_eq!(&unb64(&answer["data"]), data, "{what}");
        assert_eq!(answer["timestamp"].as_u64(), Some(*ts), "{what}");
        assert_eq!(answer["original_timestamp"].as_u64(), Some(*ts), "{what}");
        assert_eq!(answer["old_keys_refusing"].as_u64(), Some(2), "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// Where credvault is stricter than Python on purpose.

const PY_LENIENT: &str = r#"
import base64, json, sys
from cryptography.fernet import Fernet, InvalidToken
req = json.load(sys.stdin)
f = Fernet(req["key"])
out = []
for token in req["tokens"]:
    try:
        out.append(base64.b64encode(f.decrypt_at_time(token, 60, req["now"])).decode())
    except InvalidToken:
        out.append(None)
json.dump(out, sys.stdout)
"#;

#[test]
fn spec_tokens_with_junk_characters_that_python_skips_are_refused_by_credvault() {
    // Two of the Fernet spec's `invalid.json` tokens are the valid "hello" token with junk
    // around or inside its base64. Python's `cryptography` (48.0.0) decodes base64 leniently,
    // skipping characters outside the alphabet, and so *accepts* both; credvault follows the
    // spec and refuses non-canonical text. Python never writes such tokens, so interop with
    // tokens Python produces is unaffected. Credvault's refusal is asserted; Python's decision
    // is only required, when it accepts, to be the spec plaintext (never garbage).
    if !have_python() {
        return;
    }
    let key = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    let now = 499_162_801u64;
    let tokens = [
        "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==trailingdata",
        "*gAAAAAAdwJ6wAAECAwQFBgcI!CQoLDA0ODy021?cpGVWKZ_eEwC@GM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
    ];
    let answers = run_json(
        PY_LENIENT,
        &json!({ "key": key, "now": now, "tokens": tokens }),
    );
    let f = Fernet::new(key).unwrap();
    for (token, answer) in tokens.iter().zip(answers.as_array().unwrap()) {
        assert_eq!(
            f.decrypt_at_time(token, 60, now).unwrap_err().reason(),
            InvalidTokenReason::Malformed,
            "{token}"
        );
        if answer.is_null() {
            eprintln!("python refuses {token} too");
        } else {
            assert_eq!(unb64(answer), b"hello", "{token}");
            eprintln!("python accepts {token} (lenient base64); credvault refuses it");
        }
    }
}
