import { TWILIO_MESSAGES_PATH } from '../channels/sms.js';
import { ActionableError } from '../errors.js';
import { findConnection } from '../store/connections-repo.js';
import type { Store } from '../store/database.js';
import { ChannelSpecError, parseChannel, type ChannelSpec } from './channel-specs.js';
import { TemplateError } from './templates.js';

/**
 * Checks the channels a subscription or an alert is saved with: each as written (templates
 * compiled), its connection in the project, an SMS connection pointing at Twilio's Messages API.
 * A refusal is a 400 naming the channel and the field; `code` is the caller's error code.
 */
export async function checkChannels(store: Store, projectId: number, raw: unknown[], code: string): Promise<ChannelSpec[]> {
  const invalid = (message: string) => new ActionableError(400, code, message);
  const channels: ChannelSpec[] = [];
  for (const [i, c] of raw.entries()) {
    let spec: ChannelSpec;
    try {
      spec = parseChannel(c, `channels[${i}]`);
    } catch (err) {
      if (err instanceof ChannelSpecError) throw invalid(err.message);
      if (err instanceof TemplateError) throw new ActionableError(400, 'invalid_template', err.message);
      throw err;
    }
    if (spec.type !== 'email') {
      const connection = await findConnection(store, projectId, spec.connection_id);
      if (!connection) throw invalid(`channels[${i}].connection_id: no connection ${spec.connection_id} in this project`);
      if (spec.type === 'sms' && !TWILIO_MESSAGES_PATH.test(new URL(connection.url).pathname)) {
        throw invalid(`channels[${i}].connection_id: an SMS channel's connection must point at Twilio's Messages API (…/2010-04-01/Accounts/{AccountSid}/Messages.json), not ${connection.url}`);
      }
    }
    channels.push(spec);
  }
  return channels;
}
