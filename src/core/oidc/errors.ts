/** Error codes of RFC 6749 §4.1.2.1 / §5.2, RFC 6750 §3.1, RFC 8707 and OpenID Connect Core §3.1.2.6. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'invalid_grant'
  | 'unauthorized_client'
  | 'unsupported_grant_type'
  | 'unsupported_response_type'
  | 'invalid_scope'
  | 'invalid_target'
  | 'access_denied'
  | 'login_required'
  | 'consent_required'
  | 'interaction_required'
  | 'account_selection_required'
  | 'request_not_supported'
  | 'request_uri_not_supported'
  | 'registration_not_supported'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'temporarily_unavailable'
  | 'server_error';

/**
 * A protocol error, answered the way its endpoint's RFC says (a JSON body at
 * the token endpoint, a redirect back to the client from /authorize, a
 * WWW-Authenticate challenge at UserInfo). `description` is public: never a
 * secret, and only the characters RFC 6749 allows (see `oauthText`).
 */
export class OAuthError extends Error {
  override readonly name = 'OAuthError';

  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = error === 'invalid_client' || error === 'invalid_token' ? 401 : error === 'insufficient_scope' ? 403 : 400,
    readonly retryAfter?: number,
  ) {
    super(description);
  }
}

/**
 * RFC 6749 §5.2: error_description holds only %x20-21 / %x23-5B / %x5D-7E (no
 * quote, no backslash, nothing outside printable ASCII); strict clients refuse
 * anything else. Whatever a message echoes is cut down to that set here.
 */
export function oauthText(text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '');
}
