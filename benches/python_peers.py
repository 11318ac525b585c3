#!/usr/bin/env python3
"""Python `cryptography`'s Fernet and AESGCM (OpenSSL) at the bench sizes, written where
benches/report.py reads criterion's results: OUT/<group>/python-cryptography/<size>/new/
estimates.json (median ns per call). Same groups, sizes and associated data as
benches/crypto.rs, so report.py can put them in its table.

Usage: python3 benches/python_peers.py OUT
"""
import json
import os
import pathlib
import statistics
import sys
import timeit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SIZES = [32, 256, 4096, 65536]
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion-python")


def measure(fn, budget=1.0):
    """Median ns per call over 15 samples, each about budget/15 seconds."""
    number = 1
    while timeit.timeit(fn, number=number) < budget / 15:
        number *= 2
    samples = timeit.repeat(fn, number=number, repeat=15)
    return statistics.median(samples) / number * 1e9


def save(group, size, ns):
    d = out / group / "python-cryptography" / str(size) / "new"
    d.mkdir(parents=True, exist_ok=True)
    (d / "estimates.json").write_text(json.dumps({"median": {"point_estimate": ns}}))
    print(f"{group:16} {size:>6} python-cryptography {ns:10.0f} ns")


f = Fernet(Fernet.generate_key())
gcm = AESGCM(os.urandom(32))
# The AAD a sealed record feeds GCM for the bench's context (8-byte header, then the
# context parts, each prefixed by its u32 BE length).
ctx = b"".join(len(p).to_bytes(4, "big") + p for p in [b"tenant-0001", b"oauth_token", b"github"])
aad = b"cv\x01\x01\x00\x00\x00\x01" + ctx
for size in SIZES:
    data = b"\x5a" * size
    token = f.encrypt(data)
    save("fernet_encrypt", size, measure(lambda: f.encrypt(data)))
    save("fernet_decrypt", size, measure(lambda: f.decrypt(token)))
    save("gcm_seal", size, measure(lambda: gcm.encrypt(os.urandom(12), data, aad)))
    nonce = os.urandom(12)
    sealed = gcm.encrypt(nonce, data, aad)
    save("gcm_open", size, measure(lambda: gcm.decrypt(nonce, sealed, aad)))
