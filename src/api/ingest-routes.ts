import cors from '@fastify/cors';
import type {} from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { IngestError } from '../ingest/errors.js';
import type { Endpoint, Ingestor } from '../ingest/ingestor.js';
import { asRecords, decodeRequest, flag, type DecodedRequest, type Fields } from '../ingest/payload.js';
import type { Metrics } from '../observability/metrics.js';
import type { Project, ProjectDirectory } from '../projects/projects.js';
import type { IngestLimits } from '../config.js';
import { describeErrors, sendImport, sendLegacy, validCallback } from './ingest-replies.js';

export interface IngestRoutesOptions {
  ingestor: Ingestor;
  projects: ProjectDirectory;
  limits: IngestLimits;
  metrics: Metrics;
}

function firstValues(query: unknown): Fields {
  const out: Fields = {};
  if (query && typeof query === 'object') {
    for (const [k, v] of Object.entries(query as Record<string, unknown>)) {
      out[k] = Array.isArray(v) ? String(v[0]) : v === undefined ? undefined : String(v);
    }
  }
  return out;
}

function decode(request: FastifyRequest, query: Fields, limits: IngestLimits): DecodedRequest {
  return decodeRequest(
    {
      query,
      body: Buffer.isBuffer(request.body) ? request.body : undefined,
      contentType: request.headers['content-type'],
      contentEncoding: request.headers['content-encoding'],
    },
    limits.maxBodyBytes,
  );
}

/** Fastify's own refusals (body too large, bad content length) as IngestErrors. */
function asIngestError(err: unknown): IngestError | undefined {
  if (err instanceof IngestError) return err;
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (e.statusCode === 413) return new IngestError('too_large', e.message ?? 'request body too large');
  if (e.statusCode === 415) return new IngestError('unsupported_encoding', e.message ?? 'unsupported media type');
  if (e.statusCode === 400) return new IngestError('malformed', e.message ?? 'malformed request');
  return undefined;
}

/**
 * Mixpanel's ingestion API at the root: /track, /engage, /groups, /import (and with a
 * trailing slash). Bodies arrive as raw bytes; ingest/ decodes every format Mixpanel takes.
 */
export async function ingestRoutes(app: FastifyInstance, opts: IngestRoutesOptions) {
  const { ingestor, projects, limits, metrics } = opts;

  // Browsers send with credentials: echo the Origin rather than '*'.
  await app.register(cors, { origin: true, credentials: true, methods: ['GET', 'POST', 'OPTIONS'], maxAge: 86400 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limits.maxBodyBytes }, (_req, body, done) => done(null, body));

  const legacy = (endpoint: Exclude<Endpoint, 'import'>) => async (request: FastifyRequest, reply: FastifyReply) => {
    let fields: Fields = firstValues(request.query);
    try {
      const decoded = decode(request, fields, limits);
      fields = decoded.fields;
      // Refuse a bad callback before storing anything: a client retrying the 400 must not double data.
      if (!flag(fields.img) && !validCallback(fields.callback)) return sendLegacy(reply, fields, { ok: false, status: 400, error: null });
      const records = asRecords(decoded.payload, limits.maxEventsPerRequest);
      const ip = flag(fields.ip) ? request.ip : undefined;
      const outcome =
        endpoint === 'track' ? await ingestor.track(records, { ip }) : endpoint === 'engage' ? await ingestor.engage(records) : await ingestor.groups(records);
      if (outcome.errors.length === 0) return sendLegacy(reply, fields, { ok: true, status: 200, error: null });
      return sendLegacy(reply, fields, {
        ok: false,
        status: 400,
        error: describeErrors(outcome.errors, outcome.accepted),
        failedRecords: outcome.errors,
      });
    } catch (err) {
      const e = asIngestError(err);
      if (!e) throw err;
      if (e.reason !== 'invalid_token') metrics.requestsRejected.inc({ endpoint, reason: e.reason });
      return sendLegacy(reply, fields, { ok: false, status: e.status, error: e.message });
    }
  };

  const importHandler = async (request: FastifyRequest, reply: FastifyReply) => {
    let fields: Fields = firstValues(request.query);
    let legacyFormat = false;
    try {
      const project = await authenticateImport(request, fields, projects);
      const decoded = decode(request, fields, limits);
      fields = decoded.fields;
      // The form-encoded `data=` shape is the legacy API the official clients use: answer "1"/"0".
      legacyFormat = fields.data !== undefined;
      const strict = legacyFormat ? flag(fields.strict) : fields.strict !== '0' && fields.strict !== 'false';
      const records = asRecords(decoded.payload, limits.maxEventsPerRequest);
      const ip = flag(fields.ip) ? request.ip : undefined;
      const outcome = await ingestor.importEvents(project, records, { strict, ip });
      const failed = strict || legacyFormat ? outcome.errors : [];
      if (legacyFormat) {
        return failed.length
          ? sendLegacy(reply, fields, { ok: false, status: 400, error: describeErrors(failed, outcome.accepted), failedRecords: failed })
          : sendLegacy(reply, fields, { ok: true, status: 200, error: null });
      }
      if (failed.length === 0) return sendImport(reply, { status: 200, imported: outcome.accepted });
      return sendImport(reply, {
        status: 400,
        imported: outcome.accepted,
        error: 'some data points in the request failed validation',
        failedRecords: failed,
      });
    } catch (err) {
      const e = asIngestError(err);
      if (!e) throw err;
      metrics.requestsRejected.inc({ endpoint: 'import', reason: e.reason });
      if (legacyFormat) return sendLegacy(reply, fields, { ok: false, status: e.status, error: e.message });
      return sendImport(reply, { status: e.status, error: e.message });
    }
  };

  const describe = (summary: string) => ({ tags: ['Ingestion (Mixpanel-compatible)'], summary });
  const summaries = {
    track: 'Track events (token in each event); data= as base64 or JSON, GET or POST',
    engage: 'Update user profiles ($set, $set_once, $add, $append, $union, $remove, $unset, $delete)',
    groups: 'Update group profiles ($set, $set_once, $union, $remove, $unset, $delete)',
  };
  for (const endpoint of ['track', 'engage', 'groups'] as const) {
    app.route({ method: ['GET', 'POST'], url: `/${endpoint}`, handler: legacy(endpoint), schema: describe(summaries[endpoint]) });
  }
  app.route({
    method: ['GET', 'POST'],
    url: '/import',
    handler: importHandler,
    schema: describe('Import events (JSON or NDJSON, gzip, strict=1); Basic auth with the project secret'),
  });

  // Errors raised before a handler runs (e.g. body over the limit) still answer in Mixpanel's shape.
  app.setErrorHandler((err, request, reply) => {
    const e = asIngestError(err);
    if (!e) {
      request.log.error({ err }, 'ingestion failed');
      return reply.code(500).type('text/plain; charset=utf-8').send('0');
    }
    const endpoint = request.url.split(/[/?]/)[1] ?? 'unknown';
    metrics.requestsRejected.inc({ endpoint, reason: e.reason });
    const fields = firstValues(request.query);
    if (endpoint === 'import' && request.headers['content-type']?.includes('x-www-form-urlencoded') !== true) {
      return sendImport(reply, { status: e.status, error: e.message });
    }
    return sendLegacy(reply, fields, { ok: false, status: e.status, error: e.message });
  });
}

function basicAuth(header: string | undefined): { user: string; pass: string } | undefined {
  if (!header?.toLowerCase().startsWith('basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? { user: decoded, pass: '' } : { user: decoded.slice(0, colon), pass: decoded.slice(colon + 1) };
}

/** /import: Basic auth with the project secret (or its token) as username, or api_key=SECRET. */
async function authenticateImport(request: FastifyRequest, fields: Fields, projects: ProjectDirectory): Promise<Project> {
  const basic = basicAuth(request.headers.authorization);
  if (basic && basic.user && basic.pass === '') {
    const project = (await projects.bySecret(basic.user)) ?? (await projects.byToken(basic.user));
    if (project) return project;
  } else if (fields.api_key) {
    const project = await projects.bySecret(fields.api_key);
    if (project) return project;
  }
  throw new IngestError(
    'unauthorized',
    'invalid credentials: /import needs HTTP Basic auth with the project secret (or the project token) as the username and an empty password',
  );
}
