#!/usr/bin/env python3
"""Make and check password hashes of client secrets with independent implementations.

Used by tests/hashes/: the hashes secretgate is configured with are made here, at
test time, by the libraries people use to make them, and the hashes secretgate's
`hash-secret` and `new-secret --hash` commands print are checked here.

One JSON object is read from stdin (secrets never go on the command line) and one
line of JSON is printed on stdout:

  make:    {"secret": "...", "algs": ["argon2id", ...]}
           -> {"argon2id": "$argon2id$...", ...}, exit 0
  verify:  {"secret": "...", "hash": "..."}
           -> {"ok": true|false, "alg": "..."}, exit 0 (a mismatch is not an error)

Algorithms for `make`:
  argon2id        argon2-cffi PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
  bcrypt          Python's bcrypt, rounds=10
  bcrypt-2a       Python's bcrypt, rounds=10, prefix=b"2a" (the older spelling)
  bcrypt-2y       Python's bcrypt, rounds=10, written with the `$2y$` prefix that
                  `htpasswd -B` and PHP write (the same algorithm as `$2b$`; Python's
                  bcrypt only writes `$2a$` and `$2b$`, but verifies all three)
  bcrypt-8        Python's bcrypt, rounds=8 (below secretgate's floor)
  pbkdf2-phc      hashlib.pbkdf2_hmac("sha256", ..., 600000), written as the PHC string
                  $pbkdf2-sha256$i=600000,l=32$<B64 salt>$<B64 hash> (B64: standard
                  base64 without padding)
  pbkdf2-passlib  passlib's pbkdf2_sha256.using(rounds=600000)

`verify` picks the implementation from the hash's prefix: argon2-cffi for `$argon2id$`,
bcrypt.checkpw for `$2a$`/`$2b$`/`$2y$`, hashlib for a PHC `$pbkdf2-sha256$i=...`.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

import argon2
import bcrypt
from passlib.hash import pbkdf2_sha256

PBKDF2_ROUNDS = 600_000


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def make(secret: str, alg: str) -> str:
    raw = secret.encode()
    if alg == "argon2id":
        ph = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
        return ph.hash(secret)
    if alg == "bcrypt":
        return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=10)).decode()
    if alg == "bcrypt-2a":
        return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=10, prefix=b"2a")).decode()
    if alg == "bcrypt-2y":
        made = bcrypt.hashpw(raw, bcrypt.gensalt(rounds=10)).decode()
        assert made.startswith("$2b$"), made
        spelled = "$2y$" + made[len("$2b$"):]
        assert bcrypt.checkpw(raw, spelled.encode()), "bcrypt reads $2y$ as $2b$"
        return spelled
    if alg == "bcrypt-8":
        return bcrypt.hashpw(raw, bcrypt.gensalt(rounds=8)).decode()
    if alg == "pbkdf2-phc":
        salt = os.urandom(16)
        dk = hashlib.pbkdf2_hmac("sha256", raw, salt, PBKDF2_ROUNDS)
        return f"$pbkdf2-sha256$i={PBKDF2_ROUNDS},l={len(dk)}${b64(salt)}${b64(dk)}"
    if alg == "pbkdf2-passlib":
        return pbkdf2_sha256.using(rounds=PBKDF2_ROUNDS).hash(secret)
    raise SystemExit(f"unknown algorithm {alg!r}")


def verify(secret: str, stored: str) -> tuple[bool, str]:
    raw = secret.encode()
    if stored.startswith("$argon2id$"):
        try:
            return argon2.PasswordHasher().verify(stored, secret), "argon2id"
        except argon2.exceptions.VerifyMismatchError:
            return False, "argon2id"
    if stored[:4] in ("$2a$", "$2b$", "$2y$"):
        return bcrypt.checkpw(raw, stored.encode()), "bcrypt"
    if stored.startswith("$pbkdf2-sha256$i="):
        _, _, params, salt, digest = stored.split("$")
        fields = dict(p.split("=", 1) for p in params.split(","))
        expected = unb64(digest)
        dk = hashlib.pbkdf2_hmac(
            "sha256", raw, unb64(salt), int(fields["i"]), len(expected)
        )
        if "l" in fields and int(fields["l"]) != len(expected):
            return False, "pbkdf2-sha256"
        return hmac.compare_digest(dk, expected), "pbkdf2-sha256"
    raise SystemExit(f"not a hash this script reads: {stored[:16]!r}...")


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("make", "verify"):
        raise SystemExit("usage: hash_tool.py make|verify < request.json")
    request = json.load(sys.stdin)
    if sys.argv[1] == "make":
        out = {alg: make(request["secret"], alg) for alg in request["algs"]}
    else:
        ok, alg = verify(request["secret"], request["hash"])
        out = {"ok": ok, "alg": alg}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
