import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);
/** A file of an installed package, from the package's folder (its entry point is in dist/). */
const packageFile = (name: string, file: string) => path.join(path.dirname(require.resolve(name)), '..', file);

/** The dashboard's own files: plain ES modules, no build step (served as they are in the package). */
const DASHBOARD = fileURLToPath(new URL('../../dashboard/', import.meta.url));

/** The libraries it imports, served from the package's own dependencies: no CDN, nothing fetched elsewhere. */
const VENDOR: Record<string, { file: string; type: string }> = {
  'preact.mjs': { file: packageFile('preact', 'dist/preact.mjs'), type: 'text/javascript' },
  'preact-hooks.mjs': { file: packageFile('preact/hooks', 'dist/hooks.mjs'), type: 'text/javascript' },
  'htm.mjs': { file: packageFile('htm', 'dist/htm.module.js'), type: 'text/javascript' },
  'uplot.mjs': { file: packageFile('uplot', 'dist/uPlot.esm.js'), type: 'text/javascript' },
  'uplot.css': { file: packageFile('uplot', 'dist/uPlot.min.css'), type: 'text/css' },
};

/**
 * The dashboard at `/`: a page that signs in with a project secret (kept in the tab's session
 * storage and sent as the Authorization header, so no cookie and no CSRF) and drives the
 * management API under /api/v1 like any other client.
 */
export async function dashboardRoutes(app: FastifyInstance) {
  // One route per file found at start (no wildcard), so nothing shadows the ingestion API at the root.
  await app.register(fastifyStatic, { root: DASHBOARD, prefix: '/', wildcard: false, index: ['index.html'], schemaHide: true });
  for (const [name, { file, type }] of Object.entries(VENDOR)) {
    const body = fs.readFileSync(file);
    app.get(`/vendor/${name}`, { schema: { hide: true } }, async (_request, reply) => reply.type(`${type}; charset=utf-8`).header('cache-control', 'public, max-age=3600').send(body));
  }
}
