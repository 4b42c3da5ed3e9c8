#!/usr/bin/env python3
"""Verify secretgate's internal header (x-authenticated-client) with PyJWT.

This is the check a token service behind secretgate runs on every request, every rule
of docs/design.md §5.5: the key by `kid` and `alg` pinned to that key (HS256 for a
shared key, the JWK's ES256 or EdDSA for a published one; never `none`, no `crit`),
the signature, `exp` and `iat` with a small skew, `iss`, `aud`, and the binding to this
very request: `htm`, `htu`, `query_sha256` (present if and only if the request had a
query) and `body_sha256`. Copy `load_keys` and `authenticated_client` into the service;
the command line below is for trying it out, and is what secretgate's CI runs against
headers made by a real gateway.

    verify.py (--jwks FILE | --hmac KID=FILE ...) --issuer ISS --audience AUD \
              --method M --url URL --body-file FILE [--query Q] [--leeway S] HEADER

Prints {"client_id", "auth_method", "cnf"} as JSON and exits 0, or prints
"refused: <check>: <detail>" on stderr and exits 1 (2 for unusable arguments or keys).

Needs PyJWT and cryptography (for ES256 and EdDSA): requirements.txt beside this file.
"""

import argparse
import base64
import hashlib
import json
import os
import sys

import jwt  # PyJWT

# Every claim the gateway always sends; a header without one of them is refused.
REQUIRED = ["iss", "aud", "sub", "client_id", "auth_method", "iat", "exp", "jti",
            "htm", "htu", "body_sha256"]


class Refused(Exception):
    """The header is not valid for this request; `check` names the rule it broke."""

    def __init__(self, check, detail):
        super().__init__(f"{check}: {detail}")
        self.check = check


def load_keys(jwks_file=None, hmac_files=()):
    """kid -> key: a PyJWK for each ES256 / EdDSA key of the gateway's JWK Set (its
    /.well-known/jwks.json on the admin listener, or its internal_header.jwks_file),
    which PyJWT pins to the JWK's algorithm, and the bytes of each shared HS256 key."""
    keys = {}
    if jwks_file:
        with open(jwks_file, "rb") as f:
            for jwk in json.load(f)["keys"]:
                if "d" in jwk:
                    raise ValueError(f"{jwks_file}: a private key; use the public JWK Set")
                key = jwt.PyJWK(jwk)  # the algorithm: the JWK's alg, else its curve's
                if key.algorithm_name in ("ES256", "EdDSA"):
                    keys[jwk["kid"]] = key
    for kid, path in hmac_files:
        with open(path, "rb") as f:
            secret = f.read()
        # Like the gateway: one trailing newline of a key file is not part of the key.
        for newline in (b"\r\n", b"\n"):
            if secret.endswith(newline):
                secret = secret[: -len(newline)]
                break
        keys[kid] = secret
    return keys


def b64_sha256(data):
    """base64url (no padding) of SHA-256, as the gateway writes body_sha256."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# PyJWT's exceptions, most specific first, and the rule each one means.
PYJWT_ERRORS = [
    (jwt.InvalidSignatureError, "signature"),
    (jwt.ExpiredSignatureError, "exp"),
    (jwt.ImmatureSignatureError, "iat"),  # iat in the future (the header has no nbf)
    (jwt.InvalidIssuerError, "iss"),
    (jwt.InvalidAudienceError, "aud"),
    (jwt.MissingRequiredClaimError, "claims"),
    (jwt.InvalidAlgorithmError, "alg"),
    (jwt.InvalidTokenError, "malformed"),
]


def authenticated_client(header_value, keys, *, issuer, audience, method, url, query,
                         body, leeway=5):
    """Checks one header against the request it came with and returns what the token
    service needs: {"client_id", "auth_method", "cnf"} (cnf: {"x5t#S256": ...} when the
    client presented a certificate, else None; RFC 8705 §3: bind the tokens to it).

    method, url: the request's method and the public URL of the endpoint (no query);
    query: the raw query bytes after "?" (b"" for a bare "?"), or None without "?";
    body: the exact body bytes received."""
    try:
        # Read here, not with jwt.get_unverified_header, which refuses a `crit` itself
        # as a token error like any other: the rule below names it.
        segment = header_value.split(".")[0]
        jose = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
        if not isinstance(jose, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:  # bad base64, bad JSON (UnicodeDecodeError is one too)
        raise Refused("malformed", f"the JOSE header: {e}") from None
    # RFC 7515 §4.1.11: the gateway uses no extension, so none is understood here.
    if "crit" in jose:
        raise Refused("crit", f"extensions {jose['crit']!r} are not understood")
    kid = jose.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise Refused("kid", f"unknown kid {kid!r}")
    # The key decides the algorithm, never the header (RFC 8725 §3.1): an HS256 header
    # naming a public key's kid, or `none`, is refused before anything is computed.
    alg = key.algorithm_name if isinstance(key, jwt.PyJWK) else "HS256"
    if jose.get("alg") != alg:
        raise Refused("alg", f"{jose.get('alg')!r}, but key {kid!r} is {alg}")
    try:
        claims = jwt.decode(header_value, key, algorithms=[alg], issuer=issuer,
                            audience=audience, leeway=leeway,
                            options={"require": REQUIRED, "strict_aud": True})
    except jwt.InvalidTokenError as e:
        check = next(c for kind, c in PYJWT_ERRORS if isinstance(e, kind))
        raise Refused(check, e) from None
    # The binding to this request: the header cannot be moved to another one.
    if claims["htm"] != method:
        raise Refused("htm", f"{claims['htm']!r}, but the request is {method!r}")
    if claims["htu"] != url:
        raise Refused("htu", f"{claims['htu']!r}, but the request is for {url!r}")
    if claims.get("query_sha256") != (None if query is None else b64_sha256(query)):
        raise Refused("query_sha256", "does not match the request's query"
                      if query is not None else "present, but the request has no query")
    if claims["body_sha256"] != b64_sha256(body):
        raise Refused("body_sha256", "does not match the body received")
    return {"client_id": claims["client_id"], "auth_method": claims["auth_method"],
            "cnf": claims.get("cnf")}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jwks", help="the gateway's JWK Set (ES256 and EdDSA keys)")
    p.add_argument("--hmac", action="append", default=[], metavar="KID=FILE",
                   help="a shared HS256 key and its kid (repeat for several)")
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--url", required=True, help="public URL of the endpoint, no query")
    p.add_argument("--body-file", required=True, help="the exact body bytes received")
    p.add_argument("--query", help="the query received, without '?' (omit if none)")
    p.add_argument("--leeway", type=int, default=5, help="clock skew, seconds (5)")
    p.add_argument("header", help="the value of x-authenticated-client")
    args = p.parse_args()
    if not args.jwks and not args.hmac:
        p.error("give --jwks and/or --hmac")
    try:
        hmac_files = [spec.split("=", 1) for spec in args.hmac]
        if any(len(pair) != 2 or not pair[0] for pair in hmac_files):
            raise ValueError("--hmac takes KID=FILE")
        keys = load_keys(args.jwks, hmac_files)
        with open(args.body_file, "rb") as f:
            body = f.read()
    except (OSError, ValueError, KeyError, jwt.PyJWKError) as e:
        print(f"unusable arguments or keys: {e!r}", file=sys.stderr)
        return 2
    # The query as the raw bytes of the argument (os.fsencode undoes Python's decoding).
    query = None if args.query is None else os.fsencode(args.query)
    try:
        client = authenticated_client(args.header, keys, issuer=args.issuer,
                                      audience=args.audience, method=args.method,
                                      url=args.url, query=query, body=body,
                                      leeway=args.leeway)
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        return 1
    print(json.dumps(client))
    return 0


if __name__ == "__main__":
    sys.exit(main())
