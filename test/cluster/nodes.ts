/** Cluster nodes for the multi-process tests: the real CLI with role flags, joined through one nats-server. */

import { getText, type RunningServer, type Runtime, startServer } from '../../testkit/server.ts';
import { parseM3u8 } from '../e2e/helpers.ts';
import { waitFor } from '../support/wait.ts';

/** Starts `lvqr-transcode serve --role <roles> --nats <url> --node-id <id>` with `extra` flags (on Node unless told). */
export function startNode(
  id: string,
  roles: string,
  natsUrl: string,
  extra: readonly string[] = [],
  runtime: Runtime = 'node',
): Promise<RunningServer> {
  return startServer(['--role', roles, '--nats', natsUrl, '--node-id', id, '--test-pattern', 'off', ...extra], {
    timeoutMs: 60_000,
    runtime,
  });
}

/** What a node's /healthz says of its part of the cluster. */
export type ClusterHealth = {
  node: string;
  roles: string[];
  ladders: string[];
  mirrored: Array<{ broadcast: string; track: string; from: string; fragments: number; gaps: number }>;
};

/** The `cluster` field of a node's /healthz (undefined while it does not answer). */
export async function clusterHealth(node: RunningServer): Promise<ClusterHealth | undefined> {
  try {
    const res = await fetch(`${node.url}/healthz`);
    return ((await res.json()) as { cluster?: ClusterHealth }).cluster;
  } catch {
    return undefined;
  }
}

/** What the failover tests read of a media playlist. */
export type PlaylistSummary = {
  readonly sequence: number;
  /** Number of the last whole segment listed. */
  readonly lastMsn: number;
  readonly discontinuities: number;
  readonly ended: boolean;
};

/** Media sequence, last segment number, discontinuities and end of a media playlist's text. */
export function playlistSummary(text: string): PlaylistSummary {
  const media = parseM3u8(text);
  const sequence = media.mediaSequence as number;
  return {
    sequence,
    lastMsn: sequence + (media.segments as unknown[]).length - 1,
    discontinuities: (text.match(/^#EXT-X-DISCONTINUITY$/gm) ?? []).length,
    ended: text.includes('#EXT-X-ENDLIST'),
  };
}

/** The text of the media playlist at `url` once it carries EXT-X-ENDLIST. */
export async function endedPlaylist(url: string): Promise<string> {
  return waitFor(
    async () => {
      const text = await getText(url);
      return text?.includes('#EXT-X-ENDLIST') ? text : undefined;
    },
    `ENDLIST in ${url}`,
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}
