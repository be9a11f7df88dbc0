import { connectionById } from '../store/connections-repo.js';
import type { Store } from '../store/database.js';
import { readJson } from '../store/schema.js';
import type { SecretBox } from './secret-box.js';
import type { SigningKeys } from './signing.js';

/** A destination as the dispatcher uses it: secrets opened, limits resolved. */
export interface LiveConnection {
  id: number;
  projectId: number;
  url: string;
  timeoutMs: number;
  maxConcurrency: number;
  /** Every header but the signature: custom ones, Basic auth, the shared-secret header. */
  headers: Record<string, string>;
  signing: SigningKeys;
  /** How many more requests the rate limit allows now. */
  rateBudget(now: number): number;
  spend(n: number, now: number): void;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Loads destinations for the dispatcher, briefly cached: a batch of claims reads its destination
 * once. Rate-limit buckets live here, outside the cache, so reloading does not refill them.
 */
export class ConnectionDirectory {
  readonly #cache = new Map<number, { at: number; value: LiveConnection | undefined }>();
  readonly #buckets = new Map<number, Bucket>();

  constructor(
    private readonly store: Store,
    private readonly box: SecretBox,
    private readonly ttlMs: number,
  ) {}

  async get(id: number, opts: { fresh?: boolean } = {}): Promise<LiveConnection | undefined> {
    const now = Date.now();
    const hit = this.#cache.get(id);
    if (hit && !opts.fresh && now - hit.at < this.ttlMs) return hit.value;
    const value = await this.#load(id, now);
    this.#cache.set(id, { at: now, value });
    return value;
  }

  /** Drop a cached destination after it changed (disabled, throttled, edited). */
  forget(id: number): void {
    this.#cache.delete(id);
  }

  async #load(id: number, now: number): Promise<LiveConnection | undefined> {
    const row = await connectionById(this.store, id);
    if (!row || row.deleted_at !== null || row.disabled_at !== null) return undefined;
    if (row.throttled_until !== null && row.throttled_until > now) return undefined;
    const headers: Record<string, string> = { ...readJson<Record<string, string>>(row.headers) };
    if (row.basic_auth) {
      const { username, password } = JSON.parse(this.box.open(row.basic_auth)) as { username: string; password: string };
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
    }
    if (row.secret_header_name && row.secret_header_value) headers[row.secret_header_name.toLowerCase()] = this.box.open(row.secret_header_value);
    const secrets = [this.box.open(row.signing_secret)];
    if (row.previous_signing_secret && (row.previous_secret_expires_at ?? 0) > now) secrets.push(this.box.open(row.previous_signing_secret));
    const signing: SigningKeys = { secrets };
    if (row.ed25519_private_key) signing.ed25519PrivateKey = this.box.open(row.ed25519_private_key);
    const rate = row.rate_limit_per_s;
    const buckets = this.#buckets;
    const bucket = () => {
      let b = buckets.get(id);
      if (!b) buckets.set(id, (b = { tokens: rate ?? 0, at: Date.now() }));
      return b;
    };
    const refill = (b: Bucket, t: number) => {
      b.tokens = Math.min(rate!, b.tokens + ((t - b.at) * rate!) / 1000);
      b.at = t;
    };
    return {
      id: row.id,
      projectId: row.project_id,
      url: row.url,
      timeoutMs: row.timeout_ms,
      maxConcurrency: row.max_concurrency,
      headers,
      signing,
      rateBudget(t) {
        if (rate === null) return Infinity;
        const b = bucket();
        refill(b, t);
        return Math.floor(b.tokens);
      },
      spend(n, t) {
        if (rate === null) return;
        const b = bucket();
        refill(b, t);
        b.tokens -= n;
      },
    };
  }
}
