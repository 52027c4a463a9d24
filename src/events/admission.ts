/**
 * Publish admission: the `publish` event sent to the first webhook URL and awaited. The receiver's
 * JSON answer `{ "allow": bool, "reason"?: string, "ladder"?: [rendition, ...] }` allows or
 * refuses the publisher and may carry this stream's ladder (LVQR rendition fields, validated like a
 * rendition file). No answer in time, a status outside 2xx, a reply over the size limit or a
 * malformed answer is a failed admission: the configured default decides, and the reason is kept.
 */

import { errorMessage, RenditionError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { type RenditionSpec, renditionFromJson, validateLadder } from '../transcode/rendition.ts';
import type { WebhookSender } from './webhooks.ts';

/** What admission decided. `failed` holds why the receiver gave no usable answer (the default then applied). */
export type AdmissionDecision = {
  readonly allow: boolean;
  readonly reason: string | undefined;
  readonly ladder: RenditionSpec[] | undefined;
  readonly failed: string | undefined;
};

/** A ladder in JSON (a list of renditions, LVQR snake_case or camelCase keys), validated; throws `RenditionError`. */
export function ladderFromJsonValue(value: unknown, where = 'ladder'): RenditionSpec[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new RenditionError(`${where}: expected a non-empty list of renditions`);
  }
  const specs = value.map((item, i) => {
    try {
      return renditionFromJson(JSON.stringify(item ?? null));
    } catch (error) {
      throw new RenditionError(`${where}[${i}]: ${errorMessage(error).replace(/^rendition: /, '')}`);
    }
  });
  return validateLadder(specs, where);
}

/** The decision in an admission answer's text; throws an `Error` saying what is malformed. */
export function parseAdmissionAnswer(text: string): Omit<AdmissionDecision, 'failed'> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`the answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('the answer is not a JSON object');
  const answer = raw as Record<string, unknown>;
  if (typeof answer['allow'] !== 'boolean') {
    throw new Error(`"allow" must be true or false, got ${JSON.stringify(answer['allow'] ?? null)}`);
  }
  const reason = answer['reason'];
  if (reason !== undefined && typeof reason !== 'string') throw new Error('"reason" must be a string');
  const ladder = answer['ladder'] === undefined ? undefined : ladderFromJsonValue(answer['ladder'], 'answer ladder');
  return { allow: answer['allow'], reason: reason?.slice(0, 200), ladder };
}

/** Options of `admitByWebhook`. */
export type AdmissionOptions = {
  sender: WebhookSender;
  /** The decision when the receiver gives no usable answer. */
  defaultAllow: boolean;
  logger: Logger;
};

/**
 * Sends the `publish` event for `broadcast`: awaited at the first URL, queued for the others.
 * Never throws.
 */
export async function admitByWebhook(
  options: AdmissionOptions,
  broadcast: string,
  fields: Record<string, unknown>,
): Promise<AdmissionDecision> {
  const { sender, defaultAllow, logger } = options;
  const [first] = sender.urls;
  const event = sender.event('publish', broadcast, { ...fields, admission: true });
  sender.send(event, first);
  if (first === undefined) return { allow: defaultAllow, reason: undefined, ladder: undefined, failed: 'no URL' };
  try {
    const text = await sender.post(first, event);
    return { ...parseAdmissionAnswer(text), failed: undefined };
  } catch (error) {
    const failed = `admission webhook failed: ${errorMessage(error)}`;
    logger.warn(failed, { broadcast, url: first, default: defaultAllow ? 'allow' : 'deny' });
    return { allow: defaultAllow, reason: undefined, ladder: undefined, failed };
  }
}
