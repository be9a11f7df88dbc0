import { DefinitionError, type Definition } from './definition.js';

/**
 * A definition's cost once the cohorts it names are put in their place: its filters (a behavioural
 * filter and each of its event property filters count one each) with each named cohort counted as
 * often as it is named. Computed for every cohort of a project at once, each cohort once
 * (memoised), so checking a change costs the size of the project's definitions, never the size of
 * their expansion.
 */

/** The most filters a definition may expand to: what both databases evaluate as one query, comfortably. */
export const MAX_EXPANDED_FILTERS = 2000;

type Graph = ReadonlyMap<number, Definition>;

/** Filters of `d` itself, and the cohorts it names (with repeats), in one walk. */
function own(d: Definition, named: number[]): number {
  if ('and' in d) return d.and.reduce((n, x) => n + own(x, named), 0);
  if ('or' in d) return d.or.reduce((n, x) => n + own(x, named), 0);
  if ('not' in d) return own(d.not, named);
  if ('cohort' in d) {
    named.push(d.cohort);
    return 0;
  }
  if ('event' in d) return 1 + (d.where?.length ?? 0);
  return 1;
}

/**
 * The expanded size of every cohort in `graph` (a missing or cyclic reference counts as nothing:
 * those are refused on their own). Iterative depth-first, so a long chain of references cannot
 * exhaust the stack.
 */
export function expandedSizes(graph: Graph): Map<number, number> {
  const sizes = new Map<number, number>();
  const parts = new Map<number, { filters: number; named: number[] }>();
  const partsOf = (id: number) => {
    let p = parts.get(id);
    if (!p) {
      const named: number[] = [];
      p = { filters: own(graph.get(id)!, named), named };
      parts.set(id, p);
    }
    return p;
  };
  const onPath = new Set<number>();
  for (const root of graph.keys()) {
    if (sizes.has(root)) continue;
    const stack: { id: number; next: number }[] = [{ id: root, next: 0 }];
    onPath.add(root);
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const { named } = partsOf(top.id);
      if (top.next < named.length) {
        const child = named[top.next++]!;
        if (!sizes.has(child) && graph.has(child) && !onPath.has(child)) {
          onPath.add(child);
          stack.push({ id: child, next: 0 });
        }
        continue;
      }
      const p = partsOf(top.id);
      // Saturating: the cap is what matters, not the exact size of an enormous expansion.
      const total = p.named.reduce((n, c) => Math.min(Number.MAX_SAFE_INTEGER, n + (sizes.get(c) ?? 0)), p.filters);
      sizes.set(top.id, total);
      onPath.delete(top.id);
      stack.pop();
    }
  }
  return sizes;
}

/** The expanded size of a definition (not yet saved) among the project's cohorts. */
export function expandedSize(d: Definition, graph: Graph): number {
  const sizes = expandedSizes(graph);
  const named: number[] = [];
  let total = own(d, named);
  for (const c of named) total = Math.min(Number.MAX_SAFE_INTEGER, total + (sizes.get(c) ?? 0));
  return total;
}

/**
 * The path by which `self` would reach itself through the cohorts `d` names (self → … → self), or
 * undefined. Each cohort is visited once.
 */
export function cycleThrough(self: number, d: Definition, graph: Graph): number[] | undefined {
  const named: number[] = [];
  own(d, named);
  const cameFrom = new Map<number, number>();
  const queue = [...new Set(named)];
  for (const n of queue) cameFrom.set(n, self);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i]!;
    if (id === self) {
      const chain = [self];
      for (let at = cameFrom.get(self)!; at !== self; at = cameFrom.get(at)!) chain.unshift(at);
      return [self, ...chain];
    }
    const def = graph.get(id);
    if (!def) continue;
    const next: number[] = [];
    own(def, next);
    for (const n of next) {
      if (cameFrom.has(n)) continue;
      cameFrom.set(n, id);
      queue.push(n);
    }
  }
  return undefined;
}

/** Refuses a definition that would expand past the limit, saying by how much. */
export function checkExpandedSize(size: number, path: string, whose = 'this definition'): void {
  if (size > MAX_EXPANDED_FILTERS) {
    throw new DefinitionError(path, `${whose} expands to ${size >= Number.MAX_SAFE_INTEGER ? 'more than 9e15' : size} filters once the cohorts it names are put in; at most ${MAX_EXPANDED_FILTERS}`);
  }
}
