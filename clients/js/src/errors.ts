/**
 * EventBusError is every failure of an EventBusClient call: an answer of the
 * relay other than 2xx (status is its HTTP status, message the relay's
 * `error` text), or no answer at all (status 0: the network failed, the
 * request was aborted or the answer was not JSON).
 */
export class EventBusError extends Error {
  /** The HTTP status of the relay's answer; 0 when there was none. */
  readonly status: number;
  /** The relay's X-Request-Id, which its log lines carry (500s name only it). */
  readonly requestId: string | undefined;
  /** The parsed JSON body of the answer, when it had one. */
  readonly body: unknown;

  constructor(status: number, message: string, options: { requestId?: string; body?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EventBusError';
    this.status = status;
    this.requestId = options.requestId;
    this.body = options.body;
  }

  /** Whether the relay refused the caller: 401 (no or bad JWT) or 403 (not an admin, RLS). */
  get isAuthError(): boolean {
    return this.status === 401 || this.status === 403;
  }
}
