import { isAddressableKey } from '../../store/json-sql.js';
import { ApiError } from '../errors.js';

/** `property.NAME=VALUE`: VALUE matches as given, and also as JSON (so 3 matches the number 3). */
export function propertyFilters(query: Record<string, unknown>): Record<string, string[]> {
  const filters: Record<string, string[]> = {};
  for (const [param, raw] of Object.entries(query)) {
    if (!param.startsWith('property.')) continue;
    const key = param.slice('property.'.length);
    if (!isAddressableKey(key)) {
      throw new ApiError(400, 'invalid_filter', `"${param}": a property name must be 1-255 characters without quotes or backslashes`);
    }
    const value = String(Array.isArray(raw) ? raw[0] : raw);
    const candidates = new Set([JSON.stringify(value)]);
    try {
      const parsed: unknown = JSON.parse(value);
      if (parsed === null || ['number', 'boolean'].includes(typeof parsed)) candidates.add(JSON.stringify(parsed));
    } catch {
      // not JSON: the string alone
    }
    filters[key] = [...candidates];
  }
  return filters;
}
