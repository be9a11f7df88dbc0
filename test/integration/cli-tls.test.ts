import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import selfsigned from 'selfsigned';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCliServer, repoRoot, runCli, type CliServer } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

let db: TestDatabase;
let certDir: string;
const servers: CliServer[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cohortcast-tls-'));
  const pems = await selfsigned.generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  });
  fs.writeFileSync(path.join(certDir, 'cert.pem'), pems.cert);
  fs.writeFileSync(path.join(certDir, 'key.pem'), pems.private);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await db?.cleanup();
  if (certDir) fs.rmSync(certDir, { recursive: true, force: true });
});

/** Runs a snippet of CommonJS in a fresh Node process that trusts our certificate, as a user's app would. */
function runClient(code: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], {
      cwd: repoRoot,
      env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(certDir, 'cert.pem') },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`client exited ${code}: ${err}`))));
  });
}

describe('the command line', () => {
  it('creates a project and prints {"id","name","token","secret"} with --json', async () => {
    const res = await runCli(['project', 'create', '--name', 'Shop', '--json', ...db.args], db.env);
    expect(res.code).toBe(0);
    const created = JSON.parse(res.stdout) as Record<string, unknown>;
    expect(Object.keys(created)).toEqual(['id', 'name', 'token', 'secret']);
    expect(created).toMatchObject({ name: 'Shop', token: expect.stringMatching(/^[0-9a-f]{32}$/), secret: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const list = await runCli(['project', 'list', '--json', ...db.args], db.env);
    expect(JSON.parse(list.stdout)).toContainEqual({ id: created.id, name: 'Shop', token: created.token });
  });

  it('explains bad flags instead of starting', async () => {
    const res = await runCli(['serve', '--port', 'eighty']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/port is a whole number/);
    const half = await runCli(['serve', '--tls-cert', 'x.pem', ...db.args], db.env);
    expect(half.code).toBe(1);
    expect(half.stderr).toMatch(/both --tls-cert and --tls-key/);
    const noName = await runCli(['project', 'create']);
    expect(noName.stderr).toMatch(/--name/);
  });

  it('serves HTTPS with --tls-cert/--tls-key, so the official client sends /import with its secret', async () => {
    const created = JSON.parse((await runCli(['project', 'create', '--name', 'Tls', '--json', ...db.args], db.env)).stdout) as { token: string; secret: string };
    const server = await startCliServer(
      ['--tls-cert', path.join(certDir, 'cert.pem'), '--tls-key', path.join(certDir, 'key.pem'), ...db.args],
      db.env,
    );
    servers.push(server);
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const { port } = new URL(server.url);
    const out = await runClient(`
      const Mixpanel = require('mixpanel');
      const mp = Mixpanel.init(${JSON.stringify(created.token)}, { host: '127.0.0.1', port: ${port}, protocol: 'https', secret: ${JSON.stringify(created.secret)} });
      const events = [1, 2, 3].map((i) => ({ event: 'Old Order', properties: { distinct_id: 'tls-user', time: 1600000000 + i, $insert_id: 'tls-' + i } }));
      mp.import('Single Old', 1600000100, { distinct_id: 'tls-user', $insert_id: 'tls-single' }, (err) => {
        if (err) throw err;
        mp.import_batch(events, (errs) => { if (errs && errs.length) throw errs[0]; console.log('imported'); });
      });
    `);
    expect(out).toBe('imported');
    const res = await runClient(`
      fetch(${JSON.stringify(server.url)} + '/api/v1/events?distinct_id=tls-user', { headers: { authorization: 'Bearer ${created.secret}' } })
        .then((r) => r.json()).then((b) => console.log(JSON.stringify(b.results.map((e) => e.event))));
    `);
    expect(JSON.parse(res)).toEqual(['Old Order', 'Old Order', 'Old Order', 'Single Old']);
  });
});
