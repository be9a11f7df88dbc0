import crypto from 'node:crypto';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Store } from '../store/database.js';
import { rememberSetting } from '../store/settings-repo.js';
import { SecretBox, loadOrCreateKeyFile, parseSecretKey } from './secret-box.js';

const CHECK_NAME = 'secret_key_check';

/**
 * The box that seals destination secrets. The key comes from COHORTCAST_SECRET_KEY, else from a
 * key file in the data folder (made on first start). The database remembers a check value of the
 * first key it saw, so a process started with another key refuses to start instead of failing
 * every delivery later.
 */
export async function openSecretBox(config: Config, store: Store): Promise<SecretBox> {
  const key = config.delivery.secretKey
    ? parseSecretKey(config.delivery.secretKey)
    : loadOrCreateKeyFile(path.join(config.dataDir, 'secret.key'));
  const check = crypto.createHmac('sha256', key).update('cohortcast secret key check').digest('base64url');
  if ((await rememberSetting(store, CHECK_NAME, check)) !== check) {
    const source = config.delivery.secretKey ? 'COHORTCAST_SECRET_KEY' : `the key file ${path.join(config.dataDir, 'secret.key')}`;
    throw new Error(
      `this database's secrets were sealed with a different key than ${source}; start every process with the same COHORTCAST_SECRET_KEY`,
    );
  }
  return new SecretBox(key);
}
