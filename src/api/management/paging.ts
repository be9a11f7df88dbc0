import { ApiError } from '../errors.js';

export function pageLimit(limit: number | undefined, opts: { defaultPageSize: number; maxPageSize: number }): number {
  if (limit === undefined) return opts.defaultPageSize;
  if (limit > opts.maxPageSize) throw new ApiError(400, 'invalid_limit', `limit must be at most ${opts.maxPageSize}`);
  return limit;
}
