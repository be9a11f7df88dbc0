import { ApiError } from '../errors.js';

export function pageLimit(limit: number | undefined, opts: { defaultPageSize: number; maxPageSize: number }): number {
  if (limit === undefined) return opts.defaultPageSize;
  if (limit > opts.maxPageSize) throw new ApiError(400, 'invalid_limit', `limit must be at most ${opts.maxPageSize}`);
  return limit;
}

/** `/{id}` of a resource with an integer id. */
export const idParams = { type: 'object', properties: { id: { type: 'integer', minimum: 1 } }, required: ['id'] } as const;

/** A cursor that is the last id of the previous page. */
export const isIdCursor = (v: unknown): v is number => Number.isSafeInteger(v);
