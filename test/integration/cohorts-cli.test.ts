import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProjectWithCli, runCli, runCliOk, type CliProject } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
let dir: string;
let project: CliProject;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-cli-cohort-'));
  // With no project yet, the CLI says how to make one.
  const none = await runCli(['cohort', 'list', ...db.args], db.env);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain('no project yet: `cohortcast project create --name NAME` makes one');
  project = await createProjectWithCli('CLI cohorts', db.args, db.env);
});
afterAll(async () => {
  fs.rmSync(dir, { recursive: true, force: true });
  await db?.cleanup();
});

const write = (name: string, value: unknown) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
};

describe('cohortcast cohort create / list', () => {
  it('creates a cohort from a file holding a bare definition, or the whole cohort, and lists them', async () => {
    const definition = { and: [{ property: 'plan', op: 'equals', value: 'pro' }, { event: 'Purchase', within_days: 30 }] };
    const bare = JSON.parse(await runCliOk(['cohort', 'create', '--file', write('def.json', definition), '--name', 'Paying pros', '--json', ...db.args], db.env));
    expect(bare).toEqual({ id: expect.any(Number), name: 'Paying pros', description: '', definition });

    const whole = write('cohort.json', { name: 'Pros', description: 'on the pro plan', definition: { property: 'plan', op: 'equals', value: 'pro' } });
    const out = await runCliOk(['cohort', 'create', '--file', whole, '--project', String(project.id), ...db.args], db.env);
    expect(out).toMatch(new RegExp(`^cohort \\d+ "Pros" created in project ${project.id}\\n$`));

    const listed = JSON.parse(await runCliOk(['cohort', 'list', '--json', ...db.args], db.env)) as { name: string }[];
    expect(listed.map((c) => c.name)).toEqual(['Paying pros', 'Pros']);
  });

  it('names the offending path of an invalid definition, and refuses bad JSON and a missing name', async () => {
    const invalid = await runCli(['cohort', 'create', '--file', write('bad.json', { or: [{ property: 'plan', op: 'resembles', value: 'pro' }] }), '--name', 'x', ...db.args], db.env);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('cohortcast: definition.or[0].op: expected one of equals, not_equals,');

    const broken = await runCli(['cohort', 'create', '--file', write('broken.json', '{"and": ['), '--name', 'x', ...db.args], db.env);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('broken.json is not valid JSON');

    const unnamed = await runCli(['cohort', 'create', '--file', write('unnamed.json', { property: 'plan', op: 'set' }), ...db.args], db.env);
    expect(unnamed.code).toBe(1);
    expect(unnamed.stderr).toContain('cohortcast: name: required');

    const elsewhere = await runCli(['cohort', 'create', '--file', write('x.json', { property: 'plan', op: 'set' }), '--name', 'x', '--project', '999', ...db.args], db.env);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('no project 999');
  });
});
