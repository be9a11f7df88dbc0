import type { Config } from '../../src/config.js';
import { createProject, type CreatedProject } from '../../src/projects/projects.js';
import { startService, type Service } from '../../src/service.js';
import { createTestDatabase, type TestDatabase } from './database.js';

export interface TestService {
  service: Service;
  url: string;
  project: CreatedProject;
  database: TestDatabase;
  /** Fetch against the service with the project secret as Bearer token. */
  api(path: string, init?: RequestInit): Promise<Response>;
  close(): Promise<void>;
}

/** A real service on 127.0.0.1 with a fresh database and one project. */
export async function startTestService(adjust: (config: Config) => void = () => {}): Promise<TestService> {
  const database = await createTestDatabase();
  adjust(database.config);
  const service = await startService(database.config);
  const project = await createProject(service.store, 'Test project');
  return {
    service,
    url: service.url,
    project,
    database,
    api: (path, init = {}) =>
      fetch(service.url + path, {
        ...init,
        headers: { authorization: `Bearer ${project.secret}`, ...(init.headers as Record<string, string> | undefined) },
      }),
    async close() {
      await service.close();
      await database.cleanup();
    },
  };
}
