import '../helpers/fast-check-seed.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareIds, cutDiff, IdStream, PageCutter } from '../../src/cohort-sync/sync-plan.js';
import type { NewPage } from '../../src/store/sync-pages-repo.js';

/** Code-point order as the databases keep it: UTF-8 bytes compared. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const sign = (n: number) => Math.sign(n);

// Ids mixing ASCII, the range U+E000–U+FFFF and characters beyond U+FFFF (surrogate pairs in UTF-16).
const id = fc.array(fc.constantFrom('a', 'b', 'z', 'é', '\uE000', '\uFFFD', '😀', '𝄞', '-', '0'), { minLength: 1, maxLength: 6 }).map((cs) => cs.join(''));

/** A snapshot in chunks of `size`, as sync_snapshots holds it. */
function stream(ids: string[], size: number): IdStream {
  return new IdStream(async (chunk) => (chunk * size < ids.length || (chunk === 0 && ids.length > 0) ? JSON.stringify(ids.slice(chunk * size, (chunk + 1) * size)) : undefined));
}

function cutter(action: NewPage['action'], firstPage: number, size: number, into: NewPage[]) {
  return new PageCutter(1, action, firstPage, size, async (pages) => void into.push(...pages));
}

describe('compareIds', () => {
  it('orders as UTF-8 bytes do (SQLite binary, PostgreSQL "C"), where JavaScript `<` does not', () => {
    expect('\uE000' < '😀').toBe(false); // UTF-16 units: 0xE000 > 0xD83D
    expect(compareIds('\uE000', '😀')).toBeLessThan(0); // code points: U+E000 < U+1F600
    fc.assert(fc.property(id, id, (a, b) => sign(compareIds(a, b)) === sign(byteOrder(a, b))));
  });
});

describe('cutting a diff', () => {
  it('sends exactly the ids that joined and those that left, in pages of the size asked, in order', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(id, { maxLength: 60 }), fc.uniqueArray(id, { maxLength: 60 }), fc.integer({ min: 1, max: 7 }), fc.integer({ min: 1, max: 9 }), async (before, now, chunk, size) => {
        const [base, current] = [[...before].sort(byteOrder), [...now].sort(byteOrder)];
        const added: NewPage[] = [];
        const removed: NewPage[] = [];
        const adds = cutter('add_members', 1, size, added);
        const removes = cutter('remove_members', 100, size, removed);
        await cutDiff(stream(current, chunk), stream(base, chunk), adds, removes);
        const ids = (pages: NewPage[]) => pages.flatMap((p) => JSON.parse(p.ids) as string[]);
        expect(ids(added)).toEqual(current.filter((x) => !base.includes(x)));
        expect(ids(removed)).toEqual(base.filter((x) => !current.includes(x)));
        for (const [pages, first] of [[added, 1], [removed, 100]] as const) {
          // At least one page, even when empty; every page full but the last; numbered on from the first.
          expect(pages.length).toBeGreaterThanOrEqual(1);
          expect(pages.map((p) => p.page)).toEqual(pages.map((_, i) => first + i));
          expect(pages.slice(0, -1).every((p) => p.member_count === size)).toBe(true);
          for (const p of pages) {
            const inPage = JSON.parse(p.ids) as string[];
            expect([p.first_id, p.last_id, p.member_count]).toEqual([inPage[0] ?? null, inPage.at(-1) ?? null, inPage.length]);
          }
        }
        expect([adds.members, removes.members]).toEqual([ids(added).length, ids(removed).length]);
      }),
    );
  });

  it('refuses a snapshot out of code-point order instead of sending a wrong diff', async () => {
    const adds = cutter('add_members', 1, 10, []);
    const removes = cutter('remove_members', 2, 10, []);
    await expect(cutDiff(stream(['b', 'a'], 10), stream([], 10), adds, removes)).rejects.toThrow('snapshot chunk 0 is not in code-point order at "a"');
    // Across a chunk boundary, and where only code-point order sees it.
    await expect(cutDiff(stream(['😀', '\uE000'], 1), stream([], 1), cutter('add_members', 1, 10, []), cutter('remove_members', 2, 10, []))).rejects.toThrow(
      'snapshot chunk 1 is not in code-point order',
    );
  });
});
