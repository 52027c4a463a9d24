/** LL-HLS playlist text: media playlists (full or delta) from a `TrackWindow`, and the master playlist. */

import type { HlsSegment } from './track-media.ts';
import type { TrackWindow } from './window.ts';

/** Protocol version written in media playlists (EXT-X-SKIP needs 9). */
export const HLS_VERSION = 9;

/** Where a sibling playlist is, for EXT-X-RENDITION-REPORT. */
export type RenditionReport = {
  /** URI relative to the playlist carrying the report. */
  readonly uri: string;
  readonly lastMsn: number;
  readonly lastPart: number;
};

/** What a media playlist is rendered from. */
export type MediaPlaylistInput = {
  readonly window: TrackWindow;
  /** File name prefix: '' for video, 'audio-' for audio. */
  readonly prefix: '' | 'audio-';
  /** EXT-X-TARGETDURATION, whole seconds. */
  readonly targetDurationS: number;
  /** PART-TARGET, seconds. */
  readonly partTargetS: number;
  readonly reports: readonly RenditionReport[];
  /** Render a delta update (EXT-X-SKIP) when segments can be skipped; ignored once ended. */
  readonly skip: boolean;
};

/** One variant of the master playlist. */
export type MasterVariant = {
  readonly uri: string;
  readonly bandwidthBps: number;
  readonly averageBandwidthBps: number | undefined;
  readonly codecs: readonly string[];
  readonly width: number | undefined;
  readonly height: number | undefined;
  readonly frameRate: number | undefined;
  /** GROUP-ID of the audio group the variant references, if any. */
  readonly audioGroup: string | undefined;
};

/** One audio group of the master playlist (one rendition: EXT-X-MEDIA). */
export type MasterAudioGroup = {
  readonly id: string;
  readonly name: string;
  /** Its playlist, relative to the master. */
  readonly uri: string;
};

/** What the master playlist is rendered from. */
export type MasterPlaylistInput = {
  /** The audio groups the variants reference, in order. */
  readonly audioGroups: readonly MasterAudioGroup[];
  readonly variants: readonly MasterVariant[];
};

/** Seconds with at least three and at most five decimals (`2.000`, `0.03337`). */
export function formatSeconds(seconds: number): string {
  const text = seconds.toFixed(5);
  return text.replace(/(\.\d{3}\d*?)0+$/, '$1');
}

/** ISO 8601 with milliseconds, UTC. */
export function formatDateTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Segment and part file names of a track. */
export function mediaUris(prefix: '' | 'audio-'): {
  init: (version: number) => string;
  segment: (msn: number) => string;
  part: (msn: number, index: number) => string;
} {
  return {
    init: (version) => `${prefix}init-${version}.mp4`,
    segment: (msn) => `${prefix}seg-${msn}.m4s`,
    part: (msn, index) => `${prefix}part-${msn}-${index}.m4s`,
  };
}

/** Renders a media playlist (RFC 8216bis with the LL-HLS tags). */
export function renderMediaPlaylist(input: MediaPlaylistInput): string {
  const { window, targetDurationS: td, partTargetS } = input;
  const uris = mediaUris(input.prefix);
  const listing = window.listing();
  const ended = window.ended;
  const skipUntilS = 6 * td;
  const lines: string[] = [
    '#EXTM3U',
    `#EXT-X-VERSION:${HLS_VERSION}`,
    `#EXT-X-TARGETDURATION:${td}`,
    `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${formatSeconds(3 * partTargetS)},HOLD-BACK=${formatSeconds(3 * td)},CAN-SKIP-UNTIL=${formatSeconds(skipUntilS)}`,
    `#EXT-X-PART-INF:PART-TARGET=${formatSeconds(partTargetS)}`,
    `#EXT-X-MEDIA-SEQUENCE:${listing.mediaSequence}`,
  ];
  if (listing.discontinuitySequence > 0) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${listing.discontinuitySequence}`);

  let skipped = 0;
  if (input.skip && !ended) {
    for (const seg of listing.segments) {
      if (listing.endTimelineS - (seg.timelineS + seg.durationS) < skipUntilS - 0.001) break;
      skipped += 1;
    }
    if (skipped > 0) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`);
  }

  let mapVersion: number | undefined;
  const head = (seg: HlsSegment): void => {
    if (seg.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
    if (seg.init.version !== mapVersion) {
      lines.push(`#EXT-X-MAP:URI="${uris.init(seg.init.version)}"`);
      mapVersion = seg.init.version;
    }
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:${formatDateTime(seg.programDateTimeMs)}`);
  };
  const parts = (seg: HlsSegment): void => {
    for (const part of seg.parts) {
      const flag = part.gap ? ',GAP=YES' : part.independent ? ',INDEPENDENT=YES' : '';
      lines.push(
        `#EXT-X-PART:DURATION=${formatSeconds(part.durationS)},URI="${uris.part(part.msn, part.index)}"${flag}`,
      );
    }
  };

  for (let i = skipped; i < listing.segments.length; i++) {
    const seg = listing.segments[i]!;
    head(seg);
    if (window.listsParts(seg, listing.endTimelineS)) parts(seg);
    if (seg.gap) lines.push('#EXT-X-GAP');
    lines.push(`#EXTINF:${formatSeconds(seg.durationS)},`, uris.segment(seg.msn));
  }
  const open = listing.open;
  if (open !== undefined) {
    head(open);
    parts(open);
  }
  const hint = window.nextPartHint();
  if (hint !== undefined) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${uris.part(hint.msn, hint.index)}"`);
  for (const report of input.reports) {
    lines.push(`#EXT-X-RENDITION-REPORT:URI="${report.uri}",LAST-MSN=${report.lastMsn},LAST-PART=${report.lastPart}`);
  }
  if (ended) lines.push('#EXT-X-ENDLIST');
  return `${lines.join('\n')}\n`;
}

/** Whole bits per second, rounded up (ignoring float noise). */
function bitsPerSecond(bps: number): number {
  return Math.ceil(bps - 1e-6);
}

/** Renders the master (multivariant) playlist: the audio groups, then the variants, in the given order. */
export function renderMasterPlaylist(input: MasterPlaylistInput): string {
  const lines: string[] = ['#EXTM3U', `#EXT-X-VERSION:${HLS_VERSION}`, '#EXT-X-INDEPENDENT-SEGMENTS'];
  for (const g of input.audioGroups) {
    lines.push(`#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="${g.id}",NAME="${g.name}",DEFAULT=YES,AUTOSELECT=YES,URI="${g.uri}"`);
  }
  for (const v of input.variants) {
    const attrs = [`BANDWIDTH=${Math.max(1, bitsPerSecond(v.bandwidthBps))}`];
    if (v.averageBandwidthBps !== undefined && v.averageBandwidthBps > 0) {
      attrs.push(`AVERAGE-BANDWIDTH=${bitsPerSecond(v.averageBandwidthBps)}`);
    }
    if (v.codecs.length > 0) attrs.push(`CODECS="${v.codecs.join(',')}"`);
    if (v.width !== undefined && v.height !== undefined) attrs.push(`RESOLUTION=${v.width}x${v.height}`);
    if (v.frameRate !== undefined && v.frameRate > 0) attrs.push(`FRAME-RATE=${v.frameRate.toFixed(3)}`);
    if (v.audioGroup !== undefined) attrs.push(`AUDIO="${v.audioGroup}"`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, v.uri);
  }
  return `${lines.join('\n')}\n`;
}
