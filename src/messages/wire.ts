/**
 * Mixpanel's webhook message on the wire (seeds 001 and 003): a POST like an HTML form's,
 * `Content-Type: application/x-www-form-urlencoded`, one parameter `users` holding a JSON list of
 * at most 50 `{"$distinct_id", "$properties"}`. Only a 200 marks the batch's users sent (the
 * 'mixpanel-message' policy: exactly 200, one try; the message sends them again).
 */

export const MESSAGE_POLICY = 'mixpanel-message';
export const MESSAGE_CONTENT_TYPE = 'application/x-www-form-urlencoded';
/** Users in one request (Mixpanel: 50). */
export const BATCH_SIZE = 50;
/** Marks a test send, which the receiver should not act on as on a real one. */
export const TEST_HEADER = 'x-cohortcast-test';

/**
 * One user of the list, as JSON text: the profile's properties as stored (all of them), or only
 * those the message names. `properties` is the profile's JSON text (null: no profile).
 */
export function userJson(distinctId: string, properties: string | null, only: readonly string[] | null): string {
  let props = properties ?? '{}';
  if (only !== null && properties !== null) {
    const all = JSON.parse(properties) as Record<string, unknown>;
    const picked: Record<string, unknown> = {};
    for (const k of only) if (Object.hasOwn(all, k)) picked[k] = all[k];
    props = JSON.stringify(picked);
  }
  return `{"$distinct_id":${JSON.stringify(distinctId)},"$properties":${props}}`;
}

/** The form body of one request: `users=` and the JSON list, form-encoded. */
export const formBody = (users: readonly string[]): string => `users=${encodeURIComponent(`[${users.join(',')}]`)}`;
