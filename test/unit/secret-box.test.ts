import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { loadOrCreateKeyFile, parseSecretKey, SecretBox } from '../../src/delivery/secret-box.js';

const dirs: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-secret-box-'));
  dirs.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

const keyMismatch = /secret key does not match/;

describe('SecretBox', () => {
  const box = new SecretBox(crypto.randomBytes(32));

  it('round-trips text, unicode and empty strings, with a fresh IV each time', () => {
    for (const plain of ['whsec_abc', 'user:pässwörd ✓ 🚀 中文', '', 'x'.repeat(10_000)]) {
      const sealed = box.seal(plain);
      expect(sealed).toMatch(/^v1:[A-Za-z0-9+/]{16}:[A-Za-z0-9+/]{22}==:[A-Za-z0-9+/=]*$/);
      expect(box.open(sealed)).toBe(plain);
    }
    expect(box.seal('same')).not.toBe(box.seal('same'));
  });

  it('refuses another key, saying the key does not match and showing nothing of the secret', () => {
    const sealed = box.seal('whsec_topsecret');
    const other = new SecretBox(crypto.randomBytes(32));
    expect(() => other.open(sealed)).toThrow(keyMismatch);
    try {
      other.open(sealed);
    } catch (err) {
      expect((err as Error).message).not.toContain('topsecret');
    }
  });

  it('refuses tampered or malformed values', () => {
    const sealed = box.seal('whsec_topsecret');
    const [version, iv, tag, ciphertext] = sealed.split(':') as [string, string, string, string];
    const flip = (b64: string) => {
      const bytes = Buffer.from(b64, 'base64');
      bytes[0] = bytes[0]! ^ 1;
      return bytes.toString('base64');
    };
    for (const bad of [
      [version, iv, tag, flip(ciphertext)],
      [version, iv, flip(tag), ciphertext],
      [version, flip(iv), tag, ciphertext],
      ['v2', iv, tag, ciphertext],
      [version, iv, tag],
      [version, iv, tag, ciphertext, ciphertext],
      [version, iv.slice(4), tag, ciphertext],
      [version, iv, tag, `${ciphertext}!`],
    ]) {
      expect(() => box.open(bad.join(':'))).toThrow(keyMismatch);
    }
    expect(() => box.open('')).toThrow(keyMismatch);
    expect(() => box.open('whsec_plain')).toThrow(keyMismatch);
  });

  it('wants a 32-byte key', () => {
    expect(() => new SecretBox(Buffer.alloc(16))).toThrow(/32 bytes/);
  });
});

describe('parseSecretKey', () => {
  const key = crypto.randomBytes(32);

  it('accepts 32 bytes as base64 or hex', () => {
    expect(parseSecretKey(key.toString('base64'))).toEqual(key);
    expect(parseSecretKey(key.toString('hex'))).toEqual(key);
    expect(parseSecretKey(key.toString('hex').toUpperCase())).toEqual(key);
  });

  it('refuses anything else, saying what is expected and how to make one', () => {
    const expected = /32 bytes written as base64 \(44 characters\) or hex \(64 characters\).*openssl rand -base64 32/;
    for (const bad of [
      '',
      'short',
      crypto.randomBytes(16).toString('base64'),
      crypto.randomBytes(33).toString('base64'),
      crypto.randomBytes(31).toString('hex'),
      key.toString('base64').slice(0, 43), // padding dropped
      Buffer.alloc(32, 0xff).toString('base64url').padEnd(44, '='), // URL-safe alphabet
      `${key.toString('hex').slice(0, 63)}g`,
      ` ${key.toString('base64')}`,
    ]) {
      expect(() => parseSecretKey(bad), JSON.stringify(bad)).toThrow(expected);
    }
  });
});

describe('loadOrCreateKeyFile', () => {
  it('creates a 0600 key file on first use and reads the same key afterwards', () => {
    const dir = tempDir();
    const file = path.join(dir, 'secret.key');
    const key = loadOrCreateKeyFile(file);
    expect(key).toHaveLength(32);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(parseSecretKey(fs.readFileSync(file, 'utf8').trim())).toEqual(key);
    expect(fs.readdirSync(dir)).toEqual(['secret.key']); // no temporary file left behind
    expect(loadOrCreateKeyFile(file)).toEqual(key);
  });

  it('creates the folder if needed and reads a key written by hand, hex or base64, with surrounding space', () => {
    const file = path.join(tempDir(), 'nested', 'secret.key');
    const key = crypto.randomBytes(32);
    expect(loadOrCreateKeyFile(file)).toHaveLength(32);
    fs.writeFileSync(file, `  ${key.toString('hex')}\n`);
    expect(loadOrCreateKeyFile(file)).toEqual(key);
  });

  it('refuses a damaged key file, naming it, rather than replacing it', () => {
    const file = path.join(tempDir(), 'secret.key');
    fs.writeFileSync(file, 'not a key\n');
    expect(() => loadOrCreateKeyFile(file)).toThrow(`key file ${file}: a secret key must be 32 bytes`);
    expect(fs.readFileSync(file, 'utf8')).toBe('not a key\n');
  });

  it('leaves processes that create it at the same moment with one and the same key', async () => {
    // Real processes race on the file system: run the module as plain JavaScript in each.
    const dir = tempDir();
    const source = fs.readFileSync(new URL('../../src/delivery/secret-box.ts', import.meta.url), 'utf8');
    const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    fs.writeFileSync(path.join(dir, 'secret-box.mjs'), js);
    const racer = path.join(dir, 'racer.mjs');
    fs.writeFileSync(
      racer,
      `import { loadOrCreateKeyFile } from './secret-box.mjs';
const [file, startAt] = process.argv.slice(2);
while (Date.now() < Number(startAt)) {} // start together
process.stdout.write(loadOrCreateKeyFile(file).toString('base64'));
`,
    );
    const run = promisify(execFile);
    for (let round = 0; round < 3; round++) {
      const keyDir = path.join(dir, `round-${round}`);
      fs.mkdirSync(keyDir);
      const file = path.join(keyDir, 'secret.key');
      const startAt = Date.now() + 700;
      const outputs = await Promise.all(Array.from({ length: 4 }, () => run(process.execPath, [racer, file, String(startAt)])));
      const keys = new Set(outputs.map((o) => o.stdout));
      expect(keys.size).toBe(1);
      expect(fs.readFileSync(file, 'utf8').trim()).toBe([...keys][0]);
      expect(fs.readdirSync(keyDir)).toEqual(['secret.key']);
    }
  });
});
