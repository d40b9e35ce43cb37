import assert from "node:assert/strict";
import {
  decodeGrpcMessage,
  GrpcCallError,
  GrpcStatus,
  grpcStatusName,
  statusOfHttp,
} from "./grpc_status.ts";

Deno.test("GrpcStatus has gRPC's seventeen codes, named as gRPC names them", () => {
  assert.equal(Object.keys(GrpcStatus).length, 17);
  assert.equal(GrpcStatus.UNAUTHENTICATED, 16);
  assert.equal(grpcStatusName(14), "UNAVAILABLE");
  assert.equal(grpcStatusName(99), "99");
});

Deno.test("GrpcCallError reads like grpc-js's: code, name, details", () => {
  const e = new GrpcCallError(GrpcStatus.NOT_FOUND, "no such request");
  assert.equal(e.message, "5 NOT_FOUND: no such request");
  assert.equal(e.code, 5);
  assert.equal(e.details, "no such request");
});

Deno.test("statusOfHttp() maps HTTP statuses as gRPC's HTTP-to-gRPC table", () => {
  assert.equal(statusOfHttp(400), GrpcStatus.INTERNAL);
  assert.equal(statusOfHttp(401), GrpcStatus.UNAUTHENTICATED);
  assert.equal(statusOfHttp(403), GrpcStatus.PERMISSION_DENIED);
  assert.equal(statusOfHttp(404), GrpcStatus.UNIMPLEMENTED);
  for (const s of [429, 502, 503, 504]) assert.equal(statusOfHttp(s), GrpcStatus.UNAVAILABLE);
  assert.equal(statusOfHttp(500), GrpcStatus.UNKNOWN);
});

Deno.test("decodeGrpcMessage() undoes percent-encoding and keeps a malformed value", () => {
  assert.equal(decodeGrpcMessage("access%20denied%3A%20%C3%A9"), "access denied: é");
  assert.equal(decodeGrpcMessage("100%"), "100%");
  assert.equal(decodeGrpcMessage(undefined), "");
});
