/** Page fields (seed 002) and the profile properties they come from; exported properties follow them. */
const MEMBER_FIELDS: readonly (readonly [field: string, property: string])[] = [
  ['email', '$email'],
  ['first_name', '$first_name'],
  ['last_name', '$last_name'],
  ['phone_number', '$phone'],
];

/**
 * A profile as a cohort-sync page member, without its closing brace: mixpanel_distinct_id and the
 * identity fields as text; a field with no value (missing, null or empty text) is left out. The
 * profile writer keeps it on every profile (profiles.sync_member), so building a page of a
 * million-member export is concatenation, not a JSON parse per member; a page appends the
 * exported properties and the brace.
 */
export function syncMemberHead(distinctId: string, properties: Record<string, unknown>): string {
  let head = `{"mixpanel_distinct_id":${JSON.stringify(distinctId)}`;
  for (const [field, key] of MEMBER_FIELDS) {
    const v = properties[key];
    if (v === undefined || v === null || v === '') continue;
    head += `,"${field}":${JSON.stringify(typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v))}`;
  }
  return head;
}
