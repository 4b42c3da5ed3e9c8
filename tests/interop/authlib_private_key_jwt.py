#!/usr/bin/env python3
"""Fetch a token through secretgate with Authlib's PrivateKeyJWT (RFC 7523 §2.2).

  authlib_private_key_jwt.py --token-url URL --ca CA.pem --client-id ID
                             --key-file KEY.pem --alg ALG --kid KID

Output (stdout, one line): the token endpoint's JSON response, exit 0; or
{"error", "status", "body"}, exit 1 (status 0 when no response came).

What Authlib 1.9.10 sends (authlib/oauth2/rfc7523/{auth,assertion}.py): no
Authorization header and no client_id in the body; the body gets
client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer and
client_assertion=<JWS>, signed by joserfc with the private key under ALG, header
{"alg": ALG, "kid": KID} (kid only because we pass it in `headers`), claims iss = sub
= client_id, aud = --token-url, iat, exp = iat + 3600, jti (36 random characters).
The key is loaded with joserfc's import_key for its type (Authlib imports a bare PEM
as RSA only, so EC and OKP keys are passed as key objects).
"""

import argparse
import json
import sys
import warnings


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--token-url", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--key-file", required=True)
    p.add_argument("--alg", required=True, choices=["RS256", "PS256", "ES256", "EdDSA"])
    p.add_argument("--kid", default=None)
    p.add_argument("--timeout", type=float, default=15.0)
    return p.parse_args(argv)


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def run(args):
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc.jwk import ECKey, OKPKey, RSAKey

    # joserfc flags EdDSA as deprecated in favour of Ed25519 (RFC 9864); it still
    # signs with it, and that is the name this test wants.
    warnings.simplefilter("ignore")
    kind = {"RS256": RSAKey, "PS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[args.alg]
    with open(args.key_file, "rb") as f:
        key = kind.import_key(f.read())

    captured = {}

    def capture(resp):
        captured["resp"] = resp
        return resp

    try:
        session = OAuth2Session(
            client_id=args.client_id,
            client_secret=key,
            token_endpoint_auth_method="private_key_jwt",
        )
        session.trust_env = False
        session.verify = args.ca
        headers = {"kid": args.kid} if args.kid else None
        session.register_client_auth_method(
            PrivateKeyJWT(args.token_url, headers=headers, alg=args.alg)
        )
        session.register_compliance_hook("access_token_response", capture)
        session.fetch_token(args.token_url, grant_type="client_credentials",
                            verify=args.ca, timeout=args.timeout)
    except Exception as e:
        resp = captured.get("resp")
        emit({"error": f"{type(e).__name__}: {e}",
              "status": resp.status_code if resp is not None else 0,
              "body": resp.text if resp is not None else ""})
        return 1
    resp = captured["resp"]
    if not 200 <= resp.status_code < 300:
        emit({"error": f"unexpected HTTP status {resp.status_code}",
              "status": resp.status_code, "body": resp.text})
        return 1
    emit(resp.json())
    return 0


if __name__ == "__main__":
    sys.exit(run(parse_args()))
