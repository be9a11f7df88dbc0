import type { Readable } from 'node:stream';
import StreamJson from 'stream-json';
import StreamArray from 'stream-json/streamers/StreamArray.js';
import StreamValues from 'stream-json/streamers/StreamValues.js';
import { peek } from './source.js';

/**
 * Where a record was in the input: its line in NDJSON, else its place among the records (a JSON
 * array or pretty-printed JSON has no useful line per record).
 */
export interface Position {
  line?: number;
  record: number;
}

export type ReadRecord = { ok: true; value: unknown; at: Position } | { ok: false; reason: string; at: Position };

export const describePosition = (at: Position) => (at.line !== undefined ? `line ${at.line}` : `record ${at.record}`);

/** The input's shape, from its first bytes and first line. */
export type InputShape = 'ndjson' | 'json-array' | 'json-values';

/**
 * The records of an export, whatever its shape:
 * - NDJSON, one record a line: Raw Event Export, /import's NDJSON, one Engage page a line;
 * - a JSON array of records (also /import's array body);
 * - JSON values one after another, pretty-printed or not (saved Engage query pages).
 * An Engage page ({"results": [...]}) stands for its results. A line that is not JSON is a bad
 * record of its own in NDJSON; in the other shapes a syntax error ends the input (there is no
 * next record to find).
 */
export async function* readRecords(stream: Readable): AsyncGenerator<ReadRecord> {
  stream.setEncoding('utf8');
  const shape = shapeOf(await peekText(stream));
  let record = 0;
  const expand = function* (value: unknown, line?: number): Generator<ReadRecord> {
    const items = Array.isArray(value) ? value : isPage(value) ? value.results : [value];
    for (const item of items) yield { ok: true, value: item, at: { line, record: ++record } };
  };
  if (shape === 'ndjson') {
    let line = 0;
    for await (const read of lines(stream)) {
      line++;
      const text = line === 1 ? read.replace(/^\uFEFF/, '') : read;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        yield { ok: false, reason: `not JSON: ${(err as Error).message}`, at: { line, record: ++record } };
        continue;
      }
      yield* expand(value, line);
    }
    return;
  }
  const parser = StreamJson.parser({ jsonStreaming: shape === 'json-values' });
  const values = parser.pipe(shape === 'json-array' ? StreamArray.streamArray() : StreamValues.streamValues());
  stream.on('error', (err) => values.destroy(err));
  // A syntax error ends the values once those parsed before it are taken (destroying would drop them).
  let syntax: Error | undefined;
  parser.on('error', (err) => {
    syntax = err;
    values.end();
  });
  stream.pipe(parser);
  for await (const { value } of values as AsyncIterable<{ value: unknown }>) yield* expand(value);
  if (syntax) throw new Error(`the input is not valid JSON after record ${record}: ${syntax.message}`);
}

const isPage = (v: unknown): v is { results: unknown[] } => typeof v === 'object' && v !== null && !Array.isArray(v) && Array.isArray((v as { results?: unknown }).results);

async function peekText(stream: Readable): Promise<string> {
  const first = await peek(stream);
  return first === undefined ? '' : String(first);
}

/** `[` first: an array; a first line that is whole JSON: NDJSON; else JSON values spread over lines. */
export function shapeOf(start: string): InputShape {
  const text = start.replace(/^\uFEFF/, '').trimStart();
  if (text.startsWith('[')) return 'json-array';
  const end = text.indexOf('\n');
  if (end === -1) return 'ndjson';
  try {
    JSON.parse(text.slice(0, end));
    return 'ndjson';
  } catch {
    return 'json-values';
  }
}

/**
 * The stream's lines (LF or CRLF), read chunk by chunk: the stream is not read further until the
 * lines already read are taken, so memory stays flat however big the input.
 */
async function* lines(stream: Readable): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of stream as AsyncIterable<string>) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const part of parts) yield part.endsWith('\r') ? part.slice(0, -1) : part;
  }
  if (rest !== '') yield rest.endsWith('\r') ? rest.slice(0, -1) : rest;
}
