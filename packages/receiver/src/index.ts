export { verifySignature, WebhookVerificationError, type VerifyOptions } from './signature.js';
export {
  parseCohortSync,
  cohortSyncReply,
  CohortSyncFormatError,
  type CohortMember,
  type CohortSyncAction,
  type CohortSyncReply,
  type CohortSyncRequest,
} from './cohort-sync.js';
export { parseMessage, MessageFormatError, type MessageUser } from './messages.js';
export { CohortMirror, type Receipt } from './session.js';
export { parseAlert, AlertFormatError, type CustomAlert } from './alerts.js';
