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
  // What the official clients send is plain base64: then skip the two whole-string rewrites.
  const plain = BASE64.test(text);
  const b64 = plain ? text : text.replace(/ /g, '+').replace(/\s/g, '');
  if (b64 === '' || (!plain && !BASE64.test(b64))) {
    throw new IngestError('malformed', 'the data parameter is neither JSON nor base64-encoded JSON');
  }
  const decoded = Buffer.from(b64, 'base64').toString('utf8').trim();
  if (!looksLikeJson(decoded)) {
    throw new IngestError('malformed', 'the data parameter is base64 but does not decode to a JSON object or array');
  }
  return parseJson(decoded, 'the base64-decoded data parameter');
}

/** Newline-delimited JSON: one record a line, blank lines skipped. */
function parseNdjson(text: string): unknown[] {
  const records: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line) records.push(parseJson(line, `line ${i + 1} of the NDJSON body`));
  }
  return records;
}

/**
 * Form fields, first value wins. URLSearchParams copies and rescans the whole (often 20 kB)
 * body; most fields, and the base64 `data` of the official clients, need no decoding at all.
 */
function formFields(text: string): Fields {
  const fields: Fields = {};
  for (const pair of (text.startsWith('?') ? text.slice(1) : text).split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const k = formDecode(eq < 0 ? pair : pair.slice(0, eq));
    if (!(k in fields)) fields[k] = formDecode(eq < 0 ? '' : pair.slice(eq + 1));
  }
  return fields;
}

/** One form-encoded component, decoded exactly as URLSearchParams does ('+' is a space). */
function formDecode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  for (const [k] of new URLSearchParams(`${s}=`)) return k;
  return '';
}

/**
 * Decodes every shape Mixpanel's /track, /engage and /groups accept: `?data=` on GET; a
 * form body with `data=` (base64 or JSON); a bare JSON object or array; NDJSON on /import.
 */
export function decodeRequest(req: RawRequest, maxBytes: number): DecodedRequest {
  const fields: Fields = { ...req.query };
  let payload: unknown;
  const type = (req.contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const ndjson = type === 'application/x-ndjson' || type === 'application/ndjson';
  if (ndjson && (req.body?.length || fields.data === undefined)) {
    // NDJSON of no lines is a batch of no records, like the JSON array [].
    payload = parseNdjson(req.body ? inflate(req.body, req.contentEncoding, maxBytes).toString('utf8') : '');
  } else if (req.body && req.body.length > 0) {
    const text = inflate(req.body, req.contentEncoding, maxBytes).toString('utf8').trim();
    if (looksLikeJson(text)) {
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
