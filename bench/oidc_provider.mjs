// panva's oidc-provider configured like `idp` for bench/run.py: one confidential client
// (client_secret_basic), RS256 ID tokens, PKCE S256 required, refresh tokens for
// offline_access rotated on every use, storage in memory (the library's default adapter).
// Logins go through the library's own login and consent pages (devInteractions), once per
// driver connection, as a browser would.
//
// Environment: OP_PORT, OP_ISSUER, OP_CLIENT_ID, OP_CLIENT_SECRET, OP_REDIRECT_URI.
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: 'bench' };

const provider = new Provider(process.env.OP_ISSUER, {
  clients: [{
    client_id: process.env.OP_CLIENT_ID,
    client_secret: process.env.OP_CLIENT_SECRET,
    redirect_uris: [process.env.OP_REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  }],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  scopes: ['openid', 'offline_access', 'email', 'profile'],
  pkce: { required: () => true },
  // Rotate on every use, as idp does (the default rotates confidential clients' tokens late).
  rotateRefreshToken: () => true,
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600 },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.com`, email_verified: true, name: 'Bench User' };
      },
    };
  },
});
provider.proxy = false;
provider.listen(Number(process.env.OP_PORT), '127.0.0.1', () => {
  process.stdout.write('ready\n');
});
