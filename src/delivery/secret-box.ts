import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Destination secrets at rest: AES-256-GCM under the operator's 32-byte key, a fresh 96-bit IV per
 * value. Sealed text is `v1:<base64 iv>:<base64 tag>:<base64 ciphertext>`; the version leaves room
 * for another scheme or key id later.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new Error(`a secret key must be 32 bytes, got ${key.length}`);
    this.#key = Buffer.from(key);
  }

  seal(plain: string): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.#key, iv);
    const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `v1:${iv.toString('base64')}:${cipher.getAuthTag().toString('base64')}:${ciphertext.toString('base64')}`;
  }

  /** A wrong key and a damaged value look the same to GCM; either way nothing of the content is shown. */
  open(sealed: string): string {
    const [version, ...fields] = sealed.split(':');
    const [iv, tag, ciphertext] = fields.map(strictBase64);
    if (version !== 'v1' || fields.length !== 3 || iv?.length !== 12 || tag?.length !== 16 || !ciphertext) {
      throw new Error(cannotOpen);
    }
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', this.#key, iv);
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      throw new Error(cannotOpen);
    }
  }
}

function strictBase64(text: string): Buffer | undefined {
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

const cannotOpen =
  'cannot open a stored secret: the secret key does not match the one it was sealed with (or the stored value is damaged); ' +
  'use the key that was in use when it was stored (COHORTCAST_SECRET_KEY or the key file in the data folder)';

/** 32 bytes as base64 (44 characters) or hex (64). The key itself never appears in the error. */
export function parseSecretKey(text: string): Buffer {
  if (/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    const key = Buffer.from(text, 'base64');
    // 43 characters carry 258 bits: the last 2 must be zero for the text to be one exact 32-byte key.
    if (key.length === 32 && key.toString('base64') === text) return key;
  }
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  throw new Error(
    `a secret key must be 32 bytes written as base64 (44 characters) or hex (64 characters), got ${text.length} characters; ` +
      'generate one with: openssl rand -base64 32',
  );
}

/**
 * The key in `file`, made on first use. Creation is atomic and never overwrites: the key is
 * written and synced under a temporary name, then hard-linked into place, which fails if another
 * process got there first — then that process's key is the one used. Losing this file makes every
 * stored secret unreadable, hence the fsyncs.
 */
export function loadOrCreateKeyFile(file: string): Buffer {
  const existing = readKeyFile(file);
  if (existing) return existing;
  const dir = path.dirname(file);
  fs.mkdirSync(dir, { recursive: true });
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`);
  const key = crypto.randomBytes(32);
  try {
    const fd = fs.openSync(temp, 'wx', 0o600);
    try {
      fs.fchmodSync(fd, 0o600); // whatever the umask
      fs.writeSync(fd, `${key.toString('base64')}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    try {
      fs.linkSync(temp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const theirs = readKeyFile(file);
      if (!theirs) throw new Error(`key file ${file} appeared and vanished while it was being created`);
      return theirs;
    }
    syncDir(dir);
    return key;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

function readKeyFile(file: string): Buffer | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return parseSecretKey(text.trim());
  } catch (err) {
    throw new Error(`key file ${file}: ${(err as Error).message}`);
  }
}

/** Makes the new directory entry durable; not every platform can open a directory, so best effort. */
function syncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Windows and some network filesystems refuse; the file itself is synced.
  }
}
