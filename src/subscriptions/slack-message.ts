import type { Envelope } from './channel-specs.js';

/**
 * A Slack message for an event: the text is the subscription's text_template rendered, or a
 * readable summary; Block Kit blocks show the same, the event's data beneath a default text.
 */
export function slackBody(envelope: Envelope, text: string | undefined): string {
  const summary = text ?? `*${envelope.event_type}*${envelope.test ? ' (test)' : ''} — ${describe(envelope)}`;
  const data = JSON.stringify(envelope.data, null, 2);
  return JSON.stringify({
    text: summary,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text: summary.slice(0, 3000) } },
      ...(text === undefined ? [{ type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${data.length > 2800 ? `${data.slice(0, 2800)}…` : data}\`\`\`` } }] : []),
      { type: 'context', elements: [{ type: 'mrkdwn', text: `event ${envelope.event_id} · ${envelope.created_at}` }] },
    ],
  });
}

function describe(e: Envelope): string {
  const d = e.data as { distinct_id?: unknown; cohort?: { name?: unknown }; event?: unknown; reason?: unknown };
  const parts = [d.event, d.distinct_id && `user ${String(d.distinct_id)}`, d.cohort?.name && `cohort "${String(d.cohort.name)}"`, d.reason].filter(Boolean);
  return parts.length ? parts.join(', ') : `project ${e.project_id}`;
}

