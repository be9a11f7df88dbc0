import type { NewPage, SyncAction } from '../store/sync-pages-repo.js';

/**
 * Orders distinct ids by code point, as SQLite's binary collation and PostgreSQL's "C" collation
 * order them. JavaScript's `<` compares UTF-16 units, which puts U+E000–U+FFFF after characters
 * beyond U+FFFF (surrogate pairs); mapping each unit first fixes that.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

const codePointRank = (unit: number) => (unit < 0xd800 ? unit : unit < 0xe000 ? unit + 0x2000 : unit - 0x800);

/** Any UTF-16 surrogate: where JavaScript's own string order and code-point order can differ. */
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * A snapshot read a chunk (JSON text) at a time: only the chunk in hand is in memory. Checks that
 * ids ascend, since the merge is only right on sorted input. A chunk without surrogates (nearly
 * all of them) is compared with JavaScript's own `<`, which agrees with code-point order there.
 */
export class IdStream {
  #ids: string[] = [];
  #at = 0;
  #chunk = 0;
  #ended = false;
  #last: string | undefined;
  /** The chunk in hand has no surrogates. */
  plain = true;

  constructor(private readonly read: (chunk: number) => Promise<string | undefined>) {}

  /** Makes sure ids are in hand (reading the next chunk when needed); false at the end. */
  async ready(): Promise<boolean> {
    while (this.#at >= this.#ids.length) {
      if (this.#ended) return false;
      const text = await this.read(this.#chunk++);
      if (text === undefined) {
        this.#ended = true;
        return false;
      }
      const next = JSON.parse(text) as string[];
      const plain = !SURROGATE.test(text) && (this.#last === undefined || !SURROGATE.test(this.#last));
      for (let i = 0; i < next.length; i++) {
        const [before, id] = [i === 0 ? this.#last : next[i - 1], next[i]!];
        if (before !== undefined && !(plain ? before < id : compareIds(before, id) < 0)) {
          throw new Error(`snapshot chunk ${this.#chunk - 1} is not in code-point order at ${JSON.stringify(id)}`);
        }
      }
      [this.#ids, this.#at, this.plain] = [next, 0, plain];
      this.#last = next.at(-1) ?? this.#last;
    }
    return true;
  }

  /** Ids in hand, not yet taken. */
  get left(): number {
    return this.#ids.length - this.#at;
  }

  get head(): string {
    return this.#ids[this.#at]!;
  }

  skip(): void {
    this.#at++;
  }

  take(): string {
    return this.#ids[this.#at++]!;
  }
}

/**
 * Cuts one action's ids into pages of `size` numbered from `firstPage`; pages are handed to
 * `write` as they fill (flush), so a cohort of any size passes through a page at a time. An
 * action with no members still gets one, empty, page.
 */
export class PageCutter {
  #ids: string[] = [];
  #cut: NewPage[] = [];
  pages = 0;
  members = 0;

  constructor(
    private readonly runId: number,
    private readonly action: SyncAction,
    private readonly firstPage: number,
    private readonly size: number,
    private readonly write: (pages: NewPage[]) => Promise<void>,
  ) {}

  push(id: string): void {
    this.#ids.push(id);
    if (this.#ids.length === this.size) this.#page();
  }

  async flush(): Promise<void> {
    if (this.#cut.length > 0) await this.write(this.#cut.splice(0));
  }

  /** The last page (or the one empty page), then everything still unwritten. */
  async end(): Promise<void> {
    if (this.#ids.length > 0 || this.pages === 0) this.#page();
    await this.flush();
  }

  #page(): void {
    const ids = this.#ids;
    this.#ids = [];
    this.#cut.push({
      run_id: this.runId,
      page: this.firstPage + this.pages++,
      action: this.action,
      ids: JSON.stringify(ids),
      first_id: ids[0] ?? null,
      last_id: ids.at(-1) ?? null,
      member_count: ids.length,
    });
    this.members += ids.length;
  }
}

/**
 * A diff's pages by merging two sorted snapshots: ids only in `current` are added, ids only in
 * `base` removed. Both are read a chunk at a time, compared in memory without awaiting between ids.
 */
export async function cutDiff(current: IdStream, base: IdStream, adds: PageCutter, removes: PageCutter): Promise<void> {
  for (;;) {
    const [hasCurrent, hasBase] = [await current.ready(), await base.ready()];
    if (!hasCurrent && !hasBase) break;
    if (!hasBase) while (current.left > 0) adds.push(current.take());
    else if (!hasCurrent) while (base.left > 0) removes.push(base.take());
    else {
      const plain = current.plain && base.plain;
      while (current.left > 0 && base.left > 0) {
        const [a, b] = [current.head, base.head];
        const order = plain ? (a < b ? -1 : a > b ? 1 : 0) : compareIds(a, b);
        if (order === 0) {
          current.skip();
          base.skip();
        } else if (order < 0) adds.push(current.take());
        else removes.push(base.take());
      }
    }
    await adds.flush();
    await removes.flush();
  }
  await adds.end();
  await removes.end();
}
