/**
 * Typed errors with user-facing messages. Library code throws these; only `cli.ts` prints them
 * (through {@link formatError}) and chooses the exit code.
 *
 * Messages are sentence case, without a trailing period, and never contain a secret value.
 */

/** Base class for every error this program reports to a user. */
export class TeleportEmailError extends Error {
  /** A short suggestion of what to do about it, printed after the message. */
  readonly hint?: string;

  constructor(message: string, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
}

/** Wrong command-line usage: unknown command or flag. Exit code 2. */
export class UsageError extends TeleportEmailError {}

/** A configuration value is missing or wrong. `key` is the TOML key (`smtp.host`). */
export class ConfigError extends TeleportEmailError {
  readonly key: string;
  readonly file?: string;

  constructor(
    key: string,
    message: string,
    options: { cause?: unknown; hint?: string; file?: string } = {},
  ) {
    super(message, options);
    this.key = key;
    this.file = options.file;
  }
}

/**
 * The kind of a failed Teleport API call, mapped from its gRPC status
 * (see `api/trail`: AccessDenied → PERMISSION_DENIED, CompareFailed → FAILED_PRECONDITION, …).
 */
export type TeleportErrorKind =
  | "access_denied"
  | "not_found"
  | "already_exists"
  | "bad_parameter"
  | "compare_failed"
  | "connection_problem"
  | "limit_exceeded"
  | "not_implemented"
  | "deadline_exceeded"
  | "canceled"
  | "unknown";

/** A failure talking to Teleport: connecting, TLS, or a gRPC call. */
export class TeleportError extends TeleportEmailError {
  readonly kind: TeleportErrorKind;
  /** The gRPC status code when the failure came from a call, else undefined. */
  readonly grpcCode?: number;

  constructor(
    kind: TeleportErrorKind,
    message: string,
    options: { cause?: unknown; hint?: string; grpcCode?: number } = {},
  ) {
    super(message, options);
    this.kind = kind;
    this.grpcCode = options.grpcCode;
  }

  /** Whether reconnecting (with backoff) may help. */
  get retryable(): boolean {
    return this.kind === "connection_problem" || this.kind === "deadline_exceeded" ||
      this.kind === "limit_exceeded";
  }
}

/** A failure sending an email. `retryable` tells the caller whether another try may succeed. */
export class MailerError extends TeleportEmailError {
  readonly recipient?: string;
  /** Transport-specific code: an SMTP reply code (`550`), an HTTP status, or a library code. */
  readonly code?: string | number;
  readonly retryable: boolean;

  constructor(
    message: string,
    options: {
      cause?: unknown;
      hint?: string;
      recipient?: string;
      code?: string | number;
      retryable: boolean;
    },
  ) {
    super(message, options);
    this.recipient = options.recipient;
    this.code = options.code;
    this.retryable = options.retryable;
  }
}

/** Several independent failures (for example one per recipient), reported together. */
export class AggregateFailure extends TeleportEmailError {
  readonly errors: readonly Error[];

  constructor(message: string, errors: readonly Error[]) {
    super(`${message}: ${errors.map((e) => e.message).join("; ")}`);
    this.errors = errors;
  }
}

/**
 * Thrown when another handler (in this or another replica) holds the request's lease, so this
 * one sent nothing. Retryable.
 */
export class RequestBusyError extends TeleportEmailError {
  readonly retryable = true;
  /**
   * When the holder's lease expires (unix ms, as stored by the holder): from then on the
   * request can be taken over, so that is when to try again. The holder renews it while it
   * records sends and releases it when done.
   */
  readonly until: number;

  constructor(message: string, until: number, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.until = until;
  }
}

/**
 * The abort reason a caller gives the handler's signal when the process shuts down (the engine
 * does after its drain limit): the handler then reports unsent emails as left for the next start
 * or another replica, not as failures.
 */
export class ShutdownAbort extends TeleportEmailError {
  constructor() {
    super("Shutting down");
  }
}

/**
 * Thrown when shutdown ({@link ShutdownAbort}) cut a handler call off before it sent every email;
 * the handler has already logged each unsent one as a warning.
 */
export class RequestInterrupted extends TeleportEmailError {
  /** Recipients whose email was not sent. */
  readonly unsent: readonly string[];

  constructor(requestId: string, unsent: readonly string[]) {
    super(
      `Shutdown interrupted request "${requestId}" before ${unsent.length} email(s) were sent`,
    );
    this.unsent = unsent;
  }
}

/** Some emails for a request could not be sent (yet). */
export class RequestFailure extends TeleportEmailError {
  /** Whether another attempt may succeed (some failures were retryable). */
  readonly retryable: boolean;
  readonly errors: readonly Error[];

  constructor(message: string, errors: readonly Error[], retryable: boolean) {
    super(`${message}: ${errors.map((e) => e.message).join("; ")}`);
    this.errors = errors;
    this.retryable = retryable;
  }
}

/** The message of `err` when it is an Error, else `err` as a string (no hint, no stack). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * One line for a user: the message, then the hint when there is one. Unknown (non
 * TeleportEmailError) errors keep their message but never their stack.
 */
export function formatError(err: unknown): string {
  if (err instanceof TeleportEmailError) {
    return err.hint ? `${err.message} (hint: ${err.hint})` : err.message;
  }
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
