import type { FastifyRequest } from 'fastify';
import type { Project, ProjectDirectory } from '../projects/projects.js';
import { ApiError } from './errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    project: Project;
  }
}

/** The secret from `Authorization: Basic base64(secret:)` or `Authorization: Bearer secret`. */
function secretFrom(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const [scheme, value] = header.trim().split(/\s+/, 2);
  if (!value) return undefined;
  if (scheme!.toLowerCase() === 'bearer') return value;
  if (scheme!.toLowerCase() === 'basic') {
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
