import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../src/store/database.js';
import { cliPath, createProjectWithCli, killAllCliChildren, repoRoot, runCli, type CliProject } from '../helpers/cli.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `cohortcast import` on the database under test, with files written here in Mixpanel's export
 * shapes: Raw Event Export NDJSON (gzip and not, with bad lines and duplicates), /import's JSON
 * array, Engage query pages; standard input; a kill -9 and a Ctrl-C half way, then the same
 * command again; the progress line in a pseudo-terminal and in a pipe.
 */
let db: TestDatabase;
let store: Store;
let dir: string;
let project: CliProject;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-import-'));
  // Without a project the command says how to make one.
  fs.writeFileSync(path.join(dir, 'empty.ndjson'), '');
  const none = await runCli(['import', 'events', path.join(dir, 'empty.ndjson'), ...db.args], db.env);
  expect(none.code).toBe(1);
  expect(none.stderr).toContain('no project yet: `cohortcast project create --name NAME` makes one');
  project = await createProjectWithCli('Imported', db.args, db.env);
  store = openStore(db.config);
});
afterAll(async () => {
  killAllCliChildren();
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
  await db?.cleanup();
});

const T0 = 1_700_000_000;
/** A Raw Event Export record, as Mixpanel writes it (time in seconds). */
const exported = (i: number, extra: Record<string, unknown> = {}) => ({
  event: i % 3 ? 'Viewed' : 'Bought',
  properties: { time: T0 + i, distinct_id: `u${i % 50}`, $insert_id: `ins-${i}`, mp_processing_time_ms: (T0 + i) * 1000 + 5, n: i, ...extra },
});
const ndjson = (records: unknown[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const write = (name: string, text: string | Buffer) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};
const summaryOf = (stdout: string) => JSON.parse(stdout) as { records: number; imported: number; duplicates: number; rejected: number; errors: { line?: number; record: number; reason: string }[]; stopped_at?: { line: number; reason: string } };
const eventCount = async (where: (q: any) => any = (q) => q) =>
  Number((await where(store.db.selectFrom('events').select((eb) => eb.fn.countAll().as('n')).where('project_id', '=', project.id)).executeTakeFirstOrThrow()).n);
const importCli = (args: string[]) => runCli(['import', ...args, ...db.args], db.env, 120_000);

describe('cohortcast import events', () => {
  it('imports a gzip Raw Event Export, counts and reports bad lines, and adds nothing the second time', async () => {
    const lines = [...Array.from({ length: 300 }, (_, i) => JSON.stringify(exported(i)))];
    lines.splice(100, 0, '{"event": "Broken", "properties": ');
    lines.splice(200, 0, JSON.stringify({ event: '', properties: { time: T0, distinct_id: 'x' } }));
    // The same event twice in the file, and one without $insert_id (given one from its content).
    lines.push(JSON.stringify(exported(7)), JSON.stringify({ event: 'No id', properties: { time: T0 + 1, distinct_id: 'z' } }));
    const file = write('export.ndjson.gz', zlib.gzipSync(lines.join('\n')));
    const first = await importCli(['events', file, '--json']);
    expect(first.code).toBe(0);
    expect(summaryOf(first.stdout)).toMatchObject({ records: 304, imported: 301, duplicates: 1, rejected: 2 });
    expect(summaryOf(first.stdout).errors).toEqual([
      { line: 101, record: 101, reason: expect.stringMatching(/^not JSON: /) },
      { line: 201, record: 201, reason: "'event' must be a non-empty string" },
    ]);
    expect(first.stderr).toBe(''); // not a terminal, no --progress: quiet
    expect(await eventCount()).toBe(301);
    // Normalised as /import does: seconds become milliseconds, the properties kept.
    const one = await store.db.selectFrom('events').select(['time', 'distinct_id', 'insert_id']).where('insert_id', '=', 'ins-5').executeTakeFirstOrThrow();
    expect({ ...one, time: Number(one.time) }).toEqual({ time: (T0 + 5) * 1000, distinct_id: 'u5', insert_id: 'ins-5' });

    const again = await importCli(['events', file]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^0 events imported, 302 duplicates \(already stored\), 2 rejected; 304 records in [\d.]+ s/);
    expect(again.stdout).toContain("  line 201: 'event' must be a non-empty string");
    expect(await eventCount()).toBe(301);
  });

  it('reads /import shapes: a JSON array, and NDJSON on standard input', async () => {
    const array = write('array.json', JSON.stringify([exported(1000), exported(1001)], null, 2));
    expect(summaryOf((await importCli(['events', array, '--json'])).stdout)).toMatchObject({ records: 2, imported: 2, rejected: 0 });
    const child = spawn(process.execPath, [cliPath, 'import', 'events', '-', '--json', ...db.args], { env: { ...process.env, ...db.env }, cwd: repoRoot });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stdin.end(zlib.gzipSync(ndjson([exported(1002), exported(1000)])));
    expect(await new Promise((r) => child.once('close', r))).toBe(0);
    expect(summaryOf(out)).toMatchObject({ records: 2, imported: 1, duplicates: 1 });
  });

  it('--strict stops at the first bad record, having imported those before it', async () => {
    const file = write('strict.ndjson', ndjson([exported(2000), exported(2001), { event: 'Late', properties: { distinct_id: 'q' } }, exported(2002)]));
    const res = await importCli(['events', file, '--strict', '--json']);
    expect(res.code).toBe(1);
    expect(summaryOf(res.stdout)).toMatchObject({ records: 3, imported: 2, rejected: 1, stopped_at: { line: 3, reason: expect.stringContaining('time') } });
    expect(await eventCount((q) => q.where('insert_id', 'in', ['ins-2000', 'ins-2001', 'ins-2002']))).toBe(2);
  });

  for (const signal of ['SIGKILL', 'SIGINT'] as const) {
    it(`${signal} half way through, then the same command again: nothing lost, nothing doubled`, async () => {
      const total = 60_000;
      // Events of their own (ins-1….. and ins-2…..), so the two runs do not see each other's.
      const base = signal === 'SIGKILL' ? 100_000 : 200_000;
      const file = write(`big-${signal}.ndjson`, ndjson(Array.from({ length: total }, (_, i) => exported(base + i))));
      const ours = (q: any) => q.where('insert_id', 'like', `ins-${base / 100_000}_____`);
      const child = spawn(process.execPath, [cliPath, 'import', 'events', file, '--batch', '500', '--json', ...db.args], { env: { ...process.env, ...db.env }, cwd: repoRoot });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const closed = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
      await waitFor('some events to be stored', async () => ((await eventCount(ours)) > 0 ? true : undefined), 30_000, 5);
      child.kill(signal);
      const code = await closed;
      const stored = await eventCount(ours);
      expect(stored).toBeLessThan(total);
      if (signal === 'SIGINT') {
        expect(code).toBe(130);
        expect(stderr).toContain('interrupted; what was imported is stored, and the same command run again imports the rest without doubling anything');
      }
      const rerun = summaryOf((await importCli(['events', file, '--json'])).stdout);
      expect(rerun.imported + rerun.duplicates).toBe(total);
      expect(rerun.duplicates).toBe(stored);
      expect(await eventCount(ours)).toBe(total);
    });
  }
});

describe.skipIf(dialectUnderTest === 'postgres')('the write-ahead log during an import (SQLite)', () => {
  /** Imports `file` with the WAL restarted past `restartBytes`, answering the largest the WAL was seen. */
  async function largestWal(file: string, restartBytes: number): Promise<number> {
    // A data folder of its own, so no earlier import's log is measured.
    const folder = fs.mkdtempSync(path.join(dir, 'wal-'));
    await createProjectWithCli('WAL', ['--data-dir', folder], db.env);
    const wal = path.join(folder, 'cohortcast.db-wal');
    const env = { ...process.env, ...db.env, COHORTCAST_SQLITE_WAL_RESTART_BYTES: String(restartBytes) };
    const child = spawn(process.execPath, [cliPath, 'import', 'events', file, '--batch', '1000', '--data-dir', folder], { env, cwd: repoRoot });
    let running = true;
    const closed = new Promise<number | null>((r) => child.once('close', (code) => ((running = false), r(code))));
    let largest = 0;
    while (running) {
      largest = Math.max(largest, fs.statSync(wal, { throwIfNoEntry: false })?.size ?? 0);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(await closed).toBe(0);
    return largest;
  }

  it('stays near COHORTCAST_SQLITE_WAL_RESTART_BYTES, where back-to-back batches would let it grow', async () => {
    const events = (from: number) =>
      ndjson(Array.from({ length: 100_000 }, (_, i) => exported(from + i, { path: `/p/${i % 97}` })));
    const file = write('wal.ndjson', events(400_000));
    const unbounded = await largestWal(file, 1024 ** 4);
    const bounded = await largestWal(file, 1024 * 1024);
    // Left alone, 100,000 events leave tens of MB of log; restarted past 1 MB, it holds a batch more at most.
    expect(unbounded).toBeGreaterThan(16 * 1024 * 1024);
    expect(bounded).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('cohortcast import profiles', () => {
  const engagePage = (from: number, to: number) => ({
    page: 0,
    page_size: 1000,
    session_id: '1234567890-EXAMPL',
    status: 'ok',
    total: 5,
    results: Array.from({ length: to - from }, (_, k) => ({ $distinct_id: `p${from + k}`, $properties: { plan: 'pro', $email: `p${from + k}@example.com`, $last_seen: '2024-01-02T03:04:05' } })),
  });
  const profile = async (id: string) =>
    (await store.db.selectFrom('profiles').selectAll().where('project_id', '=', project.id).where('distinct_id', '=', id).executeTakeFirst()) as { properties: unknown } | undefined;
  const props = async (id: string) => {
    const row = await profile(id);
    if (!row) return undefined;
    // SQLite keeps JSONB: read it back as text through the database.
    const text = db.config.databaseUrl ? row.properties : (store as any).raw.prepare('select json(properties) p from profiles where project_id = ? and distinct_id = ?').get(project.id, id).p;
    return typeof text === 'string' ? JSON.parse(text) : text;
  };

  it('applies Engage query pages (pretty-printed, one after another) as $set, keeping their $last_seen', async () => {
    const file = write('engage.json', `${JSON.stringify(engagePage(0, 3), null, 2)}\n${JSON.stringify(engagePage(3, 5), null, 2)}\n`);
    const res = await importCli(['profiles', file, '--json']);
    expect(summaryOf(res.stdout)).toMatchObject({ records: 5, imported: 5, rejected: 0 });
    expect(await props('p4')).toEqual({ plan: 'pro', $email: 'p4@example.com', $last_seen: '2024-01-02T03:04:05' });
  });

  it('--set-once keeps what a profile has; NDJSON of profiles and /engage updates; a bad record reported', async () => {
    const file = write('profiles.ndjson', ndjson([{ $distinct_id: 'p0', $properties: { plan: 'free', seats: 3 } }, { $distinct_id: 'p9', $set: { plan: 'team' } }, { name: 'not a profile' }]));
    const res = await importCli(['profiles', file, '--set-once', '--json']);
    const summary = summaryOf(res.stdout);
    expect(summary).toMatchObject({ records: 3, imported: 2, rejected: 1 });
    expect(summary.errors).toEqual([{ line: 3, record: 3, reason: expect.stringContaining('expected a profile {"$distinct_id", "$properties"}') }]);
    expect(await props('p0')).toMatchObject({ plan: 'pro', seats: 3 });
    expect((await props('p9')).plan).toBe('team');
  });
});

describe('inputs that are not what they claim', () => {
  it('names a file that is not there', async () => {
    const res = await importCli(['events', path.join(dir, 'nowhere.ndjson')]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(`cohortcast: there is no file ${path.join(dir, 'nowhere.ndjson')}\n`);
  });

  it('takes Engage pages inside a JSON array, and ends with the place of a syntax error in one', async () => {
    const pages = write('pages-array.json', JSON.stringify([{ results: [{ $distinct_id: 'arr-1', $properties: { plan: 'team' } }] }, { results: [{ $distinct_id: 'arr-2', $properties: {} }] }]));
    expect(summaryOf((await importCli(['profiles', pages, '--json'])).stdout)).toMatchObject({ records: 2, imported: 2 });
    const broken = write('broken.json', `[${JSON.stringify(exported(9000))}, ${JSON.stringify(exported(9001))}, {"event": oops}]`);
    const res = await importCli(['events', broken]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^cohortcast: the input is not valid JSON after record 2: /);
    // What came before the mistake is stored: running again after fixing the file doubles nothing.
    expect(await eventCount((q) => q.where('insert_id', 'in', ['ins-9000', 'ins-9001']))).toBe(2);
  });
});

describe('the progress line', () => {
  const file = () => write('progress.ndjson', ndjson(Array.from({ length: 3000 }, (_, i) => exported(5000 + i))));

  it('is redrawn in place on a terminal, with records, rate and bytes of the total', async () => {
    const f = file();
    const size = fs.statSync(f).size;
    const cmd = [process.execPath, cliPath, 'import', 'events', f, ...db.args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    // util-linux's script runs the command in a pseudo-terminal; its output is what the terminal got.
    const res = spawnSync('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, ...db.env }, cwd: repoRoot, encoding: 'utf8', timeout: 60_000 });
    expect(res.status).toBe(0);
    const drawn = res.stdout.split('\r').filter((s) => s.includes(' events · '));
    expect(drawn.length).toBeGreaterThanOrEqual(1);
    expect(drawn.at(-1)).toMatch(new RegExp(`^3,000 events · [\\d,]+/s · ${Math.round(size / 1024)} KB of ${Math.round(size / 1024)} KB \\(100%\\)`));
    expect(res.stdout).toContain('\x1b[K'); // each redraw clears the rest of the line
    expect(res.stdout).toMatch(/0 events imported, 3,000 duplicates|3,000 events imported/);
  });

  it('is quiet in a pipe, and a line at a time there with --progress', async () => {
    const f = file();
    const quiet = await importCli(['events', f]);
    expect(quiet.stderr).toBe('');
    const shown = await importCli(['events', f, '--progress']);
    const lines = shown.stderr.trimEnd().split('\n');
    expect(lines.at(-1)).toMatch(/^3,000 events · [\d,]+\/s · \d+ KB of \d+ KB \(100%\)/);
    expect(shown.stderr).not.toContain('\r');
  });
});
