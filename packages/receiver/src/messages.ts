/** Webhook messages ("campaigns"): `POST application/x-www-form-urlencoded` with one `users` parameter. */

export interface MessageUser {
  $distinct_id: string;
  $properties: Record<string, unknown>;
}

export class MessageFormatError extends Error {}

/** Parses a webhook message body: at most 50 users, each a distinct id and its properties. */
export function parseMessage(body: string): MessageUser[] {
  const raw = new URLSearchParams(body).get('users');
  if (raw === null) throw new MessageFormatError('the form has no "users" parameter');
  let users: unknown;
  try {
    users = JSON.parse(raw);
  } catch (err) {
    throw new MessageFormatError(`"users" is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(users) || users.length > 50) throw new MessageFormatError('"users" must be a list of at most 50 users');
  return users.map((u, i) => {
    if (typeof u !== 'object' || u === null || typeof (u as MessageUser).$distinct_id !== 'string') {
      throw new MessageFormatError(`users[${i}]: expected {"$distinct_id": string, "$properties": {...}}`);
    }
    const props = (u as MessageUser).$properties ?? {};
    if (typeof props !== 'object' || props === null || Array.isArray(props)) throw new MessageFormatError(`users[${i}].$properties: expected an object`);
    return { $distinct_id: (u as MessageUser).$distinct_id, $properties: props };
  });
}
