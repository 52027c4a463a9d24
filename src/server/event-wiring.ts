/**
 * Where operator events come from: `publish` from the ingest gate (awaited as admission with
 * `--webhook-admission on`), `ready` at the first keyframe of a source's video (its first HLS
 * segment starts there), `unpublish` when a source broadcast's last track leaves the registry
 * (after the grace period), and `rung_failed` / `rung_recovered` / `overload` from the ladder.
 * Failed deliveries count in `lvqr_webhook_failures_total{reason}`.
 */

import { Counter } from 'prom-client';
import type { Logger } from '../core/log.ts';
import { admitByWebhook, WebhookSender } from '../events/index.ts';
import type { FragmentBroadcaster } from '../fragment/broadcaster.ts';
import { VIDEO_TRACK } from '../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../fragment/registry.ts';
import type { LvqrMetrics } from '../metrics/index.ts';
import type { LadderEvent } from '../transcode/ladder/index.ts';
import type { Admit } from './ingest-gate.ts';
import type { StreamLadders } from './stream-ladders.ts';

/** The webhook settings of `serve`. */
export type WebhookConfig = {
  urls: readonly string[];
  secret: string | undefined;
  /** Await `publish` at the first URL and let its answer decide. */
  admission: boolean;
  /** The decision when admission gets no usable answer. */
  admissionDefaultAllow: boolean;
  timeoutMs: number;
  /** The `node` field of every event. */
  node: string;
};

/** What the event wiring is built from. */
export type EventWiringDeps = {
  config: WebhookConfig;
  registry: FragmentBroadcasterRegistry;
  metrics: LvqrMetrics;
  logger: Logger;
  ladders: StreamLadders;
  fetch?: typeof fetch;
};

/** The wired events: the sender, the admission hook for the ingest gate, the ladder's listener. */
export type EventWiring = {
  readonly sender: WebhookSender;
  readonly admit: Admit;
  readonly onLadderEvent: (event: LadderEvent) => void;
  close(): void;
};

const FAILURES = 'lvqr_webhook_failures_total';

function failureCounter(metrics: LvqrMetrics): Counter<'reason'> {
  const existing = metrics.registry.getSingleMetric(FAILURES);
  if (existing !== undefined) return existing as Counter<'reason'>;
  return new Counter({
    name: FAILURES,
    help: 'Webhook deliveries that failed (each attempt), by reason',
    labelNames: ['reason'],
    registers: [metrics.registry],
  });
}

/** Wires events to the registry and returns the hooks for the ingest gate and the ladder. */
export function wireEvents(deps: EventWiringDeps): EventWiring {
  const { config, registry, logger, ladders } = deps;
  const failures = failureCounter(deps.metrics);
  const sender = new WebhookSender({
    urls: config.urls,
    secret: config.secret,
    node: config.node,
    timeoutMs: config.timeoutMs,
    logger,
    onFailure: (_url, reason) => failures.inc({ reason }),
    ...(deps.fetch === undefined ? {} : { fetch: deps.fetch }),
  });
  const closed = new AbortController();

  const admit: Admit = async (broadcast, info) => {
    const fields = { transport: info.transport, client: info.client ?? null };
    if (!config.admission) {
      sender.emit('publish', broadcast, { ...fields, admission: false });
      return undefined;
    }
    const decision = await admitByWebhook(
      { sender, defaultAllow: config.admissionDefaultAllow, logger },
      broadcast,
      fields,
    );
    if (!decision.allow) {
      if (decision.failed !== undefined) return { code: 'ingest.admission_failed', message: decision.failed };
      return { code: 'ingest.forbidden', message: decision.reason ?? 'publishing refused by the admission webhook' };
    }
    if (decision.ladder !== undefined) ladders.set(broadcast, decision.ladder, 'admission');
    else ladders.delete(broadcast, 'admission');
    return undefined;
  };

  /** A source this node ingests itself (a cluster mirror's events come from the node that ingests it). */
  const ingestedHere = (broadcaster: FragmentBroadcaster): boolean =>
    broadcaster.origin.kind === 'ingest' && broadcaster.origin.mirroredFrom === undefined;
  const watchReady = (broadcast: string, track: string, broadcaster: FragmentBroadcaster): void => {
    if (!ingestedHere(broadcaster) || track !== VIDEO_TRACK) return;
    const sub = broadcaster.subscribe();
    void (async () => {
      try {
        for (;;) {
          const fragment = await sub.next();
          if (fragment === undefined || closed.signal.aborted) return;
          if (fragment.flags.keyframe) {
            sender.emit('ready', broadcast, {
              codec: sub.meta.codec,
              playlist: `/hls/${broadcast}/master.m3u8`,
            });
            return;
          }
        }
      } finally {
        sub.close();
      }
    })();
  };
  const unsubscribeCreated = registry.onEntryCreated(watchReady);
  const unsubscribeRemoved = registry.onEntryRemoved((broadcast, _track, broadcaster) => {
    if (!ingestedHere(broadcaster)) return;
    const left = registry.entries().some((e) => e.broadcast === broadcast && ingestedHere(e.broadcaster));
    if (!left) sender.emit('unpublish', broadcast);
  });

  const onLadderEvent = (event: LadderEvent): void => {
    const { kind, broadcast, ...fields } = event;
    sender.emit(kind, broadcast, fields);
  };

  return {
    sender,
    admit,
    onLadderEvent,
    close() {
      closed.abort();
      unsubscribeCreated();
      unsubscribeRemoved();
      sender.close();
    },
  };
}
