import { describe, expect, it } from 'vitest';
import { slackPolicy } from '../../src/channels/slack.js';
import { SMS_MAX_CHARS, smsBody, smsPolicy } from '../../src/channels/sms.js';
import { classify, type AttemptResult } from '../../src/delivery/classify.js';
import { UNSENDABLE } from '../../src/delivery/dispatcher.js';
import { CompiledChannel, parseChannel, type Envelope } from '../../src/subscriptions/channel-specs.js';
import { slackBody } from '../../src/subscriptions/slack-message.js';
import { compileTemplate, renderTemplate } from '../../src/subscriptions/templates.js';

const NOW = Date.UTC(2026, 11, 1);
const answered = (status: number, body = '', headers: Record<string, string> = {}): AttemptResult => ({ status, headers, body, truncated: false, durationMs: 5 });
const envelope: Envelope = {
  event_id: 'evt_1',
  event_type: 'cohort.member_entered',
  created_at: '2026-12-01T00:00:00.000Z',
  project_id: 1,
  data: { distinct_id: 'ada', cohort: { id: 7, name: 'Pros' }, amount: 12.345, tags: ['a', 'b'] },
};
const render = (source: string) => renderTemplate(compileTemplate(source, 't'), envelope as unknown as Record<string, unknown>);

describe('templates', () => {
  it('have the filters a Jinja2 author reaches for', () => {
    expect(render('{{ data | tojson }}')).toBe(JSON.stringify(envelope.data));
    expect(render('{{ data.missing | default: "none" }}')).toBe('none');
    expect(render('{{ event_type | upper }} {{ "ADA" | lower }}')).toBe('COHORT.MEMBER_ENTERED ada');
    expect(render('{{ data.amount | round: 2 }}')).toBe('12.35');
  });

  it('name the line of a broken template', () => {
    expect(() => compileTemplate('ok\n{% if x %}', 'payload_template')).toThrow(/^payload_template: line 2: /);
    expect(() => compileTemplate('{{ x | nosuchfilter }}', 'payload_template')).toThrow(/^payload_template: line 1: .*nosuchfilter/);
  });

  it('stop a template that would loop or grow without end, failing its delivery with the reason', () => {
    expect(() => render('{% for a in (1..999) %}{% for b in (1..999) %}{% for c in (1..999) %}{% endfor %}{% endfor %}{% endfor %}')).toThrow(/render limit exceeded|memory alloc limit exceeded/);
    expect(() => render('{% assign s = "x" %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}{{ s | size }}')).toThrow(/memory alloc limit exceeded/);
    const [d] = new CompiledChannel({ type: 'slack', connection_id: 1, text_template: '{% for a in (1..99999999) %}x{% endfor %}' }).deliveries(envelope, { kind: 's', id: '1' });
    expect(d!.headers?.[UNSENDABLE]).toMatch(/^the text_template failed to render: .*limit exceeded/);
  });

  it('cannot reach anything but the envelope', () => {
    // No JavaScript: a constructor or a prototype is not a property of the context.
    expect(render('{{ data.constructor }}{{ data.__proto__ }}{{ data.tags.constructor.name }}')).toBe('');
  });
});

describe('channels as written', () => {
  it('checks phone numbers as E.164 and e-mail addresses', () => {
    expect(() => parseChannel({ type: 'sms', connection_id: 1, from: '+14155550100', to: ['0415 555 0199'] }, 'channels[0]')).toThrow(/^channels\[0\]\.to: "0415 555 0199" is not an E\.164 phone number/);
    expect(() => parseChannel({ type: 'sms', connection_id: 1, from: '555', to: ['+14155550199'] }, 'channels[0]')).toThrow(/^channels\[0\]\.from: /);
    expect(() => parseChannel({ type: 'email', to: ['not an address'] }, 'channels[1]')).toThrow(/^channels\[1\]\.to: "not an address" is not an e-mail address/);
    expect(() => parseChannel({ type: 'webhook', connection_id: 1, text_template: 'x' }, 'channels[2]')).toThrow(/^channels\[2\]\.text_template: unknown field for a webhook channel/);
    expect(parseChannel({ type: 'sms', connection_id: 1, from: '+14155550100', to: ['+64211234567'] }, 'c')).toMatchObject({ type: 'sms' });
  });

  it('make one SMS delivery per number, the body cut at 1,600 characters (not splitting a character)', () => {
    const channel = new CompiledChannel({ type: 'sms', connection_id: 3, from: '+14155550100', to: ['+14155550199', '+14155550198'], body_template: '{{ data.distinct_id }}' });
    const made = channel.deliveries(envelope, { kind: 'subscription', id: '1/0/x/evt_1' });
    expect(made.map((d) => new URLSearchParams(d.body).get('To'))).toEqual(['+14155550199', '+14155550198']);
    expect(made.every((d) => d.policy === 'sms' && d.channel === 'sms' && d.connectionId === 3)).toBe(true);
    const long = new URLSearchParams(smsBody('+1', '+2', '😀'.repeat(2000))).get('Body')!;
    expect([...long]).toHaveLength(SMS_MAX_CHARS);
    expect(long.endsWith('😀…')).toBe(true);
    expect(new URLSearchParams(smsBody('+1', '+2', 'short')).get('Body')).toBe('short');
  });

  it('mark a webhook delivery whose template does not render JSON as unsendable, with the reason', () => {
    const [d] = new CompiledChannel({ type: 'webhook', connection_id: 1, payload_template: '{"who": {{ data.distinct_id }}}' }).deliveries(envelope, { kind: 's', id: '1' });
    expect(d!.headers?.[UNSENDABLE]).toMatch(/^the payload_template did not render JSON: /);
    const [ok] = new CompiledChannel({ type: 'webhook', connection_id: 1, payload_template: '{"who": {{ data.distinct_id | tojson }}}' }).deliveries(envelope, { kind: 's', id: '1' });
    expect(ok!.headers?.[UNSENDABLE]).toBeUndefined();
    expect(JSON.parse(ok!.body)).toEqual({ who: 'ada' });
  });

  it('write a readable Slack message, the template replacing the text', () => {
    const plain = JSON.parse(slackBody(envelope, undefined)) as { text: string; blocks: { type: string }[] };
    expect(plain.text).toBe('*cohort.member_entered* — user ada, cohort "Pros"');
    expect(plain.blocks.map((b) => b.type)).toEqual(['section', 'section', 'context']);
    const templated = JSON.parse(slackBody(envelope, 'ada is in')) as { text: string; blocks: { type: string }[] };
    expect(templated.text).toBe('ada is in');
    expect(templated.blocks.map((b) => b.type)).toEqual(['section', 'context']);
  });
});

describe("Slack's and Twilio's replies", () => {
  const slack = slackPolicy([0, 1000, 5000], 0);
  const sms = smsPolicy([0, 1000, 5000], 0);

  it('end a Slack delivery on invalid_payload, 403, no_service and channel_is_archived, without disabling the connection', () => {
    for (const [status, body] of [[400, 'invalid_payload'], [403, 'invalid_token'], [404, 'no_service'], [410, 'channel_is_archived']] as const) {
      expect(classify(slack, answered(status, body), NOW, 5000), `${status}`).toMatchObject({ kind: 'fail', permanent: true, disableDestination: false });
    }
    expect(classify(slack, answered(200, 'ok'), NOW, 5000)).toEqual({ kind: 'success' });
  });

  it('wait for Slack’s Retry-After on 429', () => {
    expect(classify(slack, answered(429, 'rate_limited', { 'retry-after': '30' }), NOW, 5000)).toMatchObject({ kind: 'retry', retryAfterMs: 30_000, throttleMs: 30_000 });
  });

  it('take Twilio’s 201 and end on a refused number or bad credentials', () => {
    expect(classify(sms, answered(201, '{"sid":"SM1"}'), NOW, 5000)).toEqual({ kind: 'success' });
    for (const status of [400, 401, 403, 404]) expect(classify(sms, answered(status), NOW, 5000), `${status}`).toMatchObject({ kind: 'fail', permanent: true });
    expect(classify(sms, answered(503), NOW, 5000)).toMatchObject({ kind: 'retry' });
  });
});
