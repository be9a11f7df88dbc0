import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A sync paused by the receiver (401) e-mails its owners, through a real SMTP server on 127.0.0.1;
 * an SMTP server that refuses at first is tried again on the mail retry schedule.
 */
interface Mail {
  from: string;
  to: string[];
  data: string;
}

let svc: TestService;
let smtp: SMTPServer;
let receiver: http.Server;
const mails: Mail[] = [];
let refuseMail = 1; // the first RCPT is refused: the e-mail must be tried again

beforeAll(async () => {
  smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      if (refuseMail > 0) {
        refuseMail--;
        return callback(Object.assign(new Error('mailbox busy, try later'), { responseCode: 451 }));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        // Read as a mail reader does: folded header lines unfolded, RFC 2047 words decoded.
        const data = Buffer.concat(chunks)
          .toString('utf8')
          .replace(/\r?\n[ \t]+/g, ' ')
          .replace(/\?= =\?UTF-8\?Q\?/g, '')
          .replace(/=\?UTF-8\?Q\?(.*?)\?=/g, (_, q: string) => q.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16))));
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const smtpPort = (smtp.server.address() as AddressInfo).port;
  receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"bad credentials"}'));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  svc = await startTestService((config) => {
    config.delivery.allowHttp = true;
    config.delivery.allowedNetworks = ['127.0.0.0/8'];
    config.scheduler.pollIntervalMs = 50;
    config.mail.smtpUrl = `smtp://127.0.0.1:${smtpPort}`;
    config.mail.from = 'cohortcast <alerts@example.com>';
    config.delivery.pollIntervalMs = 50;
    config.mail.retryScheduleMs = [100, 100];
  });
});

afterAll(async () => {
  await svc?.close();
  receiver?.closeAllConnections();
  await new Promise((resolve) => receiver?.close(resolve));
  await new Promise((resolve) => smtp?.close(() => resolve(undefined)));
});

const api = (path: string, method = 'GET', body?: unknown) => svc.json(path, method, body);

describe('a paused cohort sync', () => {
  it('e-mails every owner, once, with the reason and how to resume, retrying a refusing SMTP server', async () => {
    const cohort = await api('/api/v1/cohorts', 'POST', { name: 'Everyone', definition: { property: 'plan', op: 'not_set' } });
    const { port } = receiver.address() as AddressInfo;
    const connection = await api('/api/v1/connections', 'POST', { name: 'locked', url: `http://127.0.0.1:${port}/hook` });
    const sync = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: cohort.body.id, connection_id: connection.body.id, owner_emails: ['ops@example.com', 'pm@example.com'] });
    expect(sync.status).toBe(201);
    expect(sync.body.owner_emails).toEqual(['ops@example.com', 'pm@example.com']);

    // The server refused ops@ the first time: pm@ has it at once, ops@ on the retry.
    await waitFor('both e-mails', () => (mails.length >= 2 ? true : undefined), 15_000);
    expect(mails.map((m) => m.to)).toEqual([['pm@example.com'], ['ops@example.com']]);
    for (const mail of mails) {
      expect(mail.from).toBe('alerts@example.com');
      expect(mail.data).toContain('Subject: cohortcast: the sync of cohort "Everyone" is paused');
      expect(mail.data).toContain('HTTP 401: {"error":"bad credentials"}');
      expect(mail.data).toContain(`POST /api/v1/cohort-syncs/${sync.body.id}/resume`);
    }
    expect((await api(`/api/v1/cohort-syncs/${sync.body.id}`)).body).toMatchObject({ state: 'paused', state_reason: expect.stringContaining('HTTP 401') });

    // The e-mail is a delivery of the e-mail channel, in the API like any other: once it has
    // succeeded nothing more is sent for it (and nothing else is queued while the sync stays
    // paused), so each owner got it once.
    type Mailed = { id: number; channel: string; connection_id: number | null; state: string; attempts: number };
    const [delivery] = await waitFor('the e-mail delivery to succeed', async () => {
      const list = (await api('/api/v1/deliveries?channel=email')).body.results as Mailed[];
      return list.length > 0 && list.every((d) => d.state !== 'pending') ? list : undefined;
    });
    expect(delivery).toMatchObject({ channel: 'email', connection_id: null, state: 'succeeded', attempts: 2 });
    const shown = (await api(`/api/v1/deliveries/${delivery!.id}`)).body;
    expect(shown.attempts_log.map((a: { outcome: string; status: number; reason: string | null }) => [a.outcome, a.status, a.reason])).toEqual([
      ['retry', 250, 'refused by the SMTP server for ops@example.com'],
      ['success', 250, null],
    ]);
    expect(shown.headers).toEqual({ to: 'ops@example.com', subject: 'cohortcast: the sync of cohort "Everyone" is paused' });
    expect((await api('/api/v1/deliveries?channel=email&state=pending')).body.results).toEqual([]);
    expect(mails).toHaveLength(2);
  });

  it('refuses an owner address that is not one', async () => {
    const res = await api('/api/v1/cohort-syncs', 'POST', { cohort_id: 1, connection_id: 1, owner_emails: ['ops at example'] });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toBe('owner_emails: "ops at example" is not an e-mail address');
  });
});
