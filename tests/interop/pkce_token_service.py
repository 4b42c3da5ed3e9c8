#!/usr/bin/env python3
"""A legacy token service stand-in for public clients with PKCE, behind secretgate.

It trusts nothing the gateway did not sign: every token and revocation request must
carry an internal header that PyJWT verifies (pyjwt_verify.verify_header: the key by
kid, iss, aud, exp, htm, htu = --public-url + path, body_sha256 of the exact body, no
query_sha256 without a query), with auth_method "none" and the body's client_id. And it
does what the gateway cannot (README "Public clients and PKCE"): it binds each code to
the client, the redirect_uri and the challenge, and compares the verifier itself.

  GET  /oauth2/authorize  a random single-use code for client_id, redirect_uri,
                          code_challenge, code_challenge_method; 302 to
                          redirect_uri?code=...&state=...
  POST /oauth2/token      authorization_code (the code is burnt by any exchange that
                          presents it, refused or not) and refresh_token (rotated)
  POST /oauth2/revoke     RFC 7009: revokes a refresh or access token, 200
  GET  /.well-known/oauth-authorization-server
                          metadata as a legacy service writes it (no "none", no PKCE
                          methods), for the gateway to rewrite

Anything wrong gets the RFC 6749 §5.2 JSON error (400, or 401 invalid_client).

It listens on 127.0.0.1, port 0, prints {"port": N} as its first stdout line once it
accepts connections, and appends one JSON line per request to --record: method, path,
query, headers ([name, value] pairs), body, params (the query's or the form body's
[name, value] pairs, decoded), the header check ({"ok", "claims"} or
{"ok": false, "reason"}; null where none is required) and the status and response.
"""

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from pyjwt_verify import verify_header

HEADER = "x-authenticated-client"
CREDENTIALS = ("client_secret", "client_assertion", "client_assertion_type")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--public-url", required=True,
                   help="the gateway's public URL (htu = it + the path)")
    p.add_argument("--key", action="append", required=True, metavar="KID=FILE",
                   help="an HS256 key of the internal header (repeatable)")
    p.add_argument("--issuer", required=True)
    p.add_argument("--audience", required=True)
    p.add_argument("--client", action="append", required=True, metavar="ID=REDIRECT_URI",
                   help="a public client and its one redirect URI (repeatable)")
    p.add_argument("--record", required=True, help="JSON-lines file of requests")
    return p.parse_args(argv)


class OAuthError(Exception):
    def __init__(self, error, description, status=400):
        super().__init__(description)
        self.error, self.description, self.status = error, description, status


def s256(verifier):
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class Service:
    """The state: codes, refresh and access tokens, under one lock."""

    def __init__(self, args):
        self.public_url = args.public_url.rstrip("/")
        self.keys = {}
        for item in args.key:
            kid, path = item.split("=", 1)
            with open(path, "rb") as f:
                self.keys[kid] = f.read().rstrip(b"\r\n")
        self.issuer, self.audience = args.issuer, args.audience
        self.clients = dict(item.split("=", 1) for item in args.client)
        self.record_file = open(args.record, "a", encoding="utf-8")
        self.lock = threading.Lock()
        self.codes = {}  # code -> {client_id, redirect_uri, challenge, method, scope, used}
        self.refresh_tokens = {}  # token -> {client_id, scope}
        self.access_tokens = {}  # token -> {client_id, refresh_token}

    def record(self, entry):
        with self.lock:
            self.record_file.write(json.dumps(entry) + "\n")
            self.record_file.flush()

    def metadata(self):
        base = self.public_url
        return 200, {
            "issuer": base,
            "authorization_endpoint": base + "/oauth2/authorize",
            "token_endpoint": base + "/oauth2/token",
            "revocation_endpoint": base + "/oauth2/revoke",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            "revocation_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def authorize(self, params):
        client_id = params.get("client_id")
        redirect_uri = params.get("redirect_uri")
        # Never redirect to a URI that is not the client's (RFC 6749 §4.1.2.1).
        if client_id not in self.clients:
            raise OAuthError("invalid_request", "unknown client_id")
        if redirect_uri != self.clients[client_id]:
            raise OAuthError("invalid_request", "redirect_uri is not the client's")
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "only code")
        method = params.get("code_challenge_method", "plain")
        if not params.get("code_challenge") or method not in ("S256", "plain"):
            raise OAuthError("invalid_request", "this service requires PKCE")
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "client_id": client_id, "redirect_uri": redirect_uri,
                "challenge": params["code_challenge"], "method": method,
                "scope": params.get("scope"), "used": False,
            }
        answer = {"code": code}
        if "state" in params:
            answer["state"] = params["state"]
        return 302, {"location": redirect_uri + "?" + urlencode(answer)}

    def issue(self, client_id, scope):
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.refresh_tokens[refresh] = {"client_id": client_id, "scope": scope}
        self.access_tokens[access] = {"client_id": client_id, "refresh_token": refresh}
        token = {"access_token": access, "token_type": "Bearer", "expires_in": 300,
                 "refresh_token": refresh}
        if scope:
            token["scope"] = scope
        return 200, token

    def token(self, client_id, params):
        grant = params.get("grant_type")
        with self.lock:
            if grant == "authorization_code":
                return self.exchange(client_id, params)
            if grant == "refresh_token":
                return self.refresh(client_id, params)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant!r}")

    def exchange(self, client_id, params):
        code = self.codes.get(params.get("code", ""))
        if code is None or code["used"]:
            raise OAuthError("invalid_grant", "unknown or used code")
        # Burnt by any exchange that presents it (RFC 6749 §4.1.2: used once).
        code["used"] = True
        if code["client_id"] != client_id:
            raise OAuthError("invalid_grant", "the code was issued to another client")
        if params.get("redirect_uri") != code["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = params.get("code_verifier", "")
        expected = s256(verifier) if code["method"] == "S256" else verifier
        # RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
        if not verifier or not hmac.compare_digest(expected, code["challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        return self.issue(client_id, code["scope"])

    def refresh(self, client_id, params):
        old = self.refresh_tokens.get(params.get("refresh_token", ""))
        if old is None or old["client_id"] != client_id:
            raise OAuthError("invalid_grant", "unknown or revoked refresh_token")
        # Rotation: the old refresh token is spent.
        del self.refresh_tokens[params["refresh_token"]]
        return self.issue(client_id, old["scope"])

    def revoke(self, client_id, params):
        token = params.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        with self.lock:
            for table in (self.refresh_tokens, self.access_tokens):
                entry = table.get(token)
                if entry is not None and entry["client_id"] == client_id:
                    del table[token]
            # RFC 7009 §2.2: an unknown token is answered 200 too.
        return 200, None

    def authenticate(self, method, path, query, headers, body, params):
        """The internal header, checked as the README says an upstream must."""
        if any(name.lower() == "authorization" for name, _ in headers):
            raise OAuthError("invalid_request", "an Authorization header reached the service")
        if any(name in params for name in CREDENTIALS):
            raise OAuthError("invalid_request", "client credentials reached the service")
        values = [v for n, v in headers if n.lower() == HEADER]
        if len(values) != 1:
            raise OAuthError("invalid_client", f"{len(values)} internal headers", 401)
        try:
            _, claims = verify_header(
                values[0], self.keys, self.issuer, self.audience, htm=method,
                htu=self.public_url + path, body=body, query=query, check_query=True)
        except Exception as e:
            raise OAuthError("invalid_client", f"{type(e).__name__}: {e}", 401) from e
        if claims.get("auth_method") != "none":
            raise OAuthError("invalid_client", "not a public client", 401)
        if claims.get("client_id") != params.get("client_id"):
            raise OAuthError("invalid_client", "client_id differs from the header's", 401)
        return claims


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    service = None  # set by main

    def log_message(self, format, *args):  # the record file is the log
        pass

    def do_GET(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def handle_request(self):
        url = urlsplit(self.path)
        query = url.query.encode("latin-1") if "?" in self.path else None
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = list(self.headers.items())
        form = body if self.command == "POST" else query or b""
        entry = {"method": self.command, "path": url.path,
                 "query": url.query if query is not None else None,
                 "headers": headers, "body": body.decode("utf-8", "replace"),
                 "params": parse_qsl(form.decode("utf-8", "replace"), keep_blank_values=True),
                 "header_check": None}
        try:
            status, answer = self.route(url.path, query, headers, body, entry)
        except OAuthError as e:
            status, answer = e.status, {"error": e.error, "error_description": e.description}
        entry["status"], entry["response"] = status, answer
        self.service.record(entry)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", answer["location"])
            payload = b""
        else:
            payload = b"" if answer is None else json.dumps(answer).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def route(self, path, query, headers, body, entry):
        service = self.service
        if self.command == "GET" and path == "/.well-known/oauth-authorization-server":
            return service.metadata()
        if self.command == "GET" and path == "/oauth2/authorize":
            return service.authorize(params_of(query or b""))
        if self.command == "POST" and path in ("/oauth2/token", "/oauth2/revoke"):
            params = params_of(body)
            try:
                claims = service.authenticate("POST", path, query, headers, body, params)
            except OAuthError as e:
                entry["header_check"] = {"ok": False, "reason": e.description}
                raise
            entry["header_check"] = {"ok": True, "claims": claims}
            if path == "/oauth2/token":
                return service.token(claims["client_id"], params)
            return service.revoke(claims["client_id"], params)
        raise OAuthError("invalid_request", f"no {self.command} {path} here", 404)


def params_of(raw):
    """A form or query: each name once (RFC 6749 §3.1, §3.2)."""
    pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
    params = dict(pairs)
    if len(params) != len(pairs):
        raise OAuthError("invalid_request", "a parameter is repeated")
    return params


def main(argv=None):
    args = parse_args(argv)
    Handler.service = Service(args)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sys.stdout.write(json.dumps({"port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
