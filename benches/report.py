#!/usr/bin/env python3
"""Criterion's medians as ratios against peers measured in the same run.

Usage:
  python3 benches/report.py [CRITERION_DIR]     every group, every peer (default target/criterion)
  python3 benches/report.py ROUND_DIR...         the table of issue 19, one column per size

A ROUND_DIR holds one criterion directory per bench process of that round, named after it:
`crypto` (cargo bench --bench crypto --features ring), `fernet-rustcrypto`,
`fernet-openssl`, `gcm-openssl` (the crates in benches/peers/) and `python`
(benches/python_peers.py). Ratios are peer time / credvault time (above 1 means credvault
is faster), each taken inside one process, except the Python rows (marked *), whose two
sides come from two processes of the same round. With several rounds each cell is the
median ratio over rounds, followed by the rounds' values.
"""
import json
import pathlib
import statistics
import sys

SIZES = [32, 256, 4096, 65536]


def load(root):
    rows = {}
    for est in root.glob("*/*/*/new/estimates.json"):
        group, impl, size = est.parts[-5], est.parts[-4], est.parts[-3]
        median = json.loads(est.read_text())["median"]["point_estimate"]
        rows.setdefault((group, int(size)), {})[impl] = median
    return rows


def fmt(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def dump(root):
    for (group, size), impls in sorted(load(root).items()):
        ours = {k: v for k, v in impls.items() if k.startswith("credvault")}
        peers = {k: v for k, v in impls.items() if not k.startswith("credvault")}
        for name, t in sorted(ours.items()):
            cells = [f"{p} {fmt(v)} ({v / t:.2f}x)" for p, v in sorted(peers.items())]
            print(f"{group:16} {size:>6} {name:26} {fmt(t):>10}   " + "   ".join(cells))


# (label, group, (run, impl) of credvault, (run, impl) of the peer)
TABLE = [
    ("Fernet decrypt vs `fernet` crate, rustcrypto (its best)", "fernet_decrypt",
     ("fernet-rustcrypto", "credvault"), ("fernet-rustcrypto", "fernet-rustcrypto")),
    ("Fernet encrypt vs `fernet` crate, rustcrypto (its best)", "fernet_encrypt",
     ("fernet-rustcrypto", "credvault"), ("fernet-rustcrypto", "fernet-rustcrypto")),
    ("Fernet decrypt vs `fernet` crate, OpenSSL", "fernet_decrypt",
     ("fernet-openssl", "credvault"), ("fernet-openssl", "fernet-openssl")),
    ("Fernet encrypt vs `fernet` crate, OpenSSL", "fernet_encrypt",
     ("fernet-openssl", "credvault"), ("fernet-openssl", "fernet-openssl")),
    ("Fernet decrypt vs Python `cryptography` *", "fernet_decrypt",
     ("crypto", "credvault"), ("python", "python-cryptography")),
    ("Fernet encrypt vs Python `cryptography` *", "fernet_encrypt",
     ("crypto", "credvault"), ("python", "python-cryptography")),
    ("GCM seal (`Keyring::seal`) vs raw `aes-gcm`, same AAD", "gcm_seal",
     ("crypto", "credvault-keyring"), ("crypto", "aes-gcm-same-aad")),
    ("GCM open (`Keyring::open`) vs raw `aes-gcm`, same AAD", "gcm_open",
     ("crypto", "credvault-keyring"), ("crypto", "aes-gcm-same-aad")),
    ("GCM seal (`aead::seal`) vs raw `ring`, same AAD", "gcm_seal",
     ("crypto", "credvault-aead"), ("crypto", "ring-same-aad")),
    ("GCM open (`aead::open`) vs raw `ring`, same AAD", "gcm_open",
     ("crypto", "credvault-aead"), ("crypto", "ring-same-aad")),
    ("`Keyring::seal` vs `aead::seal` (≥ 0.95 wanted)", "gcm_seal",
     ("crypto", "credvault-keyring"), ("crypto", "credvault-aead")),
    ("`Keyring::open` vs `aead::open` (≥ 0.95 wanted)", "gcm_open",
     ("crypto", "credvault-keyring"), ("crypto", "credvault-aead")),
    ("GCM seal vs OpenSSL (`openssl` crate, context reused), same AAD", "gcm_seal",
     ("gcm-openssl", "credvault-aead"), ("gcm-openssl", "openssl-same-aad")),
    ("GCM open vs OpenSSL (`openssl` crate, context reused), same AAD", "gcm_open",
     ("gcm-openssl", "credvault-aead"), ("gcm-openssl", "openssl-same-aad")),
    ("GCM seal, pure-Rust backend, vs OpenSSL (before)", "gcm_seal",
     ("gcm-openssl", "credvault-aead-rustcrypto"), ("gcm-openssl", "openssl-same-aad")),
    ("GCM open, pure-Rust backend, vs OpenSSL (before)", "gcm_open",
     ("gcm-openssl", "credvault-aead-rustcrypto"), ("gcm-openssl", "openssl-same-aad")),
    ("GCM seal vs Python `cryptography` AESGCM *", "gcm_seal",
     ("crypto", "credvault-aead"), ("python", "python-cryptography")),
    ("GCM open vs Python `cryptography` AESGCM *", "gcm_open",
     ("crypto", "credvault-aead"), ("python", "python-cryptography")),
]


def table(rounds):
    loaded = [{run.name: load(run) for run in r.iterdir() if run.is_dir()} for r in rounds]
    print("| op | " + " | ".join(f"{s} B" if s < 1024 else f"{s // 1024} KiB" for s in SIZES) + " |")
    print("|---|" + "---:|" * len(SIZES))
    for label, group, (orun, oimpl), (prun, pimpl) in TABLE:
        cells = []
        for size in SIZES:
            ratios = []
            for runs in loaded:
                try:
                    ours = runs[orun][(group, size)][oimpl]
                    peer = runs[prun][(group, size)][pimpl]
                except KeyError:
                    continue
                ratios.append(peer / ours)
            if not ratios:
                cells.append("–")
            elif len(ratios) == 1:
                cells.append(f"{ratios[0]:.2f}x")
            else:
                each = "/".join(f"{r:.2f}" for r in ratios)
                cells.append(f"**{statistics.median(ratios):.2f}x** ({each})")
        if any(c != "–" for c in cells):
            print(f"| {label} | " + " | ".join(cells) + " |")


args = [pathlib.Path(a) for a in sys.argv[1:]] or [pathlib.Path("target/criterion")]
if all((a / "crypto").is_dir() or (a / "fernet-rustcrypto").is_dir() for a in args):
    table(args)
else:
    for a in args:
        dump(a)
