import type { FastifyReply } from 'fastify';
import type { RecordError } from '../ingest/errors.js';
import type { Fields } from '../ingest/payload.js';
import { flag } from '../ingest/payload.js';

/**
 * The replies Mixpanel's ingestion API gives, so its clients read ours unchanged:
 * "1"/"0", verbose JSON, a 1x1 GIF (img=1), JSONP (callback=), and /import's JSON.
 */

const GIF = Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64');
const CALLBACK = /^[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/;

export interface LegacyResult {
  ok: boolean;
  /** HTTP status when the client reads statuses (not for img or JSONP, which need 200). */
  status: number;
  error: string | null;
  failedRecords?: RecordError[];
}

/** A JSONP callback name we will echo: a dotted JavaScript identifier, nothing else. */
export const validCallback = (callback: string | undefined): boolean =>
  callback === undefined || callback === '' || (callback.length <= 128 && CALLBACK.test(callback));

export function sendLegacy(reply: FastifyReply, fields: Fields, result: LegacyResult): FastifyReply {
  const verbose = flag(fields.verbose);
  if (flag(fields.img)) {
    return reply.code(200).header('cache-control', 'no-cache, no-store').type('image/gif').send(GIF);
  }
  const body = verbose
    ? JSON.stringify({
        status: result.ok ? 1 : 0,
        error: result.error,
        ...(result.failedRecords?.length ? { failed_records: result.failedRecords } : {}),
      })
    : result.ok
      ? '1'
      : '0';
  const callback = fields.callback;
  if (callback !== undefined && callback !== '') {
    if (!validCallback(callback)) {
      return reply.code(400).type('text/plain; charset=utf-8').send('callback must be a JavaScript identifier');
    }
    return reply.code(200).type('text/javascript; charset=utf-8').send(`${callback}(${body});`);
  }
  return reply
    .code(result.status)
    .type(verbose ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8')
    .send(body);
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  413: 'Request Entity Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
};

/** /import with a JSON or NDJSON body answers in its own JSON shape. */
export function sendImport(
  reply: FastifyReply,
  result: { status: number; imported?: number; error?: string; failedRecords?: RecordError[] },
): FastifyReply {
  const body: Record<string, unknown> = { code: result.status, status: STATUS_TEXT[result.status] ?? 'Error' };
  if (result.imported !== undefined) body.num_records_imported = result.imported;
  if (result.error !== undefined) body.error = result.error;
  if (result.failedRecords?.length) body.failed_records = result.failedRecords;
  return reply.code(result.status).type('application/json; charset=utf-8').send(body);
}

/** A one-line summary of refused records for clients that show only a message. */
export function describeErrors(errors: RecordError[], accepted: number): string {
  const first = errors[0]!;
  const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
  return `${errors.length} record(s) refused, ${accepted} accepted; record ${first.index}: ${first.message}${more}`;
}
