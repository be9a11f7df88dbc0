import type { Config } from '../../src/config.js';
import { createProject, type CreatedProject } from '../../src/projects/projects.js';
import { startService, type EngineOptions, type Service } from '../../src/service.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestService {
  service: Service;
  url: string;
  project: CreatedProject;
  database: TestDatabase;
  /** Fetch against the service with the project secret as Bearer token. */
  api(path: string, init?: RequestInit): Promise<Response>;
  /** `api` with a JSON body (if any), answering the status and the parsed reply. */
  json<T = any>(path: string, method?: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): Promise<void>;
}

/** A real service on 127.0.0.1 with a fresh database and one project. */
export async function startTestService(adjust: (config: Config) => void = () => {}, opts: EngineOptions = {}): Promise<TestService> {
  const database = await createTestDatabase();
  adjust(database.config);
  const service = await startService(database.config, opts);
  const project = await createProject(service.store, 'Test project');
  const api: TestService['api'] = (path, init = {}) =>
    fetch(service.url + path, {
      ...init,
      headers: { authorization: `Bearer ${project.secret}`, ...(init.headers as Record<string, string> | undefined) },
    });
  return {
    service,
    url: service.url,
    project,
    database,
    api,
    async json(path, method = 'GET', body) {
      const res = await api(path, { method, ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    },
    async close() {
      await service.close();
      await database.cleanup();
    },
  };
}
