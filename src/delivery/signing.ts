import crypto from 'node:crypto';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com/). The signed content is
 * `${webhook-id}.${webhook-timestamp}.${body}`; `webhook-signature` holds space-separated
 * signatures: `v1,<base64 HMAC-SHA256>` for each symmetric secret (the current one first, then any
 * still in their rotation grace period, so receivers keep verifying while they switch) and
 * `v1a,<base64 ed25519 signature>` when the destination has a key pair.
 *
 * Key formats: `whsec_` + base64 of the HMAC key (the spec allows 24 to 64 bytes; we make 32).
 * The spec only says "base64, prefixed" for ed25519, so we chose raw keys: `whsk_` + base64 of
 * the 32-byte seed (RFC 8032 private key) and `whpk_` + base64 of the 32-byte public key — what
 * libsodium, Go and PyNaCl take without any ASN.1. A 64-byte `whsk_` (libsodium's seed‖public
 * form) is accepted as well, so keys made by other implementations can be imported.
 */

const SECRET_PREFIX = 'whsec_';
const PRIVATE_PREFIX = 'whsk_';
const PUBLIC_PREFIX = 'whpk_';

// Fixed DER wrappers around raw ed25519 keys (RFC 8410): PKCS#8 for the seed, SPKI for the public key.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface SigningKeys {
  /** whsec_… secrets: the current one first, then any still in a rotation grace period. */
  secrets: string[];
  /** whsk_… key: adds a v1a (ed25519) signature. */
  ed25519PrivateKey?: string;
}

export function generateSigningSecret(): string {
  return SECRET_PREFIX + crypto.randomBytes(32).toString('base64');
}

export function generateEd25519KeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey } = crypto.generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' });
  return {
    privateKey: PRIVATE_PREFIX + Buffer.from(jwk.d!, 'base64url').toString('base64'),
    publicKey: PUBLIC_PREFIX + Buffer.from(jwk.x!, 'base64url').toString('base64'),
  };
}

/**
 * `msg_` + 12 hex digits of the time in ms (fixed width, so ids sort by creation time until the
 * year 10889) + 16 hex digits of randomness (64 bits: no collision within a millisecond in practice).
 * No `.`: the spec forbids it in ids, which are part of the signed content.
 */
export function newWebhookId(): string {
  return `msg_${Date.now().toString(16).padStart(12, '0')}${crypto.randomBytes(8).toString('hex')}`;
}

export function signatureHeader(webhookId: string, timestampSeconds: number, body: string | Buffer, keys: SigningKeys): string {
  if (keys.secrets.length === 0 && keys.ed25519PrivateKey === undefined) {
    throw new Error('cannot sign a webhook without keys: give at least one whsec_ secret or an ed25519 private key');
  }
  const prefix = signedPrefix(webhookId, timestampSeconds);
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  const parts = keys.secrets.map((secret, i) => {
    const key = hmacKey(secret, `signing secret ${i + 1} of ${keys.secrets.length}`);
    return `v1,${crypto.createHmac('sha256', key).update(prefix).update(bytes).digest('base64')}`;
  });
  if (keys.ed25519PrivateKey !== undefined) {
    const signature = crypto.sign(null, Buffer.concat([prefix, bytes]), privateKeyObject(keys.ed25519PrivateKey));
    parts.push(`v1a,${signature.toString('base64')}`);
  }
  return parts.join(' ');
}

/** Decoded and checked once per secret: a dispatcher signs with the same few secrets all day. */
const hmacKeys = new Map<string, crypto.KeyObject>();
function hmacKey(secret: string, what: string): crypto.KeyObject {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.createSecretKey(decodeSecret(secret, what));
    if (hmacKeys.size >= 1000) hmacKeys.clear();
    hmacKeys.set(secret, key);
  }
  return key;
}

/** The three Standard Webhooks headers; webhook-signature is left out when there is nothing to sign with. */
export function webhookHeaders(webhookId: string, timestampSeconds: number, body: string | Buffer, keys: SigningKeys): Record<string, string> {
  const headers: Record<string, string> = { 'webhook-id': webhookId, 'webhook-timestamp': String(timestampSeconds) };
  if (keys.secrets.length > 0 || keys.ed25519PrivateKey !== undefined) {
    headers['webhook-signature'] = signatureHeader(webhookId, timestampSeconds, body, keys);
  }
  return headers;
}

/** True when one of the header's v1a signatures is valid for this whpk_ key. Checks no timestamp tolerance. */
export function verifyEd25519(publicKey: string, webhookId: string, timestampSeconds: number, body: string | Buffer, header: string): boolean {
  const key = publicKeyObject(publicKey);
  const content = Buffer.concat([signedPrefix(webhookId, timestampSeconds), typeof body === 'string' ? Buffer.from(body) : body]);
  for (const part of header.split(' ')) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1a') continue;
    const signature = decodeBase64(part.slice(comma + 1));
    if (signature?.length === 64 && crypto.verify(null, content, key, signature)) return true;
  }
  return false;
}

function signedPrefix(webhookId: string, timestampSeconds: number): Buffer {
  // A `.` in the id would let one (id, timestamp) pair pass for another; header values must be printable ASCII.
  if (!/^[!-~]+$/.test(webhookId) || webhookId.includes('.')) {
    throw new Error(`webhook id must be printable ASCII without spaces or ".", got ${JSON.stringify(webhookId)}`);
  }
  if (!Number.isSafeInteger(timestampSeconds) || timestampSeconds < 0) {
    throw new Error(`webhook timestamp must be whole seconds since the epoch, got ${timestampSeconds}`);
  }
  return Buffer.from(`${webhookId}.${timestampSeconds}.`);
}

/** Strict base64 (padding optional): Buffer.from would silently skip stray characters. */
function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64').replace(/=+$/, '') === text.replace(/=+$/, '') ? bytes : undefined;
}

// Error messages name the key but never show it: they end up in logs.
function decodeSecret(secret: string, what: string): Buffer {
  const key = secret.startsWith(SECRET_PREFIX) ? decodeBase64(secret.slice(SECRET_PREFIX.length)) : undefined;
  if (key === undefined || key.length < 24 || key.length > 64) {
    throw new Error(`${what} is malformed: expected "${SECRET_PREFIX}" followed by base64 of 24 to 64 bytes`);
  }
  return key;
}

function privateKeyObject(privateKey: string): crypto.KeyObject {
  const raw = privateKey.startsWith(PRIVATE_PREFIX) ? decodeBase64(privateKey.slice(PRIVATE_PREFIX.length)) : undefined;
  if (raw?.length === 32 || raw?.length === 64) {
    const key = crypto.createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' });
    // The 64-byte form repeats the public key: a mismatch means a corrupted or mis-pasted key.
    if (raw.length === 32 || rawPublicKey(key).equals(raw.subarray(32))) return key;
  }
  throw new Error(`ed25519 private key is malformed: expected "${PRIVATE_PREFIX}" followed by base64 of the 32-byte seed (or libsodium's 64-byte seed+public key)`);
}

function publicKeyObject(publicKey: string): crypto.KeyObject {
  const raw = publicKey.startsWith(PUBLIC_PREFIX) ? decodeBase64(publicKey.slice(PUBLIC_PREFIX.length)) : undefined;
  if (raw?.length !== 32) {
    throw new Error(`ed25519 public key is malformed: expected "${PUBLIC_PREFIX}" followed by base64 of 32 bytes`);
  }
  return crypto.createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: 'der', type: 'spki' });
}

function rawPublicKey(privateKey: crypto.KeyObject): Buffer {
  return Buffer.from(crypto.createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url');
}
