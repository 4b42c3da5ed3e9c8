#!/usr/bin/env python3
"""Independently verify secretgate's internal upstream header with PyJWT.

The gateway forwards requests upstream with a compact HS256 JWS. This script
checks such a token with PyJWT (a separate implementation from the gateway's)
and prints exactly one line of JSON on stdout:

  valid:   {"ok": true, "claims": {...}, "header": {...}}, exit 0
  invalid: {"ok": false, "reason": "<ExceptionClass>: <message>"}, exit 1

Argument errors are reported by argparse on stderr with exit status 2.

Checks: signature (HS256 only), exp / iat / nbf (with --leeway), iss == --issuer,
--audience in aud, presence of exp, iat, iss, aud, sub, jti; and, when given,
header kid == --kid, claim htm == --htm, claim htu == --htu, claim
body_sha256 == base64url (no padding) of SHA-256 of the --body-file bytes, and
claim cnf["x5t#S256"] == base64url (no padding) of SHA-256 of the DER of the
certificate in --cert-file (RFC 8705 §3.1; the DER is taken from the PEM file by
Python's ssl module, independently of the gateway).

The checks are `verify_header`, which pkce_token_service.py imports to verify
every request it receives (key by kid, and the query rule as well).
"""

import argparse
import base64
import hashlib
import json
import ssl
import sys

REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]


class ClaimMismatch(Exception):
    """A check done by this script (not by PyJWT) failed."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--token", default=None,
                   help="compact JWS; read from stdin when omitted or '-'")
    p.add_argument("--key-file", required=True,
                   help="HMAC key: the file's bytes minus trailing CR/LF")
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--body-file", default=None,
                   help="exact body bytes received upstream (checks body_sha256)")
    p.add_argument("--htm", default=None, help="expected htm claim")
    p.add_argument("--htu", default=None, help="expected htu claim")
    p.add_argument("--kid", default=None, help="expected kid header parameter")
    p.add_argument("--cert-file", default=None,
                   help="PEM client certificate the cnf claim must name (x5t#S256)")
    p.add_argument("--leeway", type=float, default=0,
                   help="clock skew allowance in seconds (default: 0)")
    return p.parse_args(argv)


def b64url_sha256(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def expect_claim(claims, name, expected):
    if name not in claims:
        raise ClaimMismatch(f'missing claim "{name}"')
    if claims[name] != expected:
        raise ClaimMismatch(f'claim "{name}" is {claims[name]!r}, expected {expected!r}')


def verify_header(token, keys, issuer, audience, *, kid=None, htm=None, htu=None,
                  body=None, query=None, check_query=False, cert_der=None, leeway=0):
    """Verify one internal header; return (header, claims) or raise.

    `keys` is the HMAC key (bytes), or a dict kid -> key: then the header's kid picks
    the key and an unknown or missing kid is refused. `body` (bytes) checks
    body_sha256; with `check_query`, `query` (bytes, without '?') must match
    query_sha256, and no query (None) means no query_sha256 claim at all.
    """
    import jwt  # PyJWT

    if isinstance(keys, dict):
        named = jwt.get_unverified_header(token).get("kid")
        if named not in keys:
            raise ClaimMismatch(f"unknown kid {named!r}")
        key = keys[named]
    else:
        key = keys

    decoded = jwt.decode_complete(
        token,
        key,
        algorithms=["HS256"],
        audience=audience,
        issuer=issuer,
        leeway=leeway,
        options={"require": REQUIRED},
    )
    header, claims = decoded["header"], decoded["payload"]

    if kid is not None:
        if "kid" not in header:
            raise ClaimMismatch('missing header parameter "kid"')
        if header["kid"] != kid:
            raise ClaimMismatch(f'header "kid" is {header["kid"]!r}, expected {kid!r}')
    if htm is not None:
        expect_claim(claims, "htm", htm)
    if htu is not None:
        expect_claim(claims, "htu", htu)
    if body is not None:
        expect_claim(claims, "body_sha256", b64url_sha256(body))
    if check_query:
        if query is None:
            if "query_sha256" in claims:
                raise ClaimMismatch('claim "query_sha256" present on a request without a query')
        else:
            expect_claim(claims, "query_sha256", b64url_sha256(query))
    if cert_der is not None:
        if not isinstance(claims.get("cnf"), dict):
            raise ClaimMismatch('missing claim "cnf"')
        got = claims["cnf"].get("x5t#S256")
        if got != b64url_sha256(cert_der):
            raise ClaimMismatch(f'cnf "x5t#S256" is {got!r}, expected {b64url_sha256(cert_der)!r}')

    return header, claims


def verify(args):
    import jwt  # noqa: F401  (imported before the token arrives on stdin: see interop.rs)

    if args.token is None or args.token == "-":
        token = sys.stdin.read()
    else:
        token = args.token
    token = token.strip()

    with open(args.key_file, "rb") as f:
        key = f.read().rstrip(b"\r\n")
    body = None
    if args.body_file is not None:
        with open(args.body_file, "rb") as f:
            body = f.read()
    cert_der = None
    if args.cert_file is not None:
        with open(args.cert_file) as f:
            cert_der = ssl.PEM_cert_to_DER_cert(f.read())

    return verify_header(token, key, args.issuer, args.audience, kid=args.kid,
                         htm=args.htm, htu=args.htu, body=body, cert_der=cert_der,
                         leeway=args.leeway)


def main(argv=None):
    args = parse_args(argv)
    try:
        header, claims = verify(args)
    except Exception as e:
        out = {"ok": False, "reason": f"{type(e).__name__}: {e}"}
        code = 1
    else:
        out = {"ok": True, "claims": claims, "header": header}
        code = 0
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
