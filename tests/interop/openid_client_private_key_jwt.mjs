// A client_credentials grant through secretgate with openid-client v6's PrivateKeyJwt
// (RFC 7523 §2.2): the assertion is made and signed by openid-client (oauth4webapi,
// WebCrypto), never by secretgate.
//
//   node openid_client_private_key_jwt.mjs ISSUER TOKEN_URL CLIENT_ID KEY_PEM ALG KID
//
// ALG picks the WebCrypto algorithm the PKCS#8 key is imported for, from which
// oauth4webapi derives the JWS `alg`: RS256 (RSASSA-PKCS1-v1_5), PS256 (RSA-PSS), ES256
// (ECDSA P-256), Ed25519 (sent as `Ed25519`, RFC 9864). The assertion's `aud` is ISSUER
// (oauth4webapi uses the issuer identifier); the body also carries client_id. The test
// CA is trusted through NODE_EXTRA_CA_CERTS.
//
// Prints one JSON line: {"ok": true, "tokens": {...}} (exit 0), or {"ok": false,
// "error": {...}} with openid-client's error, code, status and the server's error
// (exit 1).

import { readFileSync } from 'node:fs';
import * as client from 'openid-client';

const [issuer, tokenUrl, clientId, keyFile, alg, kid] = process.argv.slice(2);

const algorithms = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
  Ed25519: { name: 'Ed25519' },
};

function pkcs8(pem) {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(b64, 'base64');
}

try {
  const key = await crypto.subtle.importKey(
    'pkcs8',
    pkcs8(readFileSync(keyFile, 'utf8')),
    algorithms[alg],
    false,
    ['sign'],
  );
  const config = new client.Configuration(
    { issuer, token_endpoint: tokenUrl },
    clientId,
    {},
    client.PrivateKeyJwt({ key, kid }),
  );
  const tokens = await client.clientCredentialsGrant(config, { scope: 'read' });
  console.log(JSON.stringify({ ok: true, tokens: { ...tokens } }));
} catch (e) {
  console.log(
    JSON.stringify({
      ok: false,
      error: { name: e.name, message: e.message, code: e.code, status: e.status, error: e.error },
    }),
  );
  process.exit(1);
}
