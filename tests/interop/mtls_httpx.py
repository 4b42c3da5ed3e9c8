#!/usr/bin/env python3
"""Get a token through secretgate with httpx over HTTP/2 and a TLS client certificate.

The HTTP/2 counterpart of mtls_requests.py (requests speaks HTTP/1.1 only): the same
request, RFC 8705 §2, the client authenticates with its certificate (tls_client_auth or
self_signed_tls_client_auth) and names itself with the client_id body parameter; no
secret is sent. httpx (with the `http2` extra, h2) offers h2 and http/1.1 by ALPN and
speaks whichever the server picks: the caller checks `http_version`.

Prints one JSON line on stdout: {"status": <int>, "http_version": "HTTP/2" (or
"HTTP/1.1" if the server did not pick h2), "body": <parsed JSON or text>}; exit 0 when
the status is 200, else 1. Argument errors exit 2 (argparse).
"""

import argparse
import json
import ssl
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--token-url", required=True)
    p.add_argument("--ca", required=True, help="CA that issued the gateway's certificate")
    p.add_argument("--cert", required=True, help="client certificate (PEM)")
    p.add_argument("--key", required=True, help="its private key (PEM)")
    p.add_argument("--client-id", required=True)
    p.add_argument("--secret", default=None,
                   help="also send client_secret (a second method: refused)")
    args = p.parse_args(argv)

    import httpx

    # httpx 0.28 takes the client certificate in the SSL context (its `cert=` argument
    # is deprecated); httpcore sets the ALPN protocols on it.
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    data = {"grant_type": "client_credentials", "client_id": args.client_id}
    if args.secret is not None:
        data["client_secret"] = args.secret
    with httpx.Client(http2=True, verify=ctx, timeout=30) as client:
        res = client.post(args.token_url, data=data)
    try:
        body = res.json()
    except ValueError:
        body = res.text
    out = {"status": res.status_code, "http_version": res.http_version, "body": body}
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    return 0 if res.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
