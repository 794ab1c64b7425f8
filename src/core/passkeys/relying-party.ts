import type {
  AuthenticationResponseJSON,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { PasskeyRecord, User } from '../../model.js';

type Server = typeof import('@simplewebauthn/server');
type Helpers = typeof import('@simplewebauthn/server/helpers');

/**
 * @simplewebauthn/server and its ASN.1 and CBOR libraries take about 0.4 s and
 * 30 MB to load: they load at the first passkey ceremony, not at start.
 */
let library: Promise<[Server, Helpers]> | undefined;
function webauthn(): Promise<[Server, Helpers]> {
  return (library ??= Promise.all([import('@simplewebauthn/server'), import('@simplewebauthn/server/helpers')]));
}

/**
 * The WebAuthn relying party (W3C WebAuthn Level 3, §7), on @simplewebauthn/server.
 * Everything the library checks is configured here once: the RP ID and the
 * exact origins from configuration, user verification per ceremony, the
 * signature counter. Its failures (it throws plain `Error`s on bad input)
 * become a `CeremonyError` with a short reason for the audit log; the client
 * only ever sees a catalog code.
 */
export interface RelyingPartyConfig {
  rpId: string;
  rpName: string;
  origins: readonly string[];
}

/** How long the browser may take over a ceremony (advisory; the challenge's own lifetime decides). */
const CEREMONY_TIMEOUT_MS = 5 * 60 * 1000;

/** Why a response was refused, for the audit log (never shown to the client). */
export type FailureReason =
  'origin' | 'rp_id' | 'user_presence' | 'user_verification' | 'counter' | 'signature' | 'backup_eligibility' | 'algorithm' | 'malformed';

export class CeremonyError extends Error {
  override readonly name = 'CeremonyError';
  constructor(
    readonly reason: FailureReason,
    options?: { cause?: unknown },
  ) {
    super(`passkey response refused: ${reason}`, options);
  }
}

export interface VerifiedCredential {
  id: string;
  publicKey: string;
  counter: number;
  transports: string[];
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
  aaguid: string;
}

export interface VerifiedAssertion {
  counter: number;
  deviceType: 'singleDevice' | 'multiDevice';
  backedUp: boolean;
  userVerified: boolean;
}

export class RelyingParty {
  readonly #config: RelyingPartyConfig;

  constructor(config: RelyingPartyConfig) {
    this.#config = config;
  }

  get rpId(): string {
    return this.#config.rpId;
  }

  /**
   * Options for `navigator.credentials.create()`: a discoverable credential
   * (so it can sign in without a username) with user verification, no
   * attestation, and the user's existing passkeys excluded (one per authenticator).
   */
  async creationOptions(
    user: Pick<User, 'email' | 'username' | 'name'>,
    handle: string,
    exclude: readonly PasskeyRecord[],
  ): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const [{ generateRegistrationOptions }, { isoBase64URL }] = await webauthn();
    return generateRegistrationOptions({
      rpName: this.#config.rpName,
      rpID: this.#config.rpId,
      userID: isoBase64URL.toBuffer(handle),
      userName: user.username ?? user.email,
      userDisplayName: user.name ?? user.email,
      attestationType: 'none',
      excludeCredentials: exclude.map((p) => ({ id: p.id, transports: p.transports as never })),
      authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      timeout: CEREMONY_TIMEOUT_MS,
    });
  }

  /**
   * Checks a registration against the challenge that was issued (the caller
   * has already taken it out of the store). User verification is required: a
   * passkey signs in on its own later.
   */
  async verifyCreation(response: RegistrationResponseJSON, challenge: string): Promise<VerifiedCredential> {
    const [{ verifyRegistrationResponse }, helpers] = await webauthn();
    const { isoBase64URL } = helpers;
    let result: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      result = await verifyRegistrationResponse({
        response: withoutAttestation(response, helpers),
        expectedChallenge: challenge,
        expectedOrigin: [...this.#config.origins],
        expectedRPID: this.#config.rpId,
        requireUserPresence: true,
        requireUserVerification: true,
      });
    } catch (error) {
      throw new CeremonyError(reasonOf(error), { cause: error });
    }
    if (!result.verified) throw new CeremonyError('signature');
    const { credential, credentialDeviceType, credentialBackedUp, aaguid } = result.registrationInfo;
    return {
      id: credential.id,
      publicKey: isoBase64URL.fromBuffer(credential.publicKey),
      counter: credential.counter,
      transports: (response.response.transports ?? []).filter((t) => typeof t === 'string').slice(0, 8),
      deviceType: credentialDeviceType,
      backedUp: credentialBackedUp,
      aaguid,
    };
  }

  /**
   * Options for `navigator.credentials.get()`. Without `allow` (sign-in with a
   * discoverable credential, conditional UI included) the browser offers every
   * passkey it holds for this RP ID, and user verification is required; as a
   * second factor, the user's passkeys are listed and presence is enough.
   */
  async requestOptions(allow?: readonly PasskeyRecord[]): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const [{ generateAuthenticationOptions }] = await webauthn();
    return generateAuthenticationOptions({
      rpID: this.#config.rpId,
      timeout: CEREMONY_TIMEOUT_MS,
      ...(allow
        ? { allowCredentials: allow.map((p) => ({ id: p.id, transports: p.transports as never })), userVerification: 'discouraged' as const }
        : { userVerification: 'required' as const }),
    });
  }

  /**
   * Checks an assertion by `passkey` against the issued challenge: origin, RP
   * ID hash, flags, signature, and the signature counter (WebAuthn §6.1.1: a
   * counter that does not move forward is refused, a cloned-authenticator
   * signal). The backup eligibility flag must be what it was at registration
   * (§7.2: it never changes for a credential); the backup state may change.
   */
  async verifyAssertion(
    response: AuthenticationResponseJSON,
    challenge: string,
    passkey: PasskeyRecord,
    options: { requireUserVerification: boolean },
  ): Promise<VerifiedAssertion> {
    const [{ verifyAuthenticationResponse }, { isoBase64URL }] = await webauthn();
    let result: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: [...this.#config.origins],
        expectedRPID: this.#config.rpId,
        expectedType: 'webauthn.get',
        credential: { id: passkey.id, publicKey: isoBase64URL.toBuffer(passkey.publicKey), counter: passkey.counter, transports: passkey.transports },
        requireUserVerification: options.requireUserVerification,
      });
    } catch (error) {
      throw new CeremonyError(reasonOf(error), { cause: error });
    }
    if (!result.verified) throw new CeremonyError('signature');
    const info = result.authenticationInfo;
    if (info.credentialDeviceType !== passkey.deviceType) throw new CeremonyError('backup_eligibility');
    return { counter: info.newCounter, deviceType: info.credentialDeviceType, backedUp: info.credentialBackedUp, userVerified: info.userVerified };
  }
}

/** The base64url challenge inside a response's clientDataJSON, read before anything else is checked. */
export function challengeOf(response: { response: { clientDataJSON: string } }): string | undefined {
  try {
    const data: unknown = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8'));
    const challenge = (data as { challenge?: unknown } | null)?.challenge;
    return typeof challenge === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(challenge) ? challenge : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Attestation `none` (WebAuthn §8.7): Signet asks for no attestation and
 * evaluates none. A browser may still pass an authenticator's statement on;
 * it is replaced with `none` before verification, exactly as a browser that
 * honours `attestation: "none"` would, so no certificate sent by a client is
 * ever parsed and no revocation list it names is ever fetched.
 */
function withoutAttestation(response: RegistrationResponseJSON, { decodeAttestationObject, isoBase64URL, isoCBOR }: Helpers): RegistrationResponseJSON {
  let decoded: ReturnType<typeof decodeAttestationObject>;
  try {
    decoded = decodeAttestationObject(isoBase64URL.toBuffer(response.response.attestationObject));
  } catch (error) {
    throw new CeremonyError('malformed', { cause: error });
  }
  if (decoded.get('fmt') === 'none') return response;
  const attestationObject = isoCBOR.encode(
    new Map<string, unknown>([
      ['fmt', 'none'],
      ['attStmt', new Map()],
      ['authData', decoded.get('authData')],
    ]) as never,
  );
  return { ...response, response: { ...response.response, attestationObject: isoBase64URL.fromBuffer(attestationObject) } };
}

/** The library's error messages, sorted into the reasons the audit log records. */
function reasonOf(error: unknown): FailureReason {
  const message = error instanceof Error ? error.message : '';
  if (/origin/i.test(message)) return 'origin';
  if (/RP ID/i.test(message)) return 'rp_id';
  if (/counter/i.test(message)) return 'counter';
  if (/verification|verified/i.test(message)) return 'user_verification';
  if (/present/i.test(message)) return 'user_presence';
  if (/alg/i.test(message)) return 'algorithm';
  if (/signature/i.test(message)) return 'signature';
  return 'malformed';
}
