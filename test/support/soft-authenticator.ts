import { createHash, generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isoCBOR } from '@simplewebauthn/server/helpers';

/**
 * A software passkey authenticator (ES256, attestation "none") for server tests
 * without a browser: it answers the options Signet hands out with the JSON a
 * browser's `PublicKeyCredential.toJSON()` gives, and can be told to get
 * things wrong (another origin, another RP ID, no user verification, an old
 * counter, another user handle) so every refusal can be tested.
 */
export interface SoftAuthenticatorOptions {
  rpId: string;
  origin: string;
  /** User verification (the UV flag); default true. */
  uv?: boolean;
  /** Backup eligible (BE): a synced, "multiDevice" passkey. */
  backupEligible?: boolean;
  /** Backed up (BS). */
  backedUp?: boolean;
}

export interface SoftCredential {
  id: string;
  privateKey: KeyObject;
  signCount: number;
  userHandle: string;
}

export interface Tamper {
  /** clientDataJSON.origin */
  origin?: string;
  /** The RP ID whose hash goes into authenticatorData. */
  rpId?: string;
  /** Sign this counter instead of the next one. */
  signCount?: number;
  uv?: boolean;
  backupEligible?: boolean;
  userHandle?: string | undefined;
  /** clientDataJSON.challenge */
  challenge?: string;
  /** clientDataJSON.type */
  type?: string;
}

const b64u = (bytes: Uint8Array | Buffer) => Buffer.from(bytes).toString('base64url');
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest();

export class SoftAuthenticator {
  readonly credentials = new Map<string, SoftCredential>();
  readonly #options: Required<SoftAuthenticatorOptions>;

  constructor(options: SoftAuthenticatorOptions) {
    this.#options = { uv: true, backupEligible: false, backedUp: false, ...options };
  }

  #flags(tamper: Tamper, attested: boolean): number {
    const uv = tamper.uv ?? this.#options.uv;
    const be = tamper.backupEligible ?? this.#options.backupEligible;
    return 0x01 /* UP */ | (uv ? 0x04 : 0) | (be ? 0x08 : 0) | (be && this.#options.backedUp ? 0x10 : 0) | (attested ? 0x40 : 0);
  }

  #clientData(type: string, challenge: string, tamper: Tamper): Buffer {
    return Buffer.from(
      JSON.stringify({
        type: tamper.type ?? type,
        challenge: tamper.challenge ?? challenge,
        origin: tamper.origin ?? this.#options.origin,
        crossOrigin: false,
      }),
    );
  }

  /** Answers creation options (what `generateRegistrationOptions` made) like `navigator.credentials.create()`. */
  register(options: { challenge: string; user: { id: string } }, tamper: Tamper = {}): any {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = publicKey.export({ format: 'jwk' });
    const cose = isoCBOR.encode(
      new Map<number, number | Uint8Array>([
        [1, 2],
        [3, -7],
        [-1, 1],
        [-2, Buffer.from(jwk.x!, 'base64url')],
        [-3, Buffer.from(jwk.y!, 'base64url')],
      ]),
    );
    const id = randomBytes(16);
    const counter = Buffer.alloc(4);
    const authData = Buffer.concat([
      sha256(tamper.rpId ?? this.#options.rpId),
      Buffer.from([this.#flags(tamper, true)]),
      counter,
      Buffer.alloc(16),
      Buffer.from([id.length >> 8, id.length & 0xff]),
      id,
      Buffer.from(cose),
    ]);
    const attestationObject = isoCBOR.encode(
      new Map<string, string | Map<string, never> | Uint8Array>([
        ['fmt', 'none'],
        ['attStmt', new Map<string, never>()],
        ['authData', authData],
      ]),
    );
    this.credentials.set(b64u(id), { id: b64u(id), privateKey, signCount: 0, userHandle: options.user.id });
    return {
      id: b64u(id),
      rawId: b64u(id),
      type: 'public-key',
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
      response: {
        clientDataJSON: b64u(this.#clientData('webauthn.create', options.challenge, tamper)),
        attestationObject: b64u(attestationObject),
        transports: ['internal'],
      },
    };
  }

  /** Answers request options like `navigator.credentials.get()`, with the passkey `credentialId`. */
  authenticate(options: { challenge: string; rpId?: string }, credentialId: string, tamper: Tamper = {}): any {
    const credential = this.credentials.get(credentialId);
    if (!credential) throw new Error(`no credential ${credentialId} in this authenticator`);
    credential.signCount = tamper.signCount ?? credential.signCount + 1;
    const counter = Buffer.alloc(4);
    counter.writeUInt32BE(credential.signCount);
    const authData = Buffer.concat([sha256(tamper.rpId ?? options.rpId ?? this.#options.rpId), Buffer.from([this.#flags(tamper, false)]), counter]);
    const clientData = this.#clientData('webauthn.get', options.challenge, tamper);
    const signature = sign('sha256', Buffer.concat([authData, sha256(clientData)]), credential.privateKey);
    const userHandle = 'userHandle' in tamper ? tamper.userHandle : credential.userHandle;
    return {
      id: credentialId,
      rawId: credentialId,
      type: 'public-key',
      clientExtensionResults: {},
      authenticatorAttachment: 'platform',
      response: {
        clientDataJSON: b64u(clientData),
        authenticatorData: b64u(authData),
        signature: b64u(signature),
        ...(userHandle !== undefined ? { userHandle } : {}),
      },
    };
  }

  /** The one passkey this authenticator holds (most tests make one). */
  get only(): string {
    const [id] = this.credentials.keys();
    if (id === undefined || this.credentials.size !== 1) throw new Error(`expected one credential, have ${this.credentials.size}`);
    return id;
  }
}
