"""Interop helper for tests/password_interop.rs.

`make`: reads {"password": str, "long_password": str} on stdin, prints a JSON list of
[label, hash, password] made by Python's bcrypt, argon2-cffi, passlib and Django.
`check`: reads {"password": str, "hashes": [[label, hash]]} on stdin, prints a JSON object
{label: [accepts_right_password, accepts_wrong_password]} as judged by those libraries.
Costs are the lowest each library allows, to keep the suite fast.
"""
import json
import os
import sys

os.environ["PASSLIB_BUILTIN_BCRYPT"] = "enabled"  # passlib 1.7.4 cannot drive bcrypt 5

import argon2
import bcrypt
import django
from argon2.low_level import Type, hash_secret
from django.conf import settings
from passlib import hash as ph

# passlib's bcrypt backend probe hashes a >72-byte password, which bcrypt 5 refuses:
# use passlib's pure-Python backend instead (identical hashes, slower).
ph.bcrypt.set_backend("builtin")
ph.bcrypt_sha256.set_backend("builtin")

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
    ]
)
django.setup()
from django.contrib.auth.hashers import check_password, get_hasher, make_password  # noqa: E402


def django_hash(name, password, **attrs):
    hasher = get_hasher(name)
    for key, value in attrs.items():
        setattr(hasher, key, value)
    return hasher.encode(password, hasher.salt())


def argon2_cffi(password, kind, hash_len=32):
    salt = os.urandom(16)
    return hash_secret(password.encode(), salt, time_cost=1, memory_cost=64,
                       parallelism=1, hash_len=hash_len, type=kind).decode()


def make(req):
    pw = req["password"]
    pwb = pw.encode()
    long_pw = req["long_password"]
    b2b = bcrypt.hashpw(pwb, bcrypt.gensalt(4)).decode()
    out = [
        ["python bcrypt $2b$", b2b, pw],
        ["python bcrypt $2a$", bcrypt.hashpw(pwb, bcrypt.gensalt(4, prefix=b"2a")).decode(), pw],
        ["python bcrypt $2y$", "$2y$" + b2b[4:], pw],
        ["python bcrypt with NUL", bcrypt.hashpw(b"a\x00b", bcrypt.gensalt(4)).decode(), "a\x00b"],
        ["argon2-cffi argon2id", argon2.PasswordHasher(time_cost=1, memory_cost=64, parallelism=1).hash(pw), pw],
        ["argon2-cffi argon2i", argon2_cffi(pw, Type.I), pw],
        ["argon2-cffi argon2d", argon2_cffi(pw, Type.D), pw],
        ["argon2-cffi 4-byte output", argon2_cffi(pw, Type.ID, hash_len=4), pw],
        ["passlib pbkdf2_sha256", ph.pbkdf2_sha256.using(rounds=1000).hash(pw), pw],
        ["passlib pbkdf2_sha512", ph.pbkdf2_sha512.using(rounds=1000).hash(pw), pw],
        ["passlib pbkdf2_sha1", ph.pbkdf2_sha1.using(rounds=1000).hash(pw), pw],
        ["passlib bcrypt_sha256 v2", ph.bcrypt_sha256.using(rounds=4).hash(pw), pw],
        ["passlib bcrypt_sha256 v1", ph.bcrypt_sha256.using(rounds=4, version=1, ident="2a").hash(pw), pw],
        ["passlib bcrypt, truncated long password", ph.bcrypt.using(rounds=4).hash(long_pw), long_pw],
        ["django pbkdf2_sha256", django_hash("pbkdf2_sha256", pw, iterations=1000), pw],
        ["django pbkdf2_sha1", django_hash("pbkdf2_sha1", pw, iterations=1000), pw],
        ["django bcrypt_sha256", django_hash("bcrypt_sha256", pw, rounds=4), pw],
        ["django bcrypt", django_hash("bcrypt", pw, rounds=4), pw],
        ["django argon2", django_hash("argon2", pw, time_cost=1, memory_cost=64, parallelism=1), pw],
    ]
    if req.get("django_default"):
        out.append(["django make_password default (pbkdf2_sha256, 1 000 000)", make_password(pw), pw])
    return out


def verify(label, hash_, password):
    if label.startswith("django"):
        return check_password(password, hash_)
    if label.startswith("bcrypt"):
        return bcrypt.checkpw(password.encode(), hash_.encode())
    if label.startswith("argon2-cffi"):
        try:
            return argon2.PasswordHasher().verify(hash_, password)
        except argon2.exceptions.VerifyMismatchError:
            return False
    if label.startswith("passlib argon2"):
        return ph.argon2.verify(password, hash_)
    if label.startswith("passlib bcrypt"):
        return ph.bcrypt.verify(password, hash_)
    if label.startswith("passlib pbkdf2_sha256"):
        return ph.pbkdf2_sha256.verify(password, hash_)
    raise ValueError("unknown label " + label)


def check(req):
    pw = req["password"]
    return {label: [verify(label, h, pw), verify(label, h, pw + "x")] for label, h in req["hashes"]}


req = json.load(sys.stdin)
print(json.dumps(make(req) if sys.argv[1] == "make" else check(req)))
