import { iso } from '../iso-time.js';
import { describeCondition, formatValue, type Condition } from './condition.js';

/**
 * Mixpanel's Notification Webhook body for a custom alert (seed 000): `custom_alert_triggered`,
 * the alert, the condition (its current and formatted values as strings), the report and links to
 * the dashboard's pages under the public base URL. packages/receiver keeps its JSON Schema.
 */
export interface AlertPayload {
  event_type: 'custom_alert_triggered';
  alert: { id: number; name: string; creator: string | null; creator_email: string | null; project_id: number; project_name: string; fired_at: string; workspace_id: number; workspace_name: string };
  condition: { type: string; operator: string; threshold: number | null; current_value: string; formatted_value: string; sentence: string };
  report: { name: string; type: string; url: string };
  links: { report_url: string; edit_alert_url: string; root_cause_analysis_url: string };
}

export interface Firing {
  alert: { id: number; name: string; creator: string | null; creator_email: string | null; condition: Condition };
  project: { id: number; name: string };
  report: { id: number; name: string; type: string };
  /** The segment that crossed ('$overall' without a breakdown). */
  segment: string;
  value: number;
  bucket: { from: number; to: number };
  firedAt: number;
  test?: boolean;
}

export function alertPayload(f: Firing, publicUrl: string): AlertPayload {
  const base = publicUrl.replace(/\/+$/, '');
  const c = describeCondition(f.alert.condition);
  const name = `${f.test ? '[TEST] ' : ''}${f.alert.name}`;
  const where = f.segment === '$overall' ? '' : ` for ${f.segment}`;
  const reportUrl = `${base}/reports/${f.report.id}`;
  return {
    event_type: 'custom_alert_triggered',
    alert: { id: f.alert.id, name, creator: f.alert.creator, creator_email: f.alert.creator_email, project_id: f.project.id, project_name: f.project.name, fired_at: iso(f.firedAt)!, workspace_id: f.project.id, workspace_name: f.project.name },
    condition: {
      type: c.type,
      operator: c.operator,
      threshold: c.threshold,
      current_value: String(f.value),
      formatted_value: formatValue(f.value),
      sentence: `${f.report.name}${where} was ${formatValue(f.value)} from ${iso(f.bucket.from)} to ${iso(f.bucket.to)}: ${c.words}.`,
    },
    report: { name: f.report.name, type: f.report.type, url: reportUrl },
    links: {
      report_url: reportUrl,
      edit_alert_url: `${base}/alerts/${f.alert.id}`,
      root_cause_analysis_url: `${reportUrl}?from=${encodeURIComponent(iso(f.bucket.from)!)}&to=${encodeURIComponent(iso(f.bucket.to)!)}${f.segment === '$overall' ? '' : `&segment=${encodeURIComponent(f.segment)}`}`,
    },
  };
}

/** The Slack text and the e-mail of a firing. */
export function alertText(p: AlertPayload): { subject: string; text: string } {
  return { subject: `Alert: ${p.alert.name}`, text: `${p.alert.name}\n${p.condition.sentence}\n\nReport: ${p.links.report_url}\nAlert: ${p.links.edit_alert_url}` };
}
