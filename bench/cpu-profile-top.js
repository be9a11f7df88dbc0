// Summarises V8 .cpuprofile files (from `node --cpu-prof`, e.g. BENCH_CPU_PROF=DIR npm run bench:ingest):
// self time by function and by source file/package, and inclusive time of the hottest functions.
// Usage: node bench/cpu-profile-top.js FILE.cpuprofile [TOP=30]
import fs from 'node:fs';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/cpu-profile-top.js FILE.cpuprofile [TOP]');
  process.exit(2);
}
const TOP = Number(topArg ?? 30);
const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map();
let total = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const dt = profile.timeDeltas[i] ?? 0;
  self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  total += dt;
}

const shortUrl = (url) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/^.*\/node_modules\//, 'node_modules/')
    .replace(/^.*\/dist\//, 'dist/');
const fnKey = (cf) => `${cf.functionName || '(anonymous)'}  ${shortUrl(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
const fileKey = (cf) => {
  const u = shortUrl(cf.url);
  if (!u) return cf.functionName; // (program), (garbage collector), (idle), native
  const m = u.match(/^node_modules\/((@[^/]+\/)?[^/]+)/);
  return m ? `node_modules/${m[1]}` : u;
};

const bySelfFn = new Map();
const bySelfFile = new Map();
const inclusive = new Map();
for (const [id, t] of self) {
  const cf = byId.get(id).callFrame;
  bySelfFn.set(fnKey(cf), (bySelfFn.get(fnKey(cf)) ?? 0) + t);
  bySelfFile.set(fileKey(cf), (bySelfFile.get(fileKey(cf)) ?? 0) + t);
  // Inclusive: every distinct function on the stack once.
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const k = fnKey(byId.get(cur).callFrame);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + t);
  }
}

const busy = total - (bySelfFn.get('(idle)  ') ?? 0);
const show = (title, map, n) => {
  console.log(`\n${title}`);
  for (const [k, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${(t / 1000).toFixed(0).padStart(8)} ms ${((100 * t) / total).toFixed(1).padStart(5)}% all ${((100 * t) / busy).toFixed(1).padStart(5)}% busy  ${k}`);
  }
};
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy`);
show('self time by file/package', bySelfFile, TOP);
show('self time by function', bySelfFn, TOP);
show('inclusive time by function', inclusive, TOP);
