import crypto from 'node:crypto';
import type { Store } from '../store/database.js';
import {
  findProjectBySecretHash,
  findProjectByToken,
  insertProject,
  listProjects,
  type ProjectRow,
} from '../store/projects-repo.js';

export type Project = ProjectRow;

export interface CreatedProject extends Project {
  /** Shown once, at creation; only its hash is stored. */
  secret: string;
}

function hashSecret(secret: string): string {
  return crypto.createHash('sha256').update(secret).digest('hex');
}

export async function createProject(store: Store, name: string): Promise<CreatedProject> {
  const trimmed = name.trim();
  if (!trimmed) throw new Error('a project needs a non-empty name');
  // 32 hex characters, the shape of Mixpanel's tokens and secrets.
  const token = crypto.randomBytes(16).toString('hex');
  const secret = crypto.randomBytes(16).toString('hex');
  const row = await insertProject(store, { name: trimmed, token, secretHash: hashSecret(secret), createdAt: Date.now() });
  return { ...row, secret };
}

export { listProjects };

/** Tokens and secrets are printable ASCII; anything else is no credential and is not looked up. */
const isCredential = (value: string) => value.length > 0 && value.length <= 256 && /^[\x21-\x7e]+$/.test(value);

interface Cached {
  project: Project;
  expiresAt: number;
}

/**
 * Token and secret lookups for every request, cached for a short while. Unknown
 * credentials are not cached, so a project created by another process works at once.
 */
export class ProjectDirectory {
  readonly #byToken = new Map<string, Cached>();
  readonly #bySecret = new Map<string, Cached>();

  constructor(
    private readonly store: Store,
    private readonly ttlMs: number,
  ) {}

  byToken(token: string): Promise<Project | undefined> {
    if (!isCredential(token)) return Promise.resolve(undefined);
    return this.#lookup(this.#byToken, token, () => findProjectByToken(this.store, token));
  }

  bySecret(secret: string): Promise<Project | undefined> {
    if (!isCredential(secret)) return Promise.resolve(undefined);
    return this.#lookup(this.#bySecret, secret, () => findProjectBySecretHash(this.store, hashSecret(secret)));
  }

  async #lookup(cache: Map<string, Cached>, key: string, load: () => Promise<Project | undefined>) {
    const now = Date.now();
    const hit = cache.get(key);
    if (hit && hit.expiresAt > now) return hit.project;
    const project = await load();
    if (project) {
      if (cache.size > 10000) cache.clear();
      cache.set(key, { project, expiresAt: now + this.ttlMs });
    } else {
      cache.delete(key);
    }
    return project;
  }
}
