import type { DeliveryConfig } from '../config.js';
import type { Store } from '../store/database.js';
import {
  deleteConnection,
  findConnection,
  insertConnection,
  updateConnection,
  type ConnectionRow,
} from '../store/connections-repo.js';
import { readJson } from '../store/schema.js';
import type { DeliveryEngine } from './engine.js';
import { generateEd25519KeyPair, generateSigningSecret } from './signing.js';
import { ActionableError } from '../errors.js';
import { syncsUsingConnection } from '../store/cohort-sync-repo.js';
import { subscriptionsUsingConnection } from '../store/subscriptions-repo.js';
import { messagesUsingConnection } from '../store/messages-repo.js';
import { alertsUsingConnection } from '../store/alerts-repo.js';
import { iso } from '../iso-time.js';

/** What a client may set on a destination (POST and PATCH). */
export interface ConnectionInput {
  name?: string;
  url?: string;
  basic_auth?: { username: string; password: string } | null;
  headers?: Record<string, string>;
  secret_header?: { name: string; value: string } | null;
  ed25519_signing?: boolean;
  timeout_ms?: number;
  max_concurrency?: number;
  rate_limit_per_s?: number | null;
  /** PATCH only: true re-enables a destination disabled after 410 Gone. */
  enabled?: boolean;
}

/** A refusal the API turns into a 4xx. */
export class ConnectionError extends ActionableError {}

/** Headers the engine sets itself; a destination may not override them. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'content-type', 'transfer-encoding', 'connection', 'webhook-id', 'webhook-timestamp', 'webhook-signature']);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function checkHeaderName(name: string, where: string) {
  if (!TOKEN.test(name)) throw new ConnectionError(400, 'invalid_header', `${where}: "${name}" is not a valid HTTP header name`);
  if (RESERVED_HEADERS.has(name.toLowerCase())) throw new ConnectionError(400, 'invalid_header', `${where}: "${name}" is set by cohortcast and cannot be overridden`);
}

const hasControlChars = (v: string) => /[\r\n\0]/.test(v);

/** The public view: secrets never leave, only whether they are set. */
function presentConnection(row: ConnectionRow, basicUser: string | undefined, now = Date.now()) {
  return {
    id: row.id,
    name: row.name,
    url: row.url,
    basic_auth: basicUser === undefined ? null : { username: basicUser },
    headers: readJson<Record<string, string>>(row.headers),
    secret_header: row.secret_header_name ? { name: row.secret_header_name } : null,
    ed25519_public_key: row.ed25519_public_key,
    timeout_ms: row.timeout_ms,
    max_concurrency: row.max_concurrency,
    rate_limit_per_s: row.rate_limit_per_s,
    state: row.disabled_at !== null ? 'disabled' : row.throttled_until !== null && row.throttled_until > now ? 'throttled' : 'active',
    disabled_at: iso(row.disabled_at),
    disabled_reason: row.disabled_reason,
    throttled_until: row.throttled_until !== null && row.throttled_until > now ? iso(row.throttled_until) : null,
    previous_secret_valid_until: row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now ? iso(row.previous_secret_expires_at) : null,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}


export class ConnectionAdmin {
  constructor(
    readonly store: Store,
    private readonly engine: DeliveryEngine,
    private readonly config: DeliveryConfig,
  ) {}

  /** Work may be due now (requeued deliveries). */
  wake(): void {
    this.engine.dispatcher.wake(true);
  }

  /** A connection as the API shows it: the Basic auth username (sealed with the password) opened, no secret. */
  present(row: ConnectionRow, now = Date.now()) {
    const basicUser = row.basic_auth ? (JSON.parse(this.engine.box.open(row.basic_auth)) as { username: string }).username : undefined;
    return presentConnection(row, basicUser, now);
  }

  #validate(input: ConnectionInput) {
    if (input.url !== undefined) {
      const refused = this.engine.guard.checkUrl(input.url);
      if (refused) throw new ConnectionError(400, 'invalid_url', refused);
    }
    if (input.timeout_ms !== undefined && input.timeout_ms > this.config.maxTimeoutMs) {
      throw new ConnectionError(400, 'invalid_timeout', `timeout_ms must be at most ${this.config.maxTimeoutMs} (COHORTCAST_DELIVERY_MAX_TIMEOUT_MS)`);
    }
    for (const [name, value] of Object.entries(input.headers ?? {})) {
      checkHeaderName(name, 'headers');
      if (hasControlChars(value)) throw new ConnectionError(400, 'invalid_header', `headers: the value of "${name}" contains a line break or NUL`);
      if (name.toLowerCase() === 'authorization' && input.basic_auth) {
        throw new ConnectionError(400, 'invalid_header', 'headers: "authorization" conflicts with basic_auth; set one of them');
      }
    }
    if (input.secret_header) {
      checkHeaderName(input.secret_header.name, 'secret_header');
      if (hasControlChars(input.secret_header.value)) throw new ConnectionError(400, 'invalid_header', 'secret_header: the value contains a line break or NUL');
    }
    if (input.basic_auth && (input.basic_auth.username.includes(':') || hasControlChars(input.basic_auth.username + input.basic_auth.password))) {
      throw new ConnectionError(400, 'invalid_basic_auth', 'basic_auth: the username may not contain ":" and neither may contain line breaks');
    }
  }

  #sealed(input: ConnectionInput) {
    const { box } = this.engine;
    return {
      ...(input.name !== undefined ? { name: input.name } : {}),
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.basic_auth !== undefined ? { basic_auth: input.basic_auth ? box.seal(JSON.stringify(input.basic_auth)) : null } : {}),
      ...(input.headers !== undefined ? { headers: JSON.stringify(input.headers) } : {}),
      ...(input.secret_header !== undefined
        ? { secret_header_name: input.secret_header?.name ?? null, secret_header_value: input.secret_header ? box.seal(input.secret_header.value) : null }
        : {}),
      ...(input.timeout_ms !== undefined ? { timeout_ms: input.timeout_ms } : {}),
      ...(input.max_concurrency !== undefined ? { max_concurrency: input.max_concurrency } : {}),
      ...(input.rate_limit_per_s !== undefined ? { rate_limit_per_s: input.rate_limit_per_s } : {}),
    };
  }

  #ed25519(on: boolean) {
    if (!on) return { ed25519_private_key: null, ed25519_public_key: null };
    const pair = generateEd25519KeyPair();
    return { ed25519_private_key: this.engine.box.seal(pair.privateKey), ed25519_public_key: pair.publicKey };
  }

  /** Creates a destination; its signing secret is in the answer this once and never again. */
  async create(projectId: number, input: ConnectionInput & { name: string; url: string }) {
    this.#validate(input);
    const now = Date.now();
    const secret = generateSigningSecret();
    const row = await insertConnection(this.store, {
      project_id: projectId,
      headers: '{}',
      timeout_ms: this.config.defaultTimeoutMs,
      max_concurrency: this.config.defaultMaxConcurrency,
      ...this.#sealed(input),
      name: input.name,
      url: input.url,
      signing_secret: this.engine.box.seal(secret),
      ...this.#ed25519(input.ed25519_signing ?? false),
      created_at: now,
      updated_at: now,
    });
    return { ...this.present(row, now), signing_secret: secret };
  }

  async get(projectId: number, id: number) {
    const row = await findConnection(this.store, projectId, id);
    if (!row) throw notFound(id);
    return row;
  }

  async update(projectId: number, id: number, input: ConnectionInput) {
    this.#validate(input);
    const now = Date.now();
    const current = await this.get(projectId, id);
    if (input.headers?.authorization !== undefined && input.basic_auth === undefined && current.basic_auth) {
      throw new ConnectionError(400, 'invalid_header', 'headers: "authorization" conflicts with the basic_auth already set; clear basic_auth first');
    }
    const row = await updateConnection(this.store, projectId, id, {
      ...this.#sealed(input),
      ...(input.ed25519_signing !== undefined && input.ed25519_signing !== (current.ed25519_public_key !== null) ? this.#ed25519(input.ed25519_signing) : {}),
      ...(input.enabled === true ? { disabled_at: null, disabled_reason: null, throttled_until: null } : {}),
      updated_at: now,
    });
    if (!row) throw notFound(id);
    this.engine.connections.forget(id);
    this.engine.dispatcher.wake(true);
    return this.present(row, now);
  }

  async remove(projectId: number, id: number) {
    // The caller's project first: nothing is said about another project's connection, not even that it is in use.
    await this.get(projectId, id);
    const syncs = await syncsUsingConnection(this.store.db, projectId, id);
    if (syncs.length > 0) throw new ConnectionError(409, 'connection_in_use', `connection ${id} is used by cohort sync${syncs.length > 1 ? 's' : ''} ${syncs.join(', ')}; delete those first`);
    const subscriptions = await subscriptionsUsingConnection(this.store.db, projectId, id);
    if (subscriptions.length > 0) throw new ConnectionError(409, 'connection_in_use', `connection ${id} is used by subscription${subscriptions.length > 1 ? 's' : ''} ${subscriptions.join(', ')}; change or delete those first`);
    const messages = await messagesUsingConnection(this.store.db, projectId, id);
    if (messages.length > 0) throw new ConnectionError(409, 'connection_in_use', `connection ${id} is used by webhook message${messages.length > 1 ? 's' : ''} ${messages.join(', ')}; change or delete those first`);
    const alerts = await alertsUsingConnection(this.store.db, projectId, id);
    if (alerts.length > 0) throw new ConnectionError(409, 'connection_in_use', `connection ${id} is used by alert${alerts.length > 1 ? 's' : ''} ${alerts.join(', ')}; change or delete those first`);
    if (!(await deleteConnection(this.store, projectId, id, Date.now()))) throw notFound(id);
    this.engine.connections.forget(id);
  }

  /** A new signing secret; the old one keeps signing (both signatures sent) for the grace period. */
  async rotateSecret(projectId: number, id: number, graceMs = this.config.rotationGraceMs) {
    const now = Date.now();
    const current = await this.get(projectId, id);
    const secret = generateSigningSecret();
    const row = await updateConnection(this.store, projectId, id, {
      signing_secret: this.engine.box.seal(secret),
      previous_signing_secret: graceMs > 0 ? current.signing_secret : null,
      previous_secret_expires_at: graceMs > 0 ? now + graceMs : null,
      updated_at: now,
    });
    if (!row) throw notFound(id);
    this.engine.connections.forget(id);
    return { ...this.present(row, now), signing_secret: secret };
  }

  /** Sends a signed ping now and reports what the receiver answered. */
  async test(projectId: number, id: number) {
    const row = await this.get(projectId, id);
    if (row.disabled_at !== null) throw new ConnectionError(409, 'connection_disabled', `connection ${id} is disabled (${row.disabled_reason}); re-enable it with PATCH {"enabled": true}`);
    const now = Date.now();
    const body = JSON.stringify({ type: 'ping', connection_id: id, project_id: projectId, sent_at: new Date(now).toISOString() });
    const [created] = await this.engine.outbox.enqueue(this.store.db, [
      // Not due for the claim loop: sendNow takes it at once. Should this process die first, it goes out later.
      { projectId, connectionId: id, ownerKind: 'connection-test', ownerId: id, policy: 'once', contentType: 'application/json', body, notBefore: now + 60_000 },
    ]);
    const done = await this.engine.dispatcher.sendNow(created!.id);
    if (!done) throw new ConnectionError(409, 'connection_unavailable', `connection ${id} cannot be sent to right now (throttled or changed); try again`);
    const { result, verdict } = done;
    return {
      delivery_id: created!.id,
      webhook_id: created!.webhook_id,
      ok: verdict.kind === 'success',
      status: result.status ?? null,
      duration_ms: result.durationMs,
      error: verdict.kind === 'success' ? null : verdict.reason,
      response_body: result.body.slice(0, this.config.storedResponseBytes),
    };
  }
}

const notFound = (id: number) => new ConnectionError(404, 'not_found', `no connection ${id} in this project`);
