import nodemailer, { type Transporter } from 'nodemailer';
import type { Logger } from 'pino';
import type { MailConfig } from '../config.js';
import { PeriodicTask } from '../periodic.js';
import type { Store } from '../store/database.js';
import { claimNotifications, notificationFailed, notificationSent } from '../store/notifications-repo.js';
import { readJson } from '../store/schema.js';

/** A process that dies mid-send leaves its e-mails to another after this long. */
const LEASE_MS = 60_000;

/**
 * Sends the e-mails queued in `notifications` (written in the transaction of what they tell) over
 * SMTP with nodemailer, retrying each on COHORTCAST_MAIL_RETRY_SCHEDULE_MS. Without
 * COHORTCAST_SMTP_URL they wait, and the log says so.
 */
export class Mailer {
  readonly #transport: Transporter | undefined;
  readonly #task: PeriodicTask;
  #warnedAt = 0;

  constructor(private readonly deps: { store: Store; config: MailConfig; log: Logger }) {
    if (deps.config.smtpUrl) this.#transport = nodemailer.createTransport(deps.config.smtpUrl);
    this.#task = new PeriodicTask(deps.config.pollIntervalMs, () => this.#tick(), deps.log, 'sending e-mails');
  }

  start(): void {
    this.#task.start();
  }

  async stop(): Promise<void> {
    await this.#task.stop();
    this.#transport?.close();
  }

  async #tick(): Promise<void> {
    const { store, config, log } = this.deps;
    if (!this.#transport) {
      const waiting = await store.db.selectFrom('notifications').select((eb) => eb.fn.countAll<number>().as('n')).where('state', '=', 'pending').executeTakeFirst();
      if (Number(waiting?.n ?? 0) > 0 && Date.now() - this.#warnedAt > 60_000) {
        this.#warnedAt = Date.now();
        log.warn({ waiting: Number(waiting?.n) }, 'e-mails are waiting to be sent: set COHORTCAST_SMTP_URL');
      }
      return;
    }
    for (const n of await claimNotifications(store, Date.now(), LEASE_MS, 20)) {
      let failure: { message: string; recipients?: string[] } | undefined;
      try {
        const info = await this.#transport.sendMail({ from: config.from, to: readJson<string[]>(n.recipients), subject: n.subject, text: n.body });
        // A server may take some recipients and refuse others: only those are tried again.
        const refused = (info.rejected ?? []).map((r) => (typeof r === 'string' ? r : (r as { address: string }).address));
        if (refused.length > 0) failure = { message: `refused by the SMTP server for ${refused.join(', ')}`, recipients: refused };
      } catch (err) {
        failure = { message: (err as Error).message };
      }
      if (!failure) {
        await notificationSent(store, n.id, Date.now());
        continue;
      }
      const delay = config.retryScheduleMs[n.attempts];
      await notificationFailed(store, n.id, failure.message, delay === undefined ? undefined : Date.now() + delay, failure.recipients);
      if (delay === undefined) log.error({ notification: n.id, err: failure.message }, 'an e-mail could not be sent and was given up');
      else log.warn({ notification: n.id, err: failure.message, retryInMs: delay }, 'an e-mail could not be sent; trying again');
    }
  }
}
