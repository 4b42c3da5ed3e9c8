// Verify secretgate's internal header (x-authenticated-client) with jose.
//
// This is the check a token service behind secretgate runs on every request, every rule
// of docs/design.md §5.5: the key by `kid` and `alg` pinned to that key (HS256 for a
// shared key, the JWK's ES256 or EdDSA for a published one; never `none`, no `crit`),
// the signature, `exp` and `iat` with a small skew, `iss`, `aud`, and the binding to
// this very request: `htm`, `htu`, `query_sha256` (present if and only if the request
// had a query) and `body_sha256`. Copy `loadKeys` and `authenticatedClient` into the
// service; the command line below is for trying it out, and is what secretgate's CI runs
// against headers made by a real gateway.
//
//   node verify.mjs (--jwks FILE | --hmac KID=FILE ...) --issuer ISS --audience AUD \
//        --method M --url URL --body-file FILE [--query Q] [--leeway S] HEADER
//
// Prints {"client_id", "auth_method", "cnf"} as JSON and exits 0, or prints
// "refused: <check>: <detail>" on stderr and exits 1 (2 for unusable arguments or keys).
// Needs Node.js 20 or later and jose (package.json beside this file: `npm ci`).

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as jose from 'jose';

// Every claim the gateway always sends; a header without one of them is refused.
const REQUIRED = ['iss', 'aud', 'sub', 'client_id', 'auth_method', 'iat', 'exp', 'jti',
  'htm', 'htu', 'body_sha256'];

/** The header is not valid for this request; `check` names the rule it broke. */
export class Refused extends Error {
  constructor(check, detail) {
    super(`${check}: ${detail}`);
    this.check = check;
  }
}

/**
 * kid -> {alg, key}: each ES256 / EdDSA key of the gateway's JWK Set (its
 * /.well-known/jwks.json on the admin listener, or its internal_header.jwks_file), pinned
 * to the JWK's algorithm, and each shared HS256 key (the bytes of a key file).
 */
export async function loadKeys(jwksJson, hmacFiles = []) {
  const keys = new Map();
  for (const jwk of jwksJson ? JSON.parse(jwksJson).keys : []) {
    if ('d' in jwk) throw new Error('a private key in the JWK Set; use the public set');
    // The algorithm: the JWK's alg, else the only one its curve has.
    const alg = jwk.alg ?? { 'P-256': 'ES256', Ed25519: 'EdDSA' }[jwk.crv];
    if (alg !== 'ES256' && alg !== 'EdDSA') continue;
    keys.set(jwk.kid, { alg, key: await jose.importJWK(jwk, alg) });
  }
  for (const [kid, file] of hmacFiles) {
    // Like the gateway: one trailing newline of a key file is not part of the key.
    let secret = readFileSync(file);
    const cut = secret.at(-1) !== 0x0a ? 0 : secret.at(-2) === 0x0d ? 2 : 1;
    secret = new Uint8Array(secret.subarray(0, secret.length - cut));
    keys.set(kid, { alg: 'HS256', key: secret });
  }
  return keys;
}

/** base64url (no padding) of SHA-256, as the gateway writes body_sha256. */
const b64Sha256 = (bytes) => createHash('sha256').update(bytes).digest('base64url');

// jose's error codes and the rule each one means (a failed claim names itself).
const JOSE_ERRORS = {
  ERR_JWS_SIGNATURE_VERIFICATION_FAILED: 'signature',
  ERR_JWT_EXPIRED: 'exp',
  ERR_JOSE_ALG_NOT_ALLOWED: 'alg',
};

/**
 * Checks one header against the request it came with and returns what the token service
 * needs: {client_id, auth_method, cnf} (cnf: {"x5t#S256": ...} when the client presented
 * a certificate, else null; RFC 8705 §3: bind the tokens to it).
 *
 * method, url: the request's method and the public URL of the endpoint (no query);
 * query: the raw query after "?" ('' for a bare "?"), or null without "?";
 * body: the exact body bytes received (a Buffer or Uint8Array).
 */
export async function authenticatedClient(value, keys,
  { issuer, audience, method, url, query, body, leeway = 5 }) {
  let header;
  try {
    header = jose.decodeProtectedHeader(value);
  } catch (e) {
    throw new Refused('malformed', e.message);
  }
  // RFC 7515 §4.1.11: the gateway uses no extension, so none is understood here.
  if ('crit' in header) throw new Refused('crit', `extensions ${JSON.stringify(header.crit)} are not understood`);
  const entry = typeof header.kid === 'string' ? keys.get(header.kid) : undefined;
  if (!entry) throw new Refused('kid', `unknown kid ${JSON.stringify(header.kid)}`);
  // The key decides the algorithm, never the header (RFC 8725 §3.1): an HS256 header
  // naming a public key's kid, or `none`, is refused before anything is computed.
  if (header.alg !== entry.alg) {
    throw new Refused('alg', `${JSON.stringify(header.alg)}, but key ${header.kid} is ${entry.alg}`);
  }
  let claims;
  try {
    ({ payload: claims } = await jose.jwtVerify(value, entry.key, {
      algorithms: [entry.alg], issuer, audience, clockTolerance: leeway, requiredClaims: REQUIRED,
    }));
  } catch (e) {
    const check = JOSE_ERRORS[e.code]
      ?? (e.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' ? (e.reason === 'missing' ? 'claims' : e.claim) : 'malformed');
    throw new Refused(check, e.message);
  }
  // jose checks iat in the future only with maxTokenAge; the rule is the same for all.
  if (claims.iat > Date.now() / 1000 + leeway) throw new Refused('iat', 'issued in the future');
  // The binding to this request: the header cannot be moved to another one.
  if (claims.htm !== method) throw new Refused('htm', `${claims.htm}, but the request is ${method}`);
  if (claims.htu !== url) throw new Refused('htu', `${claims.htu}, but the request is for ${url}`);
  if (claims.query_sha256 !== (query == null ? undefined : b64Sha256(query))) {
    throw new Refused('query_sha256', query == null
      ? 'present, but the request has no query' : "does not match the request's query");
  }
  if (claims.body_sha256 !== b64Sha256(body)) throw new Refused('body_sha256', 'does not match the body received');
  return { client_id: claims.client_id, auth_method: claims.auth_method, cnf: claims.cnf ?? null };
}

async function main() {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        jwks: { type: 'string' },
        hmac: { type: 'string', multiple: true, default: [] },
        issuer: { type: 'string' },
        audience: { type: 'string' },
        method: { type: 'string' },
        url: { type: 'string' },
        'body-file': { type: 'string' },
        query: { type: 'string' },
        leeway: { type: 'string', default: '5' },
      },
    });
    const o = args.values;
    for (const name of ['issuer', 'audience', 'method', 'url', 'body-file']) {
      if (o[name] === undefined) throw new Error(`--${name} is required`);
    }
    if (!o.jwks && o.hmac.length === 0) throw new Error('give --jwks and/or --hmac');
    if (args.positionals.length !== 1) throw new Error('give the header value, once');
    if (!/^\d+$/.test(o.leeway)) throw new Error('--leeway takes seconds');
    const hmacFiles = o.hmac.map((spec) => {
      const at = spec.indexOf('=');
      if (at < 1) throw new Error('--hmac takes KID=FILE');
      return [spec.slice(0, at), spec.slice(at + 1)];
    });
    args.keys = await loadKeys(o.jwks && readFileSync(o.jwks, 'utf8'), hmacFiles);
    args.body = readFileSync(o['body-file']);
  } catch (e) {
    process.stderr.write(`unusable arguments or keys: ${e.message}\n`);
    return 2;
  }
  const o = args.values;
  try {
    const client = await authenticatedClient(args.positionals[0], args.keys, {
      issuer: o.issuer, audience: o.audience, method: o.method, url: o.url,
      query: o.query ?? null, body: args.body, leeway: Number(o.leeway),
    });
    process.stdout.write(`${JSON.stringify(client)}\n`);
    return 0;
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    process.stderr.write(`refused: ${e.message}\n`);
    return 1;
  }
}

process.exitCode = await main();
