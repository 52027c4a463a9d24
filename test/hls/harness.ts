/** Test harness for the HLS bridge: a real registry, synthetic fragments, fake init segments. */

import { Parser } from 'm3u8-parser';
import { expect } from 'vitest';
import type { TrackNumbering } from '../../src/fragment/broadcaster.ts';
import {
  type BroadcastOrigin,
  createFragment,
  type FragmentBroadcaster,
  FragmentBroadcasterRegistry,
  FragmentFlags,
} from '../../src/fragment/index.ts';
import {
  HlsBridge,
  type HlsBridgeOptions,
  type HlsResponse,
  type InitDescriber,
  type InitTrackDescription,
} from '../../src/hls/index.ts';
import { initId } from '../../src/hls/init-id.ts';
import { waitFor } from '../support/wait.ts';

export const VIDEO_TIMESCALE = 90_000;
/** One frame at 30 fps, in 90 kHz ticks. */
export const FRAME_TICKS = 3000;
export const AUDIO_TIMESCALE = 48_000;
/** One AAC frame (1024 samples). */
export const AUDIO_TICKS = 1024;
/** Wall-clock origin of synthetic ingest times. */
export const EPOCH_MS = Date.UTC(2025, 0, 2, 3, 4, 5, 0);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A fake init segment: the JSON of its track description (read back by `describeFake`). */
export function fakeInit(track: InitTrackDescription): Uint8Array {
  return encoder.encode(JSON.stringify({ tracks: [track] }));
}

/** `describeInit` stand-in for `fakeInit` bytes. */
export const describeFake: InitDescriber = (init) =>
  JSON.parse(decoder.decode(init)) as { tracks: InitTrackDescription[] };

/** Describes a 30 fps H.264 track of the given size. */
export function videoTrack(width: number, height: number, codec = 'avc1.64001f'): InitTrackDescription {
  return { kind: 'video', codec, width, height, frameRate: 30 };
}

/** Describes an AAC-LC track. */
export const AUDIO_DESCRIPTION: InitTrackDescription = { kind: 'audio', codec: 'mp4a.40.2' };

/** The EXT-X-MAP URI of a `FakeTrack`'s init for `track` (named by its content: init-id.ts). */
export function initUri(track: InitTrackDescription = videoTrack(1920, 1080)): string {
  const audio = track.kind === 'audio';
  return `${audio ? 'audio-' : ''}init-${initId(fakeInit(track), audio ? AUDIO_TIMESCALE : VIDEO_TIMESCALE)}.mp4`;
}

const started: HlsBridge[] = [];

/** A started bridge over a new registry, describing `fakeInit`s; `closeBridges()` closes it. */
export function startBridge(options: Partial<HlsBridgeOptions> = {}): {
  registry: FragmentBroadcasterRegistry;
  bridge: HlsBridge;
} {
  const registry = new FragmentBroadcasterRegistry();
  const bridge = new HlsBridge({ registry, describeInit: describeFake, ...options });
  bridge.start();
  started.push(bridge);
  return { registry, bridge };
}

/** Closes every bridge `startBridge` made. */
export function closeBridges(): void {
  for (const b of started.splice(0)) b.close();
}

/** A producer of one synthetic track: frames of fixed duration, keyframes on demand. */
export class FakeTrack {
  readonly broadcaster: FragmentBroadcaster;
  readonly #ticks: number;
  readonly #timescale: number;
  readonly #audio: boolean;
  /** Index of the next frame. */
  frame = 0;
  /** Timestamp offset of the next frame (ticks), so a restart can reset timestamps. */
  #base = 0;
  /** Payload size of each fragment. */
  bytesPerFragment: number;
  /** How late each fragment arrives against its media time (its ingest time is that much later), ms. */
  lagMs = 0;

  constructor(
    registry: FragmentBroadcasterRegistry,
    name: string,
    kind: 'video' | 'audio',
    options: { origin?: BroadcastOrigin; init?: InitTrackDescription; bytes?: number; numbering?: TrackNumbering } = {},
  ) {
    this.#audio = kind === 'audio';
    this.#ticks = this.#audio ? AUDIO_TICKS : FRAME_TICKS;
    this.#timescale = this.#audio ? AUDIO_TIMESCALE : VIDEO_TIMESCALE;
    this.bytesPerFragment = options.bytes ?? (this.#audio ? 40 : 200);
    const codec = options.init?.codec ?? (this.#audio ? 'mp4a.40.2' : 'avc1.64001f');
    this.broadcaster = registry.getOrCreate(
      name,
      this.#audio ? '1.mp4' : '0.mp4',
      { codec, timescale: this.#timescale, initSegment: undefined },
      {
        ...(options.origin === undefined ? {} : { origin: options.origin }),
        ...(options.numbering === undefined ? {} : { numbering: options.numbering }),
      },
    );
    this.broadcaster.setInitSegment(
      fakeInit(options.init ?? (this.#audio ? AUDIO_DESCRIPTION : videoTrack(1920, 1080))),
      codec,
      this.#timescale,
    );
  }

  /** Seconds of media emitted so far. */
  get timeS(): number {
    return (this.#base + this.frame * this.#ticks) / this.#timescale;
  }

  /** Emits one fragment of one frame (`keyframe` ignored for audio). */
  emit(keyframe: boolean): void {
    const dts = this.#base + this.frame * this.#ticks;
    const payload = new Uint8Array(this.bytesPerFragment);
    new DataView(payload.buffer).setUint32(0, this.frame);
    payload.fill(this.frame & 0xff, 4);
    this.broadcaster.emit(
      createFragment({
        trackId: this.#audio ? '1.mp4' : '0.mp4',
        groupId: 0,
        objectId: this.frame,
        priority: 0,
        dts,
        pts: dts,
        duration: this.#ticks,
        flags: this.#audio ? FragmentFlags.AUDIO : keyframe ? FragmentFlags.KEYFRAME : FragmentFlags.DELTA,
        payload,
        ingestTimeMs: EPOCH_MS + Math.round((dts / this.#timescale) * 1000) + this.lagMs,
      }),
    );
    this.frame += 1;
  }

  /** Emits `count` video frames with a keyframe every `gop` frames (counted from frame 0), or audio frames. */
  frames(count: number, gop = 60): void {
    for (let i = 0; i < count; i++) this.emit(this.frame % gop === 0);
  }

  /** Emits audio frames until its time reaches `timeS`. */
  until(timeS: number): void {
    while (this.timeS + 1e-9 < timeS) this.emit(true);
  }

  /** A new init (restart): timestamps start again at `restartAtS`. */
  restart(init: InitTrackDescription, restartAtS = 0): void {
    this.#base = Math.round(restartAtS * this.#timescale) - this.frame * this.#ticks;
    this.broadcaster.setInitSegment(fakeInit(init), init.codec, this.#timescale);
  }
}

/** Text of a response body. */
export function text(response: HlsResponse): string {
  return typeof response.body === 'string' ? response.body : decoder.decode(response.body);
}

/** GET through the bridge, with an optional query string. */
export function get(bridge: HlsBridge, path: string, query = '', signal?: AbortSignal): Promise<HlsResponse> {
  return bridge.handle(path, new URLSearchParams(query), signal);
}

/** GETs a playlist, expects 200, parses it with m3u8-parser and fails on any parser warning. */
export async function playlist(
  bridge: HlsBridge,
  path: string,
  query = '',
): Promise<{ raw: string; manifest: ParsedManifest }> {
  const response = await get(bridge, path, query);
  expect(response.status, text(response)).toBe(200);
  const raw = text(response);
  return { raw, manifest: parse(raw) };
}

/** The fields of m3u8-parser's manifest the tests read. */
export type ParsedManifest = {
  targetDuration?: number;
  mediaSequence?: number;
  discontinuitySequence?: number;
  endList?: boolean;
  segments: Array<{
    uri: string;
    duration: number;
    discontinuity?: boolean;
    dateTimeString?: string;
    map?: { uri: string };
    parts?: Array<{ uri: string; duration: number; independent?: boolean }>;
  }>;
  preloadSegment?: { parts?: Array<{ uri: string; duration: number; independent?: boolean }> };
  preloadHints?: unknown;
  renditionReports?: Array<{ uri: string; lastMsn: number; lastPart: number }>;
  serverControl?: Record<string, unknown>;
  partInf?: { partTarget: number };
  skip?: { skippedSegments: number };
  playlists?: Array<{ uri: string; attributes: Record<string, unknown> }>;
  mediaGroups?: { AUDIO?: Record<string, Record<string, { uri: string; default: boolean }>> };
};

/** Parses playlist text, failing the test on any m3u8-parser warning. */
export function parse(raw: string): ParsedManifest {
  const parser = new Parser();
  const warnings: string[] = [];
  parser.on('warn', (w) => warnings.push(w.message));
  parser.push(raw);
  parser.end();
  expect(warnings, raw).toEqual([]);
  return parser.manifest as ParsedManifest;
}

/** Waits until the bridge has appended `count` fragments to a track of `name`. */
export async function appended(
  bridge: HlsBridge,
  name: string,
  kind: 'video' | 'audio',
  count: number,
  options: { withDropped?: boolean } = {},
): Promise<void> {
  await waitFor(
    () => {
      const b = bridge.broadcasts().find((x) => x.name === name);
      const t = b?.tracks.find((x) => x.kind === kind);
      return t !== undefined && t.fragments + (options.withDropped === true ? t.droppedFragments : 0) >= count;
    },
    `${name} ${kind} to reach ${count} fragments${options.withDropped === true ? ' (dropped ones counted)' : ''}`,
    { intervalMs: 1 },
  );
}

/** Waits until a broadcast's tracks are all ended. */
export async function ended(bridge: HlsBridge, name: string): Promise<void> {
  await waitFor(() => bridge.broadcasts().find((x) => x.name === name)?.ended === true, `${name} to end`);
}

/**
 * Each listed segment as "MSN:Discontinuity Sequence Number" (the timeline it is on): matching
 * content in variants must carry matching ones (RFC 8216 6.2.4).
 */
export function timelineOf(m: ParsedManifest): string[] {
  let sequence = m.discontinuitySequence ?? 0;
  return m.segments.map((seg, i) => {
    if (seg.discontinuity) sequence += 1;
    return `${(m.mediaSequence ?? 0) + i}:${sequence}`;
  });
}

/** Lines of a playlist that start with `prefix`. */
export function lines(raw: string, prefix: string): string[] {
  return raw.split('\n').filter((l) => l.startsWith(prefix));
}
