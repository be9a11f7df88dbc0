import type { ImportKind, ImportStats } from './importer.js';
import { describePosition } from './records.js';

const count = (n: number) => Math.round(n).toLocaleString('en-US');

function size(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

function clock(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export interface Reading {
  stats: ImportStats;
  bytesRead: number;
  totalBytes: number | undefined;
  seconds: number;
}

/** One progress line: records, records/s, bytes read of the total and an ETA where the size is known. */
export function progressLine(kind: ImportKind, r: Reading): string {
  const rate = r.seconds > 0 ? r.stats.records / r.seconds : 0;
  const parts = [`${count(r.stats.records)} ${kind}`, `${count(rate)}/s`];
  if (r.totalBytes) {
    const done = Math.min(1, r.bytesRead / r.totalBytes);
    parts.push(`${size(r.bytesRead)} of ${size(r.totalBytes)} (${Math.floor(done * 100)}%)`);
    if (done > 0 && r.seconds > 1) parts.push(`ETA ${clock((r.seconds / done) * (1 - done))}`);
  } else {
    parts.push(`${size(r.bytesRead)} read`);
  }
  if (r.stats.rejected) parts.push(`${count(r.stats.rejected)} rejected`);
  return parts.join(' · ');
}

/** The summary a person reads at the end. */
export function summaryText(kind: ImportKind, r: Reading): string {
  const { stats } = r;
  const rate = r.seconds > 0 ? stats.records / r.seconds : 0;
  const what = kind === 'events' ? `${count(stats.imported)} events imported, ${count(stats.duplicates)} duplicates (already stored)` : `${count(stats.imported)} profiles updated`;
  const lines = [`${what}, ${count(stats.rejected)} rejected; ${count(stats.records)} records in ${r.seconds.toFixed(1)} s (${count(rate)}/s)`];
  if (stats.stoppedAt) lines.push(`stopped (--strict) at ${describePosition(stats.stoppedAt.at)}: ${stats.stoppedAt.reason}`);
  else for (const e of stats.errors) lines.push(`  ${describePosition(e.at)}: ${e.reason}`);
  if (!stats.stoppedAt && stats.rejected > stats.errors.length) lines.push(`  … and ${count(stats.rejected - stats.errors.length)} more`);
  return lines.join('\n');
}

/** The summary as --json prints it. */
export function summaryJson(kind: ImportKind, r: Reading) {
  const { stats } = r;
  return {
    kind,
    records: stats.records,
    imported: stats.imported,
    duplicates: stats.duplicates,
    rejected: stats.rejected,
    bytes: r.bytesRead,
    seconds: Math.round(r.seconds * 1000) / 1000,
    records_per_second: r.seconds > 0 ? Math.round(stats.records / r.seconds) : 0,
    errors: stats.errors.map((e) => ({ ...e.at, reason: e.reason })),
    ...(stats.stoppedAt ? { stopped_at: { ...stats.stoppedAt.at, reason: stats.stoppedAt.reason } } : {}),
  };
}
