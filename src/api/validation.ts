import { Ajv, type Options } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';

/**
 * Validation of the management API, strict where it matters. Bodies are JSON: a field the schema
 * does not name and a value of the wrong type are refused with a 400 that names the field, never
 * dropped or coerced ("1" is not a cohort id, "true" not a boolean). The query string and the path
 * are text by nature: their numbers and booleans are read from it, and unknown query parameters
 * are refused too.
 */
const common: Options = { allErrors: false, removeAdditional: false, useDefaults: true, strict: false };
const bodies = new Ajv({ ...common, coerceTypes: false });
const text = new Ajv({ ...common, coerceTypes: 'array' });

export const strictValidator: FastifySchemaCompiler<object> = ({ schema, httpPart }) => (httpPart === 'body' ? bodies : text).compile(schema);
