"""Interop helper for tests/password_formats.rs: every hasher Django 5.2 ships (and the
legacy ones older Django wrote), and passlib 1.7.4's common schemes.

Reads {"passwords": [str]} on stdin. For each scheme, cost and password the reference
library accepts, prints one entry
    {"scheme": str, "label": str, "hash": str, "verdicts": [[candidate, bool], ...]}
where each verdict is what the library that made the hash answers for that candidate:
the right password, a wrong one ("x" + password) and, for long passwords, the password with a
byte appended (which truncating schemes accept). Passwords a library refuses (Python's
bcrypt 5 over 72 bytes) are listed under "skipped". Costs are low to keep the suite fast.
"""
import json
import os
import sys
from multiprocessing import Pool

os.environ["PASSLIB_BUILTIN_BCRYPT"] = "enabled"  # passlib 1.7.4 cannot drive bcrypt 5

import django
from django.conf import settings
from passlib import hash as ph

# passlib's bcrypt backend probe hashes a >72-byte password, which bcrypt 5 refuses:
# use passlib's pure-Python backend instead (identical hashes, slower).
for handler in (ph.bcrypt, ph.bcrypt_sha256):
    handler.set_backend("builtin")

# Every hasher in Django 5.2's django.contrib.auth.hashers.
settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers." + name
        for name in [
            "PBKDF2PasswordHasher",
            "PBKDF2SHA1PasswordHasher",
            "Argon2PasswordHasher",
            "BCryptSHA256PasswordHasher",
            "BCryptPasswordHasher",
            "ScryptPasswordHasher",
            "MD5PasswordHasher",
        ]
    ]
)
django.setup()
from django.contrib.auth.hashers import check_password, get_hasher, make_password  # noqa: E402


def django_scheme(name, **attrs):
    """make_password with hasher `name`, its cost attributes set as a settings subclass would."""

    def make(pw):
        hasher = get_hasher(name)
        for key, value in attrs.items():
            setattr(hasher, key, value)
        return make_password(pw, hasher=name)

    return make, check_password


def passlib_scheme(handler, **settings_):
    configured = handler.using(**settings_) if settings_ else handler
    return (lambda pw: configured.hash(pw)), (lambda pw, h: handler.verify(pw, h))


def cost_label(attrs):
    return ",".join(f"{k}={v}" for k, v in attrs.items()) or "-"


# (scheme id, label prefix, [cost settings], factory(**settings) -> (make, verify))
SCHEMES = [
    ("django pbkdf2_sha256", [dict(iterations=1000), dict(iterations=2000)],
     lambda **a: django_scheme("pbkdf2_sha256", **a)),
    ("django pbkdf2_sha1", [dict(iterations=1000), dict(iterations=2000)],
     lambda **a: django_scheme("pbkdf2_sha1", **a)),
    ("django argon2", [dict(time_cost=1, memory_cost=64, parallelism=1),
                       dict(time_cost=2, memory_cost=128, parallelism=2)],
     lambda **a: django_scheme("argon2", **a)),
    ("django bcrypt_sha256", [dict(rounds=4), dict(rounds=5)],
     lambda **a: django_scheme("bcrypt_sha256", **a)),
    ("django bcrypt", [dict(rounds=4), dict(rounds=5)],
     lambda **a: django_scheme("bcrypt", **a)),
    ("django scrypt", [dict(work_factor=2**4, block_size=8, parallelism=1),
                       dict(work_factor=2**6, block_size=4, parallelism=2)],
     lambda **a: django_scheme("scrypt", **a)),
    ("django md5", [{}], lambda **a: django_scheme("md5", **a)),
    # What Django <= 4.2 wrote (SHA1PasswordHasher, UnsaltedSHA1PasswordHasher,
    # UnsaltedMD5PasswordHasher), as passlib reproduces it; Django 5.2 no longer reads them.
    ("django sha1 (<= 4.2)", [{}], lambda **a: passlib_scheme(ph.django_salted_sha1)),
    ("django unsalted sha1 (<= 4.2)", [dict(salt="")],
     lambda **a: passlib_scheme(ph.django_salted_sha1, **a)),
    ("django unsalted md5$$ (<= 4.2)", [dict(salt="")],
     lambda **a: passlib_scheme(ph.django_salted_md5, **a)),
    ("django unsalted bare md5 (<= 4.2)", [{}], lambda **a: passlib_scheme(ph.hex_md5)),
    ("passlib bcrypt", [dict(rounds=4), dict(rounds=5)],
     lambda **a: passlib_scheme(ph.bcrypt, **a)),
    ("passlib bcrypt_sha256 v2", [dict(rounds=4), dict(rounds=5)],
     lambda **a: passlib_scheme(ph.bcrypt_sha256, **a)),
    ("passlib bcrypt_sha256 v1", [dict(rounds=4, version=1)],
     lambda **a: passlib_scheme(ph.bcrypt_sha256, **a)),
    ("passlib pbkdf2_sha1", [dict(rounds=1000), dict(rounds=2000)],
     lambda **a: passlib_scheme(ph.pbkdf2_sha1, **a)),
    ("passlib pbkdf2_sha256", [dict(rounds=1000), dict(rounds=2000)],
     lambda **a: passlib_scheme(ph.pbkdf2_sha256, **a)),
    ("passlib pbkdf2_sha512", [dict(rounds=1000), dict(rounds=2000)],
     lambda **a: passlib_scheme(ph.pbkdf2_sha512, **a)),
    ("passlib argon2", [dict(memory_cost=64, time_cost=1, parallelism=1),
                        dict(memory_cost=256, time_cost=2, parallelism=2)],
     lambda **a: passlib_scheme(ph.argon2, **a)),
    ("passlib scrypt", [dict(rounds=4, block_size=8, parallelism=1),
                        dict(rounds=6, block_size=4, parallelism=2)],
     lambda **a: passlib_scheme(ph.scrypt, **a)),
    ("passlib sha256_crypt", [dict(rounds=1000), dict(rounds=5000)],
     lambda **a: passlib_scheme(ph.sha256_crypt, **a)),
    ("passlib sha512_crypt", [dict(rounds=1000), dict(rounds=5000)],
     lambda **a: passlib_scheme(ph.sha512_crypt, **a)),
    ("passlib ldap_md5", [{}], lambda **a: passlib_scheme(ph.ldap_md5)),
    ("passlib ldap_sha1", [{}], lambda **a: passlib_scheme(ph.ldap_sha1)),
    ("passlib ldap_salted_md5", [dict(salt_size=4), dict(salt_size=16)],
     lambda **a: passlib_scheme(ph.ldap_salted_md5, **a)),
    ("passlib ldap_salted_sha1", [dict(salt_size=4), dict(salt_size=16)],
     lambda **a: passlib_scheme(ph.ldap_salted_sha1, **a)),
    ("passlib ldap_salted_sha256", [dict(salt_size=4), dict(salt_size=16)],
     lambda **a: passlib_scheme(ph.ldap_salted_sha256, **a)),
    ("passlib ldap_salted_sha512", [dict(salt_size=4), dict(salt_size=16)],
     lambda **a: passlib_scheme(ph.ldap_salted_sha512, **a)),
    ("passlib ldap_bcrypt", [dict(rounds=4)], lambda **a: passlib_scheme(ph.ldap_bcrypt, **a)),
    ("passlib ldap_sha256_crypt", [dict(rounds=1000)],
     lambda **a: passlib_scheme(ph.ldap_sha256_crypt, **a)),
    ("passlib ldap_sha512_crypt", [dict(rounds=1000)],
     lambda **a: passlib_scheme(ph.ldap_sha512_crypt, **a)),
]

LONG = 100  # passwords longer than this also try password + "x" (truncating schemes)


def run(job):
    index, cost_index, pw = job
    scheme, costs, factory = SCHEMES[index]
    attrs = costs[cost_index]
    make, verify = factory(**attrs)
    label = f"{scheme} [{cost_label(attrs)}] password of {len(pw.encode())} bytes"
    try:
        hash_ = make(pw)
    except ValueError as refused:  # bcrypt 5: "password cannot be longer than 72 bytes"
        return {"skipped": f"{label}: {refused}"}
    candidates = [pw, "x" + pw] + ([pw + "x"] if len(pw) > LONG else [])
    verdicts = [[c, bool(verify(c, hash_))] for c in candidates]
    return {"scheme": scheme, "label": label, "hash": hash_, "verdicts": verdicts}


def main():
    req = json.load(sys.stdin)
    jobs = [
        (i, c, pw)
        for i, (_, costs, _) in enumerate(SCHEMES)
        for c in range(len(costs))
        for pw in req["passwords"]
    ]
    with Pool(2) as pool:
        results = pool.map(run, jobs, chunksize=1)
    marker = make_password(None)
    out = {
        "entries": [r for r in results if "hash" in r],
        "skipped": [r["skipped"] for r in results if "skipped" in r],
        "unusable": {
            "hash": marker,
            "verdicts": [[pw, check_password(pw, marker)] for pw in req["passwords"]],
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
