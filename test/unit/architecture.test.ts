import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The rules of the house (docs/architecture.md, "Folders and what they may import"), checked on
 * the source itself so that a change that breaks one fails here, with the file and line.
 */
const SRC = path.resolve(import.meta.dirname, '../../src');

interface Import {
  file: string;
  line: number;
  typeOnly: boolean;
  spec: string;
}

function sourceFiles(dir = SRC): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return /\.(ts|js)$/.test(e.name) ? [full] : [];
  });
}

const files = sourceFiles();
const rel = (file: string) => path.relative(SRC, file);
const folderOf = (file: string) => (rel(file).includes(path.sep) ? rel(file).split(path.sep)[0]! : '.');

function importsOf(file: string): Import[] {
  const text = fs.readFileSync(file, 'utf8');
  const found: Import[] = [];
  const re = /^(import|export)\s+(type\s+)?[^'"]*?from\s+'([^']+)';/gms;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const line = text.slice(0, m.index).split('\n').length;
    const clause = m[0].replace(/^(import|export)\s+/, '').replace(/\s+from\s+'[^']+';$/s, '').trim();
    // `import type …`, or braces holding types only: `import { type A, type B }`.
    const braces = /^\{([^}]*)\}$/s.exec(clause);
    const typeOnly = /^type\s/.test(clause) || (braces !== null && braces[1]!.split(',').every((n) => n.trim() === '' || n.trim().startsWith('type ')));
    found.push({ file: rel(file), line, typeOnly, spec: m[3]! });
  }
  return found;
}

/** The folder an import inside src/ lands in ('.' for the top-level files), or undefined for a package. */
function targetFolder(from: string, spec: string): string | undefined {
  if (!spec.startsWith('.')) return undefined;
  const target = path.relative(SRC, path.resolve(path.dirname(path.join(SRC, from)), spec));
  return target.includes(path.sep) ? target.split(path.sep)[0] : '.';
}

const DOMAIN = ['cohorts', 'cohort-sync', 'delivery', 'channels', 'ingest', 'scheduling', 'projects', 'observability', 'subscriptions', 'membership', 'messages', 'reports', 'alerts', 'retention'];
const allImports = files.flatMap(importsOf);

describe('the rules of the house', () => {
  it('only store/ writes SQL', () => {
    const sqlLike = /\.(selectFrom|updateTable|insertInto|deleteFrom|replaceInto)\(|\bsql`|\.schema\.|\.prepare\(/;
    const offenders = files
      .filter((f) => folderOf(f) !== 'store')
      .flatMap((f) =>
        fs
          .readFileSync(f, 'utf8')
          .split('\n')
          .flatMap((l, i) => (sqlLike.test(l) && !l.trim().startsWith('//') && !l.trim().startsWith('*') ? [`${rel(f)}:${i + 1}: ${l.trim()}`] : [])),
      );
    expect(offenders).toEqual([]);
  });

  it('store/ imports nothing but types from the domain folders', () => {
    const offenders = allImports.filter((i) => i.file.startsWith(`store${path.sep}`) && !i.typeOnly && DOMAIN.includes(targetFolder(i.file, i.spec) ?? '')).map((i) => `${i.file}:${i.line} imports ${i.spec}`);
    expect(offenders).toEqual([]);
  });

  it('migrations import only Kysely, Node built-ins and types: what they write never changes with the live code', () => {
    const offenders = allImports
      .filter((i) => i.file.startsWith(path.join('store', 'migrations')) && !i.typeOnly && !(i.spec === 'kysely' || i.spec.startsWith('node:')))
      .map((i) => `${i.file}:${i.line} imports ${i.spec}`);
    expect(offenders).toEqual([]);
  });

  it('domain folders do not import the API or the command line', () => {
    const offenders = allImports
      .filter((i) => DOMAIN.includes(folderOf(path.join(SRC, i.file))) && ['api', 'cli'].includes(targetFolder(i.file, i.spec) ?? ''))
      .map((i) => `${i.file}:${i.line} imports ${i.spec}`);
    expect(offenders).toEqual([]);
  });

  it('only delivery/ and channels/ reach the network', () => {
    const clients = ['undici', 'nodemailer', 'node:http', 'node:https', 'node:net', 'node:tls', 'node:dns'];
    const offenders = allImports
      .filter((i) => clients.includes(i.spec) && !i.typeOnly && !['delivery', 'channels'].includes(folderOf(path.join(SRC, i.file))))
      .map((i) => `${i.file}:${i.line} imports ${i.spec}`);
    expect(offenders).toEqual([]);
  });

  it('finds the imports it checks (a rule that sees nothing proves nothing)', () => {
    expect(allImports.some((i) => i.file === path.join('store', 'leases.ts') && i.spec === './schema.js' && i.typeOnly)).toBe(true);
    expect(allImports.some((i) => i.file === path.join('cohort-sync', 'pages.ts') && i.spec === '../store/sync-pages-repo.js' && !i.typeOnly)).toBe(true);
    expect(allImports.filter((i) => i.file.startsWith(path.join('store', 'migrations'))).length).toBeGreaterThan(6);
  });
});
