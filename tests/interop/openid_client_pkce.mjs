// A public client's authorization code flow with PKCE, through secretgate, with
// openid-client v6 (client.None(): client_id in the body, no credential).
//
//   node openid_client_pkce.mjs BASE_URL CLIENT_ID REDIRECT_URI [SCOPE]
//
// Discovery (RFC 8414) against the gateway, which rewrites the token service's metadata;
// then the front channel as a browser would (GET the authorization URL, read the 302,
// do not follow it), the code exchange with the verifier, a refresh, the revocation of
// the new refresh token, and that refresh token once more (to be refused). The test CA
// is trusted through NODE_EXTRA_CA_CERTS.
//
// Prints one JSON line, an object with one member per step; exit 0 when every step ran,
// 1 otherwise with "error" (what the failing step threw: openid-client's error, code,
// status and the server's error member). What each step answered is for the caller to
// judge.

import * as client from 'openid-client';

const [baseUrl, clientId, redirectUri, scope = 'read'] = process.argv.slice(2);
const out = {};

function failure(e) {
  return { name: e.name, message: e.message, code: e.code, status: e.status, error: e.error };
}

try {
  const config = await client.discovery(new URL(baseUrl), clientId, {}, client.None(), {
    algorithm: 'oauth2',
  });
  const metadata = config.serverMetadata();
  out.metadata = { ...metadata, supportsPKCE: metadata.supportsPKCE() };

  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
  });
  const res = await fetch(url, { redirect: 'manual' });
  const location = res.headers.get('location');
  out.authorize = { url: url.href, verifier, state, status: res.status, location };

  const tokens = await client.authorizationCodeGrant(config, new URL(location), {
    pkceCodeVerifier: verifier,
    expectedState: state,
  });
  out.exchange = { ...tokens };

  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  out.refresh = { ...refreshed };

  await client.tokenRevocation(config, refreshed.refresh_token, {
    token_type_hint: 'refresh_token',
  });
  out.revoke = { ok: true };

  try {
    await client.refreshTokenGrant(config, refreshed.refresh_token);
    out.refresh_after_revoke = { ok: true };
  } catch (e) {
    out.refresh_after_revoke = failure(e);
  }
} catch (e) {
  out.error = failure(e);
  process.exitCode = 1;
}
console.log(JSON.stringify(out));
