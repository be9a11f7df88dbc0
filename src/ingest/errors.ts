/** Why a whole ingestion request was refused; also the `reason` label of the rejection metric. */
export type RejectReason =
  | 'malformed'
  | 'invalid_token'
  | 'unauthorized'
  | 'too_large'
  | 'too_many_events'
  | 'invalid_records'
  | 'unsupported_encoding';

const statusOf: Record<RejectReason, number> = {
  malformed: 400,
  invalid_token: 401,
  unauthorized: 401,
  too_large: 413,
  too_many_events: 400,
  invalid_records: 400,
  unsupported_encoding: 415,
};

export class IngestError extends Error {
  readonly status: number;
  constructor(
    readonly reason: RejectReason,
    message: string,
  ) {
    super(message);
    this.status = statusOf[reason];
  }
}

/** One record of a batch that was refused, in Mixpanel's failed_records shape. */
export interface RecordError {
  index: number;
  insert_id?: string;
  field: string;
  message: string;
}
