/** Mixpanel's Notification Webhook body for a custom alert (`custom_alert_triggered`). */

export interface CustomAlert {
  event_type: 'custom_alert_triggered';
  alert: { id: number; name: string; creator: string | null; creator_email: string | null; project_id: number; project_name: string; fired_at: string; workspace_id: number; workspace_name: string };
  condition: { type: string; operator: string; threshold: number | null; current_value: string; formatted_value: string; sentence: string };
  report: { name: string; type: string; url: string };
  links: { report_url: string; edit_alert_url: string; root_cause_analysis_url: string };
}

/** A body that is not a custom alert; `path` names the offending field. */
export class AlertFormatError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses and checks an alert body (text or already parsed), as schema/custom-alert.schema.json
 * describes it; throws AlertFormatError naming the first problem. `isTest` tells a test send.
 */
export function parseAlert(body: string | unknown): CustomAlert & { isTest: boolean } {
  let v: unknown = body;
  if (typeof body === 'string') {
    try {
      v = JSON.parse(body);
    } catch (err) {
      throw new AlertFormatError('body', `not JSON: ${(err as Error).message}`);
    }
  }
  if (!isObject(v)) throw new AlertFormatError('body', 'expected an object');
  if (v.event_type !== 'custom_alert_triggered') throw new AlertFormatError('event_type', 'expected "custom_alert_triggered"');
  const obj = (key: string, fields: Record<string, (x: unknown) => boolean>) => {
    const o = v[key as keyof typeof v];
    if (!isObject(o)) throw new AlertFormatError(key, 'expected an object');
    for (const [f, ok] of Object.entries(fields)) if (!ok(o[f])) throw new AlertFormatError(`${key}.${f}`, 'missing or of the wrong type');
  };
  const int = (x: unknown) => Number.isInteger(x);
  const str = (x: unknown) => typeof x === 'string';
  const strOrNull = (x: unknown) => x === null || typeof x === 'string';
  obj('alert', { id: int, name: str, creator: strOrNull, creator_email: strOrNull, project_id: int, project_name: str, fired_at: (x) => str(x) && !Number.isNaN(Date.parse(x as string)), workspace_id: int, workspace_name: str });
  obj('condition', { type: str, operator: str, threshold: (x) => x === null || (typeof x === 'number' && Number.isFinite(x)), current_value: (x) => str(x) && /^-?[0-9]/.test(x as string), formatted_value: str, sentence: str });
  obj('report', { name: str, type: str, url: str });
  obj('links', { report_url: str, edit_alert_url: str, root_cause_analysis_url: str });
  const alert = v as unknown as CustomAlert;
  return { ...alert, isTest: alert.alert.name.startsWith('[TEST] ') };
}
