import { describe, expect, it } from 'vitest';
import { progressLine, summaryText } from '../../src/import/progress.js';
import { shapeOf } from '../../src/import/records.js';

const stats = (records: number, rejected = 0) => ({ records, imported: records - rejected, duplicates: 0, rejected, errors: [] });

describe('the import progress line', () => {
  it('gives records, rate, bytes of the total and an ETA from the share read', () => {
    expect(progressLine('events', { stats: stats(1_200_000, 3), bytesRead: 256 * 1024 ** 2, totalBytes: 1024 ** 3, seconds: 30 })).toBe(
      '1,200,000 events · 40,000/s · 256.0 MB of 1.00 GB (25%) · ETA 1:30 · 3 rejected',
    );
    expect(progressLine('events', { stats: stats(10), bytesRead: 10, totalBytes: 1000, seconds: 7200 / 99 })).toMatch(/ · 0\/s · 0 KB of 1 KB \(1%\) · ETA 2:00:00$/);
  });

  it('without a known size (a pipe) says how much was read, and no ETA', () => {
    expect(progressLine('profiles', { stats: stats(5000), bytesRead: 3 * 1024 ** 2, totalBytes: undefined, seconds: 2 })).toBe('5,000 profiles · 2,500/s · 3.0 MB read');
  });

  it('summarises, naming the first bad records and how many more', () => {
    const text = summaryText('events', {
      stats: { records: 20, imported: 5, duplicates: 3, rejected: 12, errors: [{ at: { line: 4, record: 4 }, reason: 'not JSON' }] },
      bytesRead: 100,
      totalBytes: 100,
      seconds: 2,
    });
    expect(text).toBe('5 events imported, 3 duplicates (already stored), 12 rejected; 20 records in 2.0 s (10/s)\n  line 4: not JSON\n  … and 11 more');
  });
});

describe('the shape of an export', () => {
  it('tells NDJSON, a JSON array and pretty-printed JSON values apart', () => {
    expect(shapeOf('{"event":"a","properties":{}}\n{"event":"b"')).toBe('ndjson');
    expect(shapeOf('\uFEFF  [\n {"event": "a"}')).toBe('json-array');
    expect(shapeOf('{\n  "results": [')).toBe('json-values');
    expect(shapeOf('{"results": []}')).toBe('ndjson');
  });
});
