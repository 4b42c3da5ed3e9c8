#!/usr/bin/env python3
"""Get a token through secretgate with Python requests and a TLS client certificate.

RFC 8705 §2: the client authenticates with its certificate (tls_client_auth or
self_signed_tls_client_auth) and names itself with the client_id body parameter; no
secret is sent. requests (urllib3, OpenSSL) speaks HTTP/1.1.

Prints one JSON line on stdout: {"status": <int>, "http_version": "HTTP/1.1",
"body": <parsed JSON or text>}; exit 0 when the status is 200, else 1. Argument
errors exit 2 (argparse).
"""

import argparse
import json
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

    import requests

    data = {"grant_type": "client_credentials", "client_id": args.client_id}
    if args.secret is not None:
        data["client_secret"] = args.secret
    res = requests.post(args.token_url, data=data, cert=(args.cert, args.key),
                        verify=args.ca, timeout=30)
    try:
        body = res.json()
    except ValueError:
        body = res.text
    version = {10: "HTTP/1.0", 11: "HTTP/1.1"}.get(res.raw.version, str(res.raw.version))
    out = {"status": res.status_code, "http_version": version, "body": body}
    sys.stdout.write(json.dumps(out, separators=(",", ":")) + "\n")
    return 0 if res.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
