#!/usr/bin/env python3
"""Make client key pairs for private_key_jwt tests with joserfc (Authlib's JOSE library).

  jwk_keygen.py --out-dir DIR KID:TYPE [KID:TYPE ...]

TYPE is RSA (2048 bits), EC (P-256) or OKP (Ed25519). For each, the private key is
written to DIR/KID.pem (PKCS#8 PEM, mode 0600: what Authlib and openid-client load),
and its public JWK, with "kid": KID and "use": "sig", goes into the JWK Set printed as
one JSON line on stdout. The keys are new on every run: nothing is committed.
"""

import argparse
import json
import os
import sys


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out-dir", required=True)
    p.add_argument("keys", nargs="+", help="KID:TYPE, TYPE one of RSA, EC, OKP")
    args = p.parse_args(argv)

    from joserfc.jwk import ECKey, OKPKey, RSAKey

    make = {
        "RSA": lambda: RSAKey.generate_key(2048),
        "EC": lambda: ECKey.generate_key("P-256"),
        "OKP": lambda: OKPKey.generate_key("Ed25519"),
    }
    public = []
    for spec in args.keys:
        kid, _, kind = spec.partition(":")
        if kind not in make or not kid:
            p.error(f"bad key {spec!r}: want KID:RSA, KID:EC or KID:OKP")
        key = make[kind]()
        path = os.path.join(args.out_dir, kid + ".pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.as_pem(private=True))
        jwk = key.as_dict(private=False)
        jwk.update({"kid": kid, "use": "sig"})
        public.append(jwk)
    sys.stdout.write(json.dumps({"keys": public}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
