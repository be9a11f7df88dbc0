import type { FastifyError, FastifyInstance } from 'fastify';

import { ActionableError } from '../errors.js';

/** An error a client can act on: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends ActionableError {}

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        path: { type: 'string', description: 'Where in the request body the mistake is, as a JSON pointer (e.g. /definition/and/1/within_days); only when one place is at fault' },
      },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

/** Management API errors in one shape; schema validation failures name the offending field. */
interface ValidationIssue {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** A validation failure naming the field at fault: `body.interval_minute: unknown field`, `body.cohort_id: must be integer`. */
function validationMessage(part: string, issue: ValidationIssue | undefined, fallback: string): string {
  if (!issue) return fallback;
  const at = `${part}${issue.instancePath.replace(/\/([^/]*)/g, (_, key: string) => (/^\d+$/.test(key) ? `[${key}]` : `.${key.replace(/~1/g, '/').replace(/~0/g, '~')}`))}`;
  if (issue.keyword === 'additionalProperties') return `${at}.${String(issue.params.additionalProperty)}: unknown field`;
  if (issue.keyword === 'required') return `${at}.${String(issue.params.missingProperty)}: required`;
  return `${at}: ${issue.message ?? 'invalid'}`;
}

export function installApiErrorHandler(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError | ActionableError, request, reply) => {
    // Domain refusals (ActionableError) and API ones (ApiError) alike.
    if (err instanceof ActionableError) {
      return reply.code(err.status).send({ error: { code: err.code, message: err.message, ...(err.path === undefined ? {} : { path: err.path }) } });
    }
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: validationMessage(err.validationContext ?? 'request', err.validation[0], err.message) } });
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the server log' } });
    }
    return reply.code(status).send({ error: { code: err.code ?? 'bad_request', message: err.message } });
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0]}` } }),
  );
}
