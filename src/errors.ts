/**
 * A refusal a caller can act on: an HTTP status, a stable code and a message that says what to do.
 * Domain modules throw it; the API answers it as `{"error": {"code", "message"}}`, the CLI prints it.
 */
export class ActionableError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Where in the request body the mistake is, as a JSON pointer (`/definition/and/1/within_days`), when one place is at fault. */
    readonly path?: string,
  ) {
    super(message);
  }
}
