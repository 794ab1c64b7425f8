/** Where the OpenID Provider's endpoints live (discovery announces them). */
export const OIDC_PATHS = {
  authorize: '/oauth2/authorize',
  /** Back from the sign-in page to a stored authorization request. */
  resume: '/oauth2/authorize/continue',
  userinfo: '/oauth2/userinfo',
  endSession: '/oauth2/logout',
} as const;

const RESUME = new RegExp(`^${OIDC_PATHS.resume}\\?id=([A-Za-z0-9_-]{43})$`);

/** The authorization request a return_to resumes, if it is one. */
export function resumedRequest(returnTo: string | null | undefined): string | undefined {
  return returnTo ? RESUME.exec(returnTo)?.[1] : undefined;
}

export function resumePath(requestId: string): string {
  return `${OIDC_PATHS.resume}?id=${requestId}`;
}
