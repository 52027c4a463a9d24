/**
 * Operator events. Every event (`publish`, `ready`, `unpublish`, `rung_failed`,
 * `rung_recovered`, `overload`) is a JSON POST to each `--webhook-url`, signed with HMAC-SHA256 of
 * the body in `X-Lvqr-Signature: sha256=<hex>` when `--webhook-secret` is set (signature.ts).
 *
 * Delivery (webhooks.ts): a bounded queue (the oldest delivery is dropped when full), a few
 * requests in flight, a timeout per request, retries with exponential back-off (core/backoff.ts);
 * `emit` only enqueues, so media never waits on a receiver. Each failed attempt is reported
 * (`lvqr_webhook_failures_total`) and logged.
 *
 * Admission (admission.ts): with `--webhook-admission on`, the `publish` event is awaited at the
 * first URL before the publisher is accepted; its answer allows or refuses and may carry the
 * stream's ladder.
 *
 * Not here: where events come from (server/event-wiring.ts observes the registry, the ingest gate
 * and the ladder).
 */

export {
  type AdmissionDecision,
  type AdmissionOptions,
  admitByWebhook,
  ladderFromJsonValue,
  parseAdmissionAnswer,
} from './admission.ts';
export { SIGNATURE_HEADER, signBody, verifySignature } from './signature.ts';
export {
  type EventType,
  type FailureReason,
  type LvqrEvent,
  readReply,
  WebhookError,
  type WebhookOptions,
  WebhookSender,
  type WebhookStats,
} from './webhooks.ts';
