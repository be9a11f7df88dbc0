import type { Template } from 'liquidjs';
import { emailDelivery } from '../channels/email.js';
import { slackBody } from './slack-message.js';
import { smsBody } from '../channels/sms.js';
import { UNSENDABLE } from '../delivery/dispatcher.js';
import type { NewDelivery } from '../delivery/outbox.js';
import { compileTemplate, renderTemplate } from './templates.js';

/** A subscription's channel as written (POST /api/v1/subscriptions). */
export type ChannelSpec =
  | { type: 'webhook'; connection_id: number; payload_template?: string }
  | { type: 'slack'; connection_id: number; text_template?: string }
  | { type: 'email'; to: string[]; subject_template?: string; body_template?: string }
  | { type: 'sms'; connection_id: number; from: string; to: string[]; body_template?: string };

export class ChannelSpecError extends Error {}

const E164 = /^\+[1-9]\d{6,14}$/;
// Deliberately loose: the SMTP server is the judge; this catches what is plainly not an address.
const EMAIL = /^[^\s@<>(),;:"]+@[^\s@<>(),;:"]+\.[^\s@<>(),;:"]+$/;
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks one channel as written; throws ChannelSpecError naming the field. Connections are checked by the caller. */
export function parseChannel(v: unknown, at: string): ChannelSpec {
  if (!isObject(v)) throw new ChannelSpecError(`${at}: expected a channel object with a "type"`);
  const allowed: Record<string, string[]> = {
    webhook: ['type', 'connection_id', 'payload_template'],
    slack: ['type', 'connection_id', 'text_template'],
    email: ['type', 'to', 'subject_template', 'body_template'],
    sms: ['type', 'connection_id', 'from', 'to', 'body_template'],
  };
  const fields = allowed[v.type as string];
  if (!fields) throw new ChannelSpecError(`${at}.type: expected one of webhook, slack, email, sms, got ${JSON.stringify(v.type)}`);
  const extra = Object.keys(v).find((k) => !fields.includes(k));
  if (extra) throw new ChannelSpecError(`${at}.${extra}: unknown field for a ${v.type} channel; allowed: ${fields.join(', ')}`);
  for (const k of fields.filter((f) => f.endsWith('_template'))) {
    if (v[k] === undefined) continue;
    if (typeof v[k] !== 'string' || (v[k] as string).length > 20_000) throw new ChannelSpecError(`${at}.${k}: expected a Liquid template (text, at most 20000 characters)`);
    compileTemplate(v[k] as string, `${at}.${k}`);
  }
  if (v.type !== 'email' && (!Number.isSafeInteger(v.connection_id) || (v.connection_id as number) < 1)) throw new ChannelSpecError(`${at}.connection_id: expected a connection id`);
  const list = (key: string, check: (s: string) => boolean, what: string) => {
    const l = v[key];
    if (!Array.isArray(l) || l.length === 0 || l.length > 50) throw new ChannelSpecError(`${at}.${key}: expected a list of 1 to 50 ${what}`);
    const bad = l.find((x) => typeof x !== 'string' || !check(x));
    if (bad !== undefined) throw new ChannelSpecError(`${at}.${key}: ${JSON.stringify(bad)} is not ${what === 'phone numbers' ? 'an E.164 phone number (+ and 7 to 15 digits, e.g. +14155550100)' : 'an e-mail address'}`);
  };
  if (v.type === 'email') list('to', (s) => EMAIL.test(s) && s.length <= 320, 'e-mail addresses');
  if (v.type === 'sms') {
    list('to', (s) => E164.test(s), 'phone numbers');
    if (typeof v.from !== 'string' || !E164.test(v.from)) throw new ChannelSpecError(`${at}.from: ${JSON.stringify(v.from)} is not an E.164 phone number (+ and 7 to 15 digits, e.g. +14155550100)`);
  }
  return v as unknown as ChannelSpec;
}

/** The event envelope, as every channel receives it (and templates see it). */
export interface Envelope {
  event_id: string;
  event_type: string;
  created_at: string;
  project_id: number;
  data: Record<string, unknown>;
  test?: true;
}

/** What a surface sends on a channel when no template says otherwise (an alert's webhook body is Mixpanel's payload, not the envelope). */
export interface ChannelDefaults {
  webhookBody?: string;
  subject?: string;
  text?: string;
}

/** A channel with its templates compiled once (a subscription is used for many events). */
export class CompiledChannel {
  readonly #templates = new Map<string, Template[]>();

  constructor(readonly spec: ChannelSpec) {
    for (const [k, v] of Object.entries(spec)) if (k.endsWith('_template') && typeof v === 'string') this.#templates.set(k, compileTemplate(v, k));
  }

  #render(key: string, envelope: Envelope): string | undefined {
    const t = this.#templates.get(key);
    return t && renderTemplate(t, envelope as unknown as Record<string, unknown>);
  }

  /**
   * The deliveries for one event. A template that fails to render, or a webhook payload that is
   * not JSON, still makes a delivery: one marked unsendable, which fails at its first attempt with
   * the reason in its attempt log (nothing is lost without a trace).
   */
  deliveries(envelope: Envelope, owner: { kind: string; id: string }, defaults: ChannelDefaults = {}): NewDelivery[] {
    const base = { projectId: envelope.project_id, ownerKind: owner.kind, ownerId: owner.id, eventId: envelope.event_id };
    const s = this.spec;
    let unsendable: string | undefined;
    const rendered = (key: string) => {
      try {
        return this.#render(key, envelope);
      } catch (err) {
        unsendable ??= `the ${key} failed to render: ${(err as Error).message}`;
        return '';
      }
    };
    const mark = (d: NewDelivery): NewDelivery => (unsendable ? { ...d, headers: { ...d.headers, [UNSENDABLE]: unsendable } } : d);
    switch (s.type) {
      case 'webhook': {
        let body = rendered('payload_template') ?? defaults.webhookBody ?? JSON.stringify(envelope);
        if (this.#templates.has('payload_template') && !unsendable) {
          try {
            JSON.parse(body);
          } catch (err) {
            unsendable = `the payload_template did not render JSON: ${(err as Error).message}`;
            body = body.slice(0, 4096);
          }
        }
        return [mark({ ...base, channel: 'webhook', connectionId: s.connection_id, policy: 'standard', contentType: 'application/json', body })];
      }
      case 'slack':
        return [mark({ ...base, channel: 'slack', connectionId: s.connection_id, policy: 'slack', contentType: 'application/json', body: slackBody(envelope, rendered('text_template') ?? defaults.text) })];
      case 'email': {
        const subject = rendered('subject_template') ?? defaults.subject ?? `cohortcast: ${envelope.event_type}${envelope.test ? ' (test)' : ''}`;
        const text = rendered('body_template') ?? defaults.text ?? `${envelope.event_type} at ${envelope.created_at}\n\n${JSON.stringify(envelope.data, null, 2)}\n\nevent_id: ${envelope.event_id}`;
        return [mark({ ...emailDelivery({ projectId: envelope.project_id, to: s.to, subject, text, html: true, ownerKind: owner.kind, ownerId: owner.id }), eventId: envelope.event_id })];
      }
      case 'sms': {
        const text = rendered('body_template') ?? `${envelope.event_type}: ${JSON.stringify(envelope.data)}`;
        return s.to.map((to) => mark({ ...base, channel: 'sms', connectionId: s.connection_id, policy: 'sms', contentType: 'application/x-www-form-urlencoded', body: smsBody(s.from, to, text) }));
      }
    }
  }
}
