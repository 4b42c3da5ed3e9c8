#!/usr/bin/env python3
"""A public client's authorization code flow with PKCE, through secretgate, with Authlib.

Authlib's requests OAuth2Session with token_endpoint_auth_method="none" and
code_challenge_method="S256" (so client_id in the body, never a secret), and
`requests` for the front channel (the browser's part: GET the authorization URL,
read the 302, do not follow it). The steps, in order:

  authorize               code 1 (verifier 1)
  exchange_no_verifier    code 1 without code_verifier: for the gateway to refuse
  exchange                code 1 with verifier 1 (so the refusal did not burn it)
  refresh                 refresh_token grant
  revoke                  RFC 7009, the new refresh token
  refresh_after_revoke    the revoked refresh token again: to be refused
  authorize_2             code 2 (verifier 2)
  exchange_wrong_verifier code 2 with another verifier: for the token service to refuse

Prints one JSON line, an object with one member per step: {"status", "body"} (the
body parsed as JSON when it is), plus "url", "verifier", "state" and "location" for
the authorize steps. Exit 0 when every step ran (whatever it answered), 1 otherwise
with {"error"}. What each answer should be is for the caller to judge.
"""

import argparse
import json
import sys
from urllib.parse import parse_qs, urlsplit


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base-url", required=True, help="the gateway, e.g. https://localhost:PORT")
    p.add_argument("--ca", required=True, help="PEM CA certificate to trust")
    p.add_argument("--client-id", required=True)
    p.add_argument("--redirect-uri", required=True)
    p.add_argument("--scope", default="read")
    p.add_argument("--timeout", type=float, default=15.0)
    return p.parse_args(argv)


def answer(resp):
    try:
        body = resp.json()
    except ValueError:
        body = resp.text
    return {"status": resp.status_code, "body": body}


def run(args, out):
    import requests
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session

    base = args.base_url.rstrip("/")
    token_url, revoke_url = base + "/oauth2/token", base + "/oauth2/revoke"
    session = OAuth2Session(
        client_id=args.client_id,
        token_endpoint_auth_method="none",
        code_challenge_method="S256",
        redirect_uri=args.redirect_uri,
        scope=args.scope,
    )
    # Only the test CA, no proxy or netrc from the environment.
    session.trust_env, session.verify = False, args.ca
    browser = requests.Session()
    browser.trust_env, browser.verify = False, args.ca

    last = {}

    def keep(resp):
        last["resp"] = resp
        return resp

    for hook in ("access_token_response", "refresh_token_response"):
        session.register_compliance_hook(hook, keep)

    def authorize(step):
        verifier = generate_token(48)
        url, state = session.create_authorization_url(base + "/oauth2/authorize",
                                                      code_verifier=verifier)
        resp = browser.get(url, allow_redirects=False, timeout=args.timeout)
        # resp.request.url: the URL as requests sent it.
        out[step] = dict(answer(resp), url=resp.request.url, verifier=verifier, state=state,
                         location=resp.headers.get("location"))
        return out[step]

    def grant(step, call):
        """Runs an Authlib call; records the HTTP answer whether it raised or not."""
        last.clear()
        try:
            call()
        except Exception as e:  # Authlib raises on an error response: recorded below
            out[step + "_raised"] = f"{type(e).__name__}: {e}"
        out[step] = answer(last["resp"]) if "resp" in last else {"status": 0}

    first = authorize("authorize")
    callback = first["location"] or ""
    grant("exchange_no_verifier", lambda: session.fetch_token(
        token_url, authorization_response=callback, state=first["state"], timeout=args.timeout))
    grant("exchange", lambda: session.fetch_token(
        token_url, authorization_response=callback, state=first["state"],
        code_verifier=first["verifier"], timeout=args.timeout))
    grant("refresh", lambda: session.refresh_token(token_url, timeout=args.timeout))
    refresh_token = session.token.get("refresh_token") if session.token else None
    out["revoke"] = answer(session.revoke_token(
        revoke_url, token=refresh_token, token_type_hint="refresh_token", timeout=args.timeout))
    grant("refresh_after_revoke", lambda: session.refresh_token(
        token_url, refresh_token=refresh_token, timeout=args.timeout))

    second = authorize("authorize_2")
    code = parse_qs(urlsplit(second["location"] or "").query).get("code", [""])[0]
    grant("exchange_wrong_verifier", lambda: session.fetch_token(
        token_url, code=code, grant_type="authorization_code",
        code_verifier=generate_token(48), timeout=args.timeout))


def main(argv=None):
    args = parse_args(argv)
    out = {}
    try:
        run(args, out)
        code = 0
    except Exception as e:
        out["error"] = f"{type(e).__name__}: {e}"
        code = 1
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
