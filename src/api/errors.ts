import type { FastifyError, FastifyInstance } from 'fastify';

import { ActionableError } from '../errors.js';

/** An error a client can act on: `{"error": {"code", "message"}}` with its HTTP status. */
export class ApiError extends ActionableError {}

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

/** Management API errors in one shape; schema validation failures name the offending field. */
export function installApiErrorHandler(app: FastifyInstance) {
  app.setErrorHandler((err: FastifyError | ActionableError, request, reply) => {
    // Domain refusals (ActionableError) and API ones (ApiError) alike.
    if (err instanceof ActionableError) {
      return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    }
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'invalid_request', message: err.message } });
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
