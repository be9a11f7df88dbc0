import { toMillis } from '../../ingest/events.js';
import { ApiError } from '../errors.js';

/** Epoch seconds or milliseconds, or an ISO 8601 date. */
export function timeParam(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+(\.\d+)?$/.test(value) ? toMillis(value) : Date.parse(value);
  if (ms === undefined || Number.isNaN(ms)) {
    throw new ApiError(400, 'invalid_time', `${name} must be epoch seconds, epoch milliseconds or an ISO 8601 date`);
  }
  return ms;
}
