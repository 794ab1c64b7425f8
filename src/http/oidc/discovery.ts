import { SUPPORTED_SCOPES } from '../../core/oidc/clients.js';
import { json } from '../context.js';
import { route } from '../route.js';
import { Discovery } from '../schemas.js';
import { OIDC_PATHS } from './paths.js';

/**
 * OpenID Connect Discovery 1.0 §3 / RFC 8414: every endpoint and capability
 * Signet has, and nothing it lacks. Fields whose default would claim more
 * than Signet does are written out (request_uri_parameter_supported defaults
 * to true; response_modes_supported to query and fragment).
 */
export const discoveryRoute = route({
  method: 'GET',
  path: '/.well-known/openid-configuration',
  tag: 'Discovery',
  summary: 'OpenID Provider metadata (OpenID Connect Discovery 1.0, RFC 8414)',
  auth: 'none',
  success: { status: 200, description: 'Metadata document', schema: Discovery },
  handle: (c) => {
    const { config, keyring } = c.var.services;
    const base = config.publicUrl;
    const common = {
      issuer: base,
      jwks_uri: `${base}/.well-known/jwks.json`,
      token_endpoint: `${base}/auth/token`,
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: [keyring.algorithm],
    };
    const cache = { 'cache-control': 'public, max-age=300' };
    if (config.jwtSecret !== undefined) {
      // HS256 (JWT_SECRET) cannot sign ID tokens for other parties: only the first-party grants exist.
      return json(
        {
          ...common,
          grant_types_supported: ['password', 'refresh_token'],
          response_types_supported: [],
          token_endpoint_auth_methods_supported: ['none'],
          claims_supported: ['iss', 'aud', 'sub', 'exp', 'iat', 'jti', 'sid', 'client_id', 'email', 'email_verified', 'amr'],
        },
        200,
        cache,
      );
    }
    return json(
      {
        ...common,
        authorization_endpoint: `${base}${OIDC_PATHS.authorize}`,
        userinfo_endpoint: `${base}${OIDC_PATHS.userinfo}`,
        end_session_endpoint: `${base}${OIDC_PATHS.endSession}`,
        scopes_supported: [...SUPPORTED_SCOPES],
        response_types_supported: ['code'],
        response_modes_supported: ['query'],
        grant_types_supported: ['authorization_code', 'refresh_token', 'password'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post', 'none'],
        code_challenge_methods_supported: ['S256'],
        prompt_values_supported: ['none', 'login', 'consent', 'select_account'],
        claims_supported: [
          'sub',
          'iss',
          'aud',
          'exp',
          'iat',
          'auth_time',
          'nonce',
          'amr',
          'sid',
          'at_hash',
          'name',
          'preferred_username',
          'updated_at',
          'email',
          'email_verified',
        ],
        claims_parameter_supported: false,
        request_parameter_supported: false,
        request_uri_parameter_supported: false,
        authorization_response_iss_parameter_supported: true,
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        frontchannel_logout_supported: false,
      },
      200,
      cache,
    );
  },
});
