#!/usr/bin/env python3
"""Fetch an OAuth 2.0 token through secretgate with Authlib's requests client.

Used by the Rust integration tests to check that a real third-party OAuth
client library interoperates with the gateway for each client authentication
method. Output contract (stdout, exactly one line):

  success: the token endpoint's JSON response object, exit 0
  failure: {"error": "...", "status": N, "body": "..."}, exit 1
           (status is 0 when no HTTP response was received)

Argument errors are reported by argparse on stderr with exit status 2.
The client secret is never printed: every occurrence of it (raw or
urlencoded) in the output line is replaced by [REDACTED], so use secrets that
cannot occur in normal output (e.g. 16+ random characters), or short ones
will mangle the JSON strings.

What Authlib (verified against Authlib 1.9.10 source: authlib/oauth2/auth.py,
authlib/oauth2/client.py, authlib/oauth2/rfc7523/{auth,assertion}.py, and by
capturing the requests on a local HTTPS echo server) sends to the token
endpoint, always as `POST`, with headers
`Accept: application/json` and
`Content-Type: application/x-www-form-urlencoded;charset=UTF-8` (plus the
usual requests headers: Host, User-Agent python-requests/X, Accept-Encoding
gzip/deflate, Connection keep-alive, and a correct Content-Length), and a body
that starts with `grant_type=client_credentials` followed by `&scope=...`
when --scope is given (urllib.parse.urlencode style: space -> '+'):

* client_secret_basic: header `Authorization: Basic base64(id + ":" + secret)`.
  NOTE: id and secret are NOT form-urlencoded before base64 (RFC 6749
  section 2.3.1 says they should be), and the text is encoded as latin-1,
  not UTF-8 (a secret with characters outside latin-1 makes Authlib raise).
  The body carries no client_id / client_secret.
* client_secret_post: no Authorization header; `&client_id=ID&client_secret=SECRET`
  are appended to the body (after grant_type/scope), urlencoded.
* client_secret_jwt (RFC 7523 via authlib.oauth2.rfc7523.ClientSecretJWT):
  no Authorization header and NO client_id in the body; the body gets
  `&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer`
  `&client_assertion=<JWS>` appended. The JWS is compact HS256, keyed with
  the UTF-8 bytes of the secret; protected header exactly
  `{"typ":"JWT","alg":"HS256"}` (no kid); claims, in this order:
  iss = client_id, aud = the token endpoint URL string given to
  ClientSecretJWT (here: --token-url verbatim, a single string, not a list),
  sub = client_id, iat = int(time.time()), exp = iat + 3600,
  jti = 36 random characters from [A-Za-z0-9]. No nbf.
"""

import argparse
import json
import sys
import warnings
from urllib.parse import quote, quote_plus

METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--token-url", required=True,
                   help="e.g. https://127.0.0.1:PORT/oauth2/token")
    p.add_argument("--ca", required=True,
                   help="PEM file with the CA certificate(s) to trust")
    p.add_argument("--client-id", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--grant", default="client_credentials",
                   help="grant_type (default: client_credentials)")
    p.add_argument("--scope", default=None)
    p.add_argument("--timeout", type=float, default=15.0,
                   help="HTTP timeout in seconds (default: 15)")
    return p.parse_args(argv)


class Redactor:
    """Removes every form of the secret we might otherwise echo."""

    def __init__(self, secret):
        forms = {secret, quote_plus(secret), quote(secret, safe="")}
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text):
        for f in self.forms:
            text = text.replace(f, "[REDACTED]")
        return text


def emit(obj, redact):
    sys.stdout.write(redact(json.dumps(obj, separators=(",", ":"))) + "\n")
    sys.stdout.flush()


def fail(redact, error, status=0, body=""):
    emit({"error": str(error), "status": int(status), "body": body}, redact)
    return 1


def run(args):
    redact = Redactor(args.secret)

    try:
        # Imported here so that a broken environment is reported in the
        # one-line JSON format as well.
        from authlib.integrations.requests_client import OAuth2Session
        from authlib.oauth2.rfc7523 import ClientSecretJWT
    except Exception as e:  # pragma: no cover - environment problem
        return fail(redact, f"import failed: {type(e).__name__}: {e}")

    # joserfc warns about HMAC keys shorter than 112 bits; test secrets may be
    # short on purpose, and stderr should stay quiet.
    warnings.filterwarnings("ignore", message="Key size should be")

    captured = {}

    def capture_response(resp):
        captured["resp"] = resp
        return resp

    try:
        session = OAuth2Session(
            client_id=args.client_id,
            client_secret=args.secret,
            token_endpoint_auth_method=args.method,
            scope=args.scope,
        )
        # Do not let proxy / CA-bundle / netrc environment variables change
        # what is tested: talk to the gateway directly, trust only --ca.
        session.trust_env = False
        session.verify = args.ca
        if args.method == "client_secret_jwt":
            # As documented by Authlib ("Using client_secret_jwt in Requests"):
            # register the RFC 7523 signer under its name
            # ("client_secret_jwt"), selected by token_endpoint_auth_method.
            session.register_client_auth_method(ClientSecretJWT(args.token_url))
        session.register_compliance_hook("access_token_response", capture_response)

        session.fetch_token(
            args.token_url,
            grant_type=args.grant,
            verify=args.ca,
            timeout=args.timeout,
        )
    except Exception as e:
        resp = captured.get("resp")
        status = resp.status_code if resp is not None else 0
        body = resp.text if resp is not None else ""
        return fail(redact, f"{type(e).__name__}: {e}", status, body)

    resp = captured.get("resp")
    if resp is None:  # pragma: no cover - hook not called: cannot happen
        return fail(redact, "no HTTP response captured")
    if not 200 <= resp.status_code < 300:
        # Authlib accepts any JSON object without "error" as a token, even
        # from a non-2xx response; the interop tests want a real success.
        return fail(redact, f"unexpected HTTP status {resp.status_code}",
                    resp.status_code, resp.text)
    try:
        # Print the server's response exactly as received (Authlib's
        # OAuth2Token would add a computed "expires_at").
        token = resp.json()
    except ValueError as e:  # pragma: no cover - Authlib already parsed it
        return fail(redact, f"{type(e).__name__}: {e}", resp.status_code, resp.text)
    emit(token, redact)
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except Exception as e:  # last resort: keep the output contract
        return fail(Redactor(args.secret), f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    sys.exit(main())
