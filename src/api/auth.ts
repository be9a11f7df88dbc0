import type { FastifyRequest } from 'fastify';
import type { Project, ProjectDirectory } from '../projects/projects.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    project: Project;
  }
}

/**
 * The secret from `Authorization: Basic base64(secret:)` or `Authorization: Bearer secret`: a
 * scheme and one credential, nothing after it (`Bearer SECRET junk` is refused, not trimmed).
 */
export function secretFrom(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^\s*(\S+) +(\S+)\s*$/.exec(header);
  if (!match) return undefined;
  const [, scheme, value] = match as unknown as [string, string, string];
  if (scheme.toLowerCase() === 'bearer') return value;
  if (scheme.toLowerCase() === 'basic') {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? decoded : decoded.slice(0, colon);
  }
  return undefined;
}

/** A preHandler hook that authenticates the project secret and puts the project on the request. */
export function requireProjectSecret(projects: ProjectDirectory) {
  return async (request: FastifyRequest) => {
    const secret = secretFrom(request.headers.authorization);
    if (!secret) {
      throw new ApiError(401, 'unauthorized', 'send the project secret as "Authorization: Bearer SECRET" or Basic auth with the secret as username');
    }
    const project = await projects.bySecret(secret);
    if (!project) throw new ApiError(401, 'unauthorized', 'the secret does not belong to any project');
    request.project = project;
  };
}
