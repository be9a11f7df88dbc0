import { ApiError } from './errors.js';

/** Opaque page cursors: base64url JSON, so clients pass them back without reading them. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T>(cursor: string, valid: (v: unknown) => v is T): T {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (valid(value)) return value;
  } catch {
    // fall through to the error below
  }
  throw new ApiError(400, 'invalid_cursor', 'cursor is not one this API returned; start again without it');
}

export const pageSchema = {
  limit: { type: 'integer', minimum: 1, description: 'Page size (default COHORTCAST_API_DEFAULT_PAGE_SIZE, at most COHORTCAST_API_MAX_PAGE_SIZE: 100 and 1000 unless configured).' },
  cursor: { type: 'string', description: 'next_cursor of the previous page.' },
} as const;
