import nodemailer, { type Transporter } from 'nodemailer';
import type { MailConfig } from '../config.js';
import type { LaneLimits, StandaloneChannel } from '../delivery/channels.js';
import type { AttemptResult, Verdict } from '../delivery/classify.js';
import type { NewDelivery } from '../delivery/outbox.js';
import { readJson } from '../store/schema.js';

/**
 * E-mail to people, over the operator's SMTP server (COHORTCAST_SMTP_URL) with nodemailer. An
 * e-mail is a delivery like any other (leased, retried on the 'email' policy, logged attempt by
 * attempt); its headers hold the recipients and subject, its body the text. A server that takes
 * some recipients and refuses others is tried again for those it refused only.
 */

/** The e-mail wire format: what a surface enqueues to tell people something. */
export function emailDelivery(m: { projectId: number; to: string[]; subject: string; text: string; html?: boolean; ownerKind: string; ownerId: string | number }): NewDelivery {
  return {
    projectId: m.projectId,
    channel: 'email',
    connectionId: null,
    ownerKind: m.ownerKind,
    ownerId: m.ownerId,
    policy: 'email',
    contentType: 'text/plain; charset=utf-8',
    // html: an HTML part beside the text, the text set in it as written.
    headers: { to: m.to.join(', '), subject: m.subject, ...(m.html ? { html: 'pre' } : {}) },
    body: m.text,
  };
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** SMTP's answer as an attempt's result: the reply code as its status, the reply text as its body. */
interface SmtpError extends Error {
  responseCode?: number;
  response?: string;
  code?: string;
}

export function emailChannel(config: MailConfig): StandaloneChannel {
  const transport: Transporter | undefined = config.smtpUrl ? nodemailer.createTransport(config.smtpUrl) : undefined;
  const limits: LaneLimits = { maxConcurrency: config.maxConcurrency, rateBudget: () => Infinity, spend: () => {} };
  return {
    name: 'email',
    bound: 'standalone',
    limits,
    unavailable: () => (transport ? undefined : 'e-mails are waiting to be sent: set COHORTCAST_SMTP_URL'),
    async send(delivery, opts) {
      const startedAt = Date.now();
      const headers = readJson<Record<string, string>>(delivery.headers);
      const took = () => Date.now() - startedAt;
      if (!transport) return { body: '', truncated: false, error: { kind: 'refused', message: 'no SMTP server is set (COHORTCAST_SMTP_URL)' }, durationMs: 0 };
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<AttemptResult>((resolve) => {
        timer = setTimeout(() => resolve({ body: '', truncated: false, error: { kind: 'timeout', message: `no complete answer within ${opts.maxTimeoutMs} ms` }, startedAt, durationMs: took() }), opts.maxTimeoutMs);
      });
      const sending = transport
        .sendMail({
          from: config.from,
          to: headers.to,
          subject: headers.subject,
          text: delivery.body,
          ...(headers.html === 'pre' ? { html: `<!doctype html><html><body><pre style="font: 14px/1.4 ui-monospace, monospace; white-space: pre-wrap">${escapeHtml(delivery.body)}</pre></body></html>` } : {}),
          // The same on every attempt, so a mail reader can tell a resend from a new message.
          messageId: `<${delivery.webhook_id}@cohortcast>`,
        })
        .then((info): AttemptResult => {
          const refused = ((info.rejected ?? []) as (string | { address: string })[]).map((r) => (typeof r === 'string' ? r : r.address));
          return {
            status: 250,
            headers: { 'message-id': String(info.messageId ?? '') },
            body: String(info.response ?? ''),
            truncated: false,
            startedAt,
            durationMs: took(),
            ...(refused.length > 0 ? { refused, next: { headers: { ...headers, to: refused.join(', ') } } } : {}),
          };
        })
        .catch((err: SmtpError): AttemptResult => {
          if (typeof err.responseCode === 'number') return { status: err.responseCode, body: err.response ?? err.message, truncated: false, startedAt, durationMs: took() };
          return { body: '', truncated: false, error: { kind: 'network', message: [err.code, err.message].filter(Boolean).join(': ') }, startedAt, durationMs: took() };
        });
      try {
        return await Promise.race([sending, deadline]);
      } finally {
        clearTimeout(timer);
      }
    },
    judge(policy, result): Verdict {
      if (result.status === undefined) {
        const error = result.error ?? { kind: 'network', message: 'no answer' };
        return policy.retry ? { kind: 'retry', reason: `${error.kind}: ${error.message}` } : { kind: 'fail', reason: `${error.kind}: ${error.message}`, permanent: false, disableDestination: false };
      }
      const reason =
        result.refused && result.refused.length > 0 ? `refused by the SMTP server for ${result.refused.join(', ')}` : result.status >= 200 && result.status < 300 ? undefined : `SMTP ${result.status}: ${result.body.slice(0, 200)}`;
      if (reason === undefined) return { kind: 'success' };
      const permanent = !result.refused && policy.permanent.includes(result.status);
      return policy.retry && !permanent ? { kind: 'retry', reason } : { kind: 'fail', reason, permanent, disableDestination: false };
    },
    async close() {
      transport?.close();
    },
  };
}
