import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncMemberHead } from '../../src/cohort-sync/wire.js';
import { cutDiff, IdStream, PageCutter } from '../../src/cohort-sync/sync-plan.js';
import { compileDefinition } from '../../src/store/cohort-sql.js';
import { insertPages, pageMembersJson, PageRead, readSnapshotChunk, writeSnapshot, type NewPage } from '../../src/store/sync-pages-repo.js';
import { openStore, type Store } from '../../src/store/database.js';
import { migrateTo, migrateToLatest } from '../../src/store/migrate.js';
import { updateUserProfiles, type Properties } from '../../src/store/profile-writer.js';
import { getProfile } from '../../src/store/profiles-repo.js';
import { createTestDatabase, dialectUnderTest, type TestDatabase } from '../helpers/database.js';

/**
 * The storage a cohort sync runs on, on the database the suite runs against: snapshots in
 * code-point order (which the merge of a diff relies on), every way SQLite reads a page's
 * profiles giving the same page, and the upgrade that gives existing profiles their page form.
 */
let db: TestDatabase;
let store: Store;
const project = 1;
const run = { a: 901, b: 902, pages: 903 };

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const setProfiles = (profiles: Record<string, Properties | null>) =>
  updateUserProfiles(
    store,
    { syncMember: syncMemberHead },
    project,
    Object.entries(profiles).map(([distinctId, props]) => ({ distinctId, ignoreAlias: true, change: () => props })),
    Date.now(),
  );

async function snapshotIds(runId: number): Promise<string[]> {
  const ids: string[] = [];
  for (let chunk = 0; ; chunk++) {
    const text = await readSnapshotChunk(store.db, runId, chunk);
    if (text === undefined) return ids;
    ids.push(...(JSON.parse(text) as string[]));
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  store = openStore(db.config);
  await migrateTo(store, '004_cohort_syncs');
  const now = Date.now();
  await store.db.insertInto('projects').values({ id: project, name: 'p', token: 't', secret_hash: 'x', created_at: now } as never).execute();
  // A profile from before the upgrade: written without its page form.
  await sql`insert into profiles (project_id, distinct_id, properties, created_at, updated_at)
    values (${project}, 'old', ${JSON.stringify({ $email: 'old@example.com', $first_name: '', $phone: 5551234, plan: 'pro' })}, ${now}, ${now})`.execute(store.db);
  await migrateToLatest(store);
});

afterAll(async () => {
  await store?.close();
  await db?.cleanup();
});

describe(`cohort sync storage on ${dialectUnderTest}`, () => {
  it('gives profiles that predate it their page form when upgrading', async () => {
    const row = await store.db.selectFrom('profiles').select('sync_member').where('distinct_id', '=', 'old').executeTakeFirstOrThrow();
    expect(row.sync_member).toBe(syncMemberHead('old', { $email: 'old@example.com', $first_name: '', $phone: 5551234 }));
    expect(JSON.parse(`${row.sync_member}}`)).toEqual({ mixpanel_distinct_id: 'old', email: 'old@example.com', phone_number: '5551234' });
    // Its properties read back as they were written; SQLite now keeps them as JSONB.
    expect((await getProfile(store, project, 'old'))?.properties).toEqual({ $email: 'old@example.com', $first_name: '', $phone: 5551234, plan: 'pro' });
    if (dialectUnderTest === 'sqlite') {
      const { rows } = await sql<{ t: string }>`select typeof(properties) as t from profiles where distinct_id = 'old'`.execute(store.db);
      expect(rows[0]!.t).toBe('blob');
    }
  });

  it('keeps snapshots in code-point order, so the merge finds exactly who joined and who left', async () => {
    const ids = ['b', 'a', 'é', '\uE000x', '😀', '𝄞y', 'a-1', 'Z', 'ü', '\uFFFD'];
    await setProfiles(Object.fromEntries(ids.map((id, i) => [id, { plan: 'pro', n: i }])));
    const pro = compileDefinition({ property: 'plan', op: 'equals', value: 'pro' }, { dialect: store.dialect, projectId: project, now: Date.now(), cohorts: new Map() });
    expect(await writeSnapshot(store.db, store.dialect, run.a, project, pro, 3)).toBe(ids.length + 1);
    expect(await snapshotIds(run.a)).toEqual([...ids, 'old'].sort(byteOrder));

    await setProfiles({ '😀': { plan: 'free' }, a: null, '\uE000y': { plan: 'pro' }, '𝄞a': { plan: 'pro' } });
    await writeSnapshot(store.db, store.dialect, run.b, project, pro, 4);
    const pages: NewPage[] = [];
    const cut = (action: NewPage['action'], first: number) => new PageCutter(run.b, action, first, 2, async (p) => void pages.push(...p));
    const [adds, removes] = [cut('add_members', 1), cut('remove_members', 10)];
    const stream = (runId: number) => new IdStream((chunk) => readSnapshotChunk(store.db, runId, chunk));
    await cutDiff(stream(run.b), stream(run.a), adds, removes);
    const idsOf = (action: string) => pages.filter((p) => p.action === action).flatMap((p) => JSON.parse(p.ids) as string[]);
    expect(idsOf('add_members')).toEqual(['\uE000y', '𝄞a']);
    expect(idsOf('remove_members')).toEqual(['a', '😀']);
  });

  it('builds the same page whichever way SQLite reads it, falling back when the range is not the page', async () => {
    const props = (i: number): Properties => ({
      $email: `m${i}@example.com`,
      $first_name: i === 2 ? '' : `M${i}`,
      $last_name: null,
      company: `C${i}`,
      n: i,
      obj: { tier: i },
      empty: '',
      nul: null,
    });
    await setProfiles({ m1: props(1), m2: props(2), m3: props(3), m4: props(4) });
    const exported = ['company', 'n', 'obj', 'empty', 'nul', 'missing'];
    let pageNo = 0;
    const page = (scan: number, ids: string[]) => ({ run_id: run.pages, page: ++pageNo, action: 'add_members' as const, ids: JSON.stringify(ids), first_id: ids[0]!, last_id: ids.at(-1)!, member_count: ids.length, scan });
    /** The page read each way: by its id range, by its range probed, by lookups. */
    const build = async (ids: string[]) => {
      const out: string[] = [];
      for (const scan of [PageRead.range, PageRead.probe, PageRead.lookup]) {
        const p = page(scan, ids);
        await insertPages(store.db, [p]);
        out.push(await pageMembersJson(store.db, store.dialect, project, p, exported));
      }
      return out;
    };

    const [range, probe, lookup] = await build(['m1', 'm2', 'm3']);
    expect(probe).toBe(range);
    expect(lookup).toBe(range);
    expect(JSON.parse(range!)).toEqual([
      { mixpanel_distinct_id: 'm1', email: 'm1@example.com', first_name: 'M1', company: 'C1', n: 1, obj: { tier: 1 } },
      { mixpanel_distinct_id: 'm2', email: 'm2@example.com', company: 'C2', n: 2, obj: { tier: 2 } },
      { mixpanel_distinct_id: 'm3', email: 'm3@example.com', first_name: 'M3', company: 'C3', n: 3, obj: { tier: 3 } },
    ]);

    // m2's profile is gone (sent with its id alone) and m2a, not on the page, sits in its range.
    await setProfiles({ m2: null, m2a: props(9) });
    const after = await build(['m1', 'm2', 'm3']);
    expect(new Set(after).size).toBe(1);
    expect(JSON.parse(after[0]!)).toEqual([
      expect.objectContaining({ mixpanel_distinct_id: 'm1' }),
      { mixpanel_distinct_id: 'm2' },
      expect.objectContaining({ mixpanel_distinct_id: 'm3' }),
    ]);
  });
});
