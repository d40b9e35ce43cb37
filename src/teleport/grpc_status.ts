/**
 * gRPC status codes and the error a call fails with, as the gRPC over HTTP/2 protocol defines
 * them (`doc/PROTOCOL-HTTP2.md`, `doc/statuscodes.md` of grpc/grpc), for the plugin's own client
 * (`grpc_call.ts`).
 * @module
 */

/** The gRPC status codes. */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(GrpcStatus).map(([name, code]) => [code, name]),
);

/** `UNAVAILABLE` for 14; the number itself for a code gRPC does not define. */
export function grpcStatusName(code: number): string {
  return NAMES[code] ?? String(code);
}

/** A call that ended with a status other than OK: `message` is `"14 UNAVAILABLE: details"`. */
export class GrpcCallError extends Error {
  constructor(readonly code: number, readonly details: string, options?: { cause?: unknown }) {
    super(`${code} ${grpcStatusName(code)}: ${details}`, options);
    this.name = "GrpcCallError";
  }
}

/** The status of a response whose HTTP status is not 200 (gRPC's HTTP to gRPC mapping). */
export function statusOfHttp(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/** `grpc-message` as sent: percent-encoded UTF-8. A malformed escape is kept as it is. */
export function decodeGrpcMessage(value: string | undefined): string {
  if (!value) return "";
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
