import zlib from 'node:zlib';
import { IngestError } from './errors.js';

/** Query-string and form fields of a request, first value wins. */
export type Fields = Record<string, string | undefined>;

export interface RawRequest {
  query: Fields;
  body: Buffer | undefined;
  contentType: string | undefined;
  contentEncoding: string | undefined;
}

export interface DecodedRequest {
  /** Query-string fields overlaid by form fields of the body. */
  fields: Fields;
  /** The parsed payload: a JSON value (object or array), or undefined when none was sent. */
  payload: unknown;
}

/** Inflates a gzip or deflate body, refusing to produce more than `maxBytes`. */
export function inflate(body: Buffer, encoding: string | undefined, maxBytes: number): Buffer {
  const enc = (encoding ?? '').trim().toLowerCase();
  if (enc === '' || enc === 'identity') {
    if (body.length > maxBytes) throw tooLarge(maxBytes);
    return body;
  }
  const opts = { maxOutputLength: maxBytes };
  try {
    if (enc === 'gzip' || enc === 'x-gzip') return zlib.gunzipSync(body, opts);
    if (enc === 'deflate') return zlib.inflateSync(body, opts);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) throw tooLarge(maxBytes);
    throw new IngestError('malformed', `the body is not valid ${enc} data: ${(err as Error).message}`);
  }
  throw new IngestError('unsupported_encoding', `Content-Encoding "${encoding}" is not supported; send gzip, deflate or none`);
}

function tooLarge(maxBytes: number) {
  return new IngestError('too_large', `the request body is larger than ${maxBytes} bytes uncompressed`);
}

const looksLikeJson = (text: string) => text.startsWith('{') || text.startsWith('[');

/** Parses JSON, naming the field it came from in the error a person reads. */
function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new IngestError('malformed', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * The `data` field: JSON, or JSON in base64 (either alphabet). A '+' that a form or query
 * decoder turned into a space is put back first, as Mixpanel's clients do not always escape it.
 */
export function decodeDataField(data: string): unknown {
  const text = data.trim();
  if (looksLikeJson(text)) return parseJson(text, 'the data parameter');
  const b64 = text.replace(/ /g, '+').replace(/\s/g, '');
  if (b64 === '' || !BASE64.test(b64)) {
    throw new IngestError('malformed', 'the data parameter is neither JSON nor base64-encoded JSON');
  }
  const decoded = Buffer.from(b64, 'base64').toString('utf8').trim();
  if (!looksLikeJson(decoded)) {
    throw new IngestError('malformed', 'the data parameter is base64 but does not decode to a JSON object or array');
  }
  return parseJson(decoded, 'the base64-decoded data parameter');
}

/** Newline-delimited JSON: one record a line, blank lines skipped. */
export function parseNdjson(text: string): unknown[] {
  const records: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line) records.push(parseJson(line, `line ${i + 1} of the NDJSON body`));
  }
  return records;
}

function formFields(text: string): Fields {
  const fields: Fields = {};
  for (const [k, v] of new URLSearchParams(text)) if (!(k in fields)) fields[k] = v;
  return fields;
}

/**
 * Decodes every shape Mixpanel's /track, /engage and /groups accept: `?data=` on GET; a
 * form body with `data=` (base64 or JSON); a bare JSON object or array; NDJSON on /import.
 */
export function decodeRequest(req: RawRequest, maxBytes: number): DecodedRequest {
  const fields: Fields = { ...req.query };
  let payload: unknown;
  if (req.body && req.body.length > 0) {
    const text = inflate(req.body, req.contentEncoding, maxBytes).toString('utf8').trim();
    const type = (req.contentType ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/x-ndjson' || type === 'application/ndjson') {
      payload = parseNdjson(text);
    } else if (looksLikeJson(text)) {
      payload = text.startsWith('{') && text.includes('\n') && type !== 'application/json' ? parseNdjsonOrJson(text) : parseJson(text, 'the request body');
    } else if (text !== '') {
      Object.assign(fields, formFields(text));
    }
  }
  if (payload === undefined && fields.data !== undefined) payload = decodeDataField(fields.data);
  return { fields, payload };
}

/** A body of several JSON objects on separate lines, sent without the NDJSON content type. */
function parseNdjsonOrJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return parseNdjson(text);
  }
}

/** A payload as a list of records: a single object is a batch of one. */
export function asRecords(payload: unknown, maxRecords: number): unknown[] {
  if (payload === undefined) throw new IngestError('malformed', 'no data: send a JSON body or a data parameter');
  const records = Array.isArray(payload) ? payload : [payload];
  if (records.length > maxRecords) {
    throw new IngestError('too_many_events', `a request may hold at most ${maxRecords} records, this one has ${records.length}`);
  }
  return records;
}

/** Mixpanel's boolean flags: "1" or "true". */
export const flag = (value: string | undefined): boolean => value === '1' || value === 'true';
