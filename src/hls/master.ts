/**
 * `MasterBuilder`: the master playlist of a broadcast (its own variant, then its visible rungs by
 * bandwidth, with the audio group while it is live) and the EXT-X-RENDITION-REPORTs of its video
 * playlists. Rungs the overload policy hides, rungs without a complete segment, and rungs that
 * ended while their source went on are left out; rungs that ended with their source stay.
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { groupName, type HlsBroadcast } from './broadcast-table.ts';
import type { InitDescription } from './init-description.ts';
import { type MasterVariant, type RenditionReport, renderMasterPlaylist } from './playlist.ts';
import { errorResponse, type HlsResponse, playlistResponse, relativeUri } from './routes.ts';
import type { InitVersion, TrackKind } from './track-media.ts';
import type { TrackWindow } from './window.ts';

/** The broadcasts a master playlist is built from. */
export interface BroadcastLookup {
  /** The broadcast named `name`, or undefined. */
  get(name: string): HlsBroadcast | undefined;
  /** The rungs of `source` that exist now. */
  rungsOf(source: string): readonly HlsBroadcast[];
}

/** What a variant states about its init. */
export interface VariantDescriber {
  /** CODECS and RESOLUTION of `init`'s `kind` track. */
  describe(init: InitVersion, kind: TrackKind): InitDescription;
  /** FRAME-RATE of a video init. */
  frameRate(init: InitVersion): number | undefined;
}

/** Options of a `MasterBuilder`. */
export type MasterBuilderOptions = {
  broadcasts: BroadcastLookup;
  describer: VariantDescriber;
  /** Declared BANDWIDTH of source variants, bits/s, instead of the measured peak. */
  sourceBandwidthBps: number | undefined;
  /** A rung for which this returns true is left out. */
  isRungHidden: (source: string, rendition: string) => boolean;
  logger: Logger;
};

/** Master playlists and rendition reports over a set of broadcasts. */
export class MasterBuilder {
  readonly #broadcasts: BroadcastLookup;
  readonly #describer: VariantDescriber;
  readonly #sourceBandwidthBps: number | undefined;
  readonly #isRungHidden: (source: string, rendition: string) => boolean;
  readonly #logger: Logger;

  /** A builder reading `options.broadcasts`. */
  constructor(options: MasterBuilderOptions) {
    this.#broadcasts = options.broadcasts;
    this.#describer = options.describer;
    this.#sourceBandwidthBps = options.sourceBandwidthBps;
    this.#isRungHidden = options.isRungHidden;
    this.#logger = options.logger;
  }

  /** Whether `b` is listed in a master playlist now: a visible rung, or a source with a published part. */
  listed(b: HlsBroadcast): boolean {
    if (b.origin.kind === 'rendition') return this.#rungVisible(b);
    const main = b.tracks.get('video')?.window ?? b.tracks.get('audio')?.window;
    return main?.latestPart() !== undefined;
  }

  /** EXT-X-RENDITION-REPORTs of a video playlist: the source and every rung in the master, but itself. */
  reports(b: HlsBroadcast): RenditionReport[] {
    const sourceName = groupName(b);
    const members: HlsBroadcast[] = [];
    const source = this.#broadcasts.get(sourceName);
    if (source !== undefined) members.push(source);
    members.push(...this.#visibleRungs(sourceName));
    const reports: RenditionReport[] = [];
    for (const member of members) {
      if (member === b) continue;
      const latest = member.tracks.get('video')?.window.latestPart();
      if (latest === undefined) continue;
      reports.push({
        uri: relativeUri(b.name, member.name, 'playlist.m3u8'),
        lastMsn: latest.msn,
        lastPart: latest.index,
      });
    }
    return reports;
  }

  /** The master playlist answer of `b`, or 404 before it has media. */
  render(b: HlsBroadcast): HlsResponse {
    const video = b.tracks.get('video')?.window;
    const audioWindow = b.tracks.get('audio')?.window;
    const main = video ?? audioWindow;
    if (main === undefined || main.init === undefined || main.latestPart() === undefined) {
      return errorResponse('hls.not_found', `broadcast '${b.name}' has no media yet`);
    }
    // The audio group: this broadcast's audio, while it is live (or everything has ended).
    const audio =
      video !== undefined &&
      audioWindow?.init !== undefined &&
      audioWindow.latestPart() !== undefined &&
      (!audioWindow.ended || video.ended)
        ? audioWindow
        : undefined;
    const audioBitrate = audio?.bitrate();
    const audioCodec = audio?.init === undefined ? undefined : this.#describer.describe(audio.init, 'audio').codec;

    const variant = (w: TrackWindow, uri: string, override: number | undefined): MasterVariant => {
      const init = w.init!;
      const kind = w === audioWindow ? 'audio' : 'video';
      const description = this.#describer.describe(init, kind);
      const rate = w.bitrate();
      const withAudio = kind === 'video' && audio !== undefined;
      const peak = rate.peakBps + (withAudio ? (audioBitrate?.peakBps ?? 0) : 0);
      const average = rate.averageBps + (withAudio ? (audioBitrate?.averageBps ?? 0) : 0);
      const bandwidth = override ?? peak;
      return {
        uri,
        bandwidthBps: bandwidth,
        averageBandwidthBps: Math.min(average, bandwidth),
        codecs: withAudio && audioCodec !== undefined ? [description.codec, audioCodec] : [description.codec],
        width: kind === 'video' ? description.width : undefined,
        height: kind === 'video' ? description.height : undefined,
        frameRate: kind === 'video' ? this.#describer.frameRate(init) : undefined,
        audio: withAudio,
      };
    };

    const sourceVariant = variant(
      main,
      main === video ? 'playlist.m3u8' : 'audio.m3u8',
      b.origin.kind === 'ingest' ? this.#sourceBandwidthBps : undefined,
    );
    const rungs = this.#visibleRungs(b.name)
      .map((rung) =>
        variant(rung.tracks.get('video')!.window, relativeUri(b.name, rung.name, 'playlist.m3u8'), undefined),
      )
      .sort((x, y) => y.bandwidthBps - x.bandwidthBps);
    return playlistResponse(
      renderMasterPlaylist({
        audioUri: audio === undefined ? undefined : 'audio.m3u8',
        variants: [sourceVariant, ...rungs],
      }),
    );
  }

  #rungVisible(b: HlsBroadcast): boolean {
    const origin = b.origin;
    if (origin.kind !== 'rendition') return false;
    const w = b.tracks.get('video')?.window;
    if (w === undefined || w.init === undefined || w.listing().segments.length === 0) return false;
    if (w.ended && !this.#endedWithSource(w, origin.source)) return false;
    try {
      return !this.#isRungHidden(origin.source, origin.rendition);
    } catch (error) {
      this.#logger.warn('isRungHidden threw; showing the rung', { broadcast: b.name, error: errorMessage(error) });
      return true;
    }
  }

  /**
   * Whether an ended rung ended with its source: the source has ended too, and the rung reached
   * the source's last segment (rung and source share media sequence numbers). Such a rung stays listed as long as its
   * playlist is served, so a broadcast opened after its end still offers its whole ladder; a rung
   * that ended while its source went on (a format change left it out) is not listed.
   */
  #endedWithSource(rung: TrackWindow, sourceName: string): boolean {
    const source = this.#broadcasts.get(sourceName);
    const main = source?.tracks.get('video')?.window ?? source?.tracks.get('audio')?.window;
    if (main === undefined || !main.ended) return false;
    return rung.lastCompleteMsn >= main.lastCompleteMsn;
  }

  #visibleRungs(source: string): HlsBroadcast[] {
    return this.#broadcasts.rungsOf(source).filter((rung) => this.#rungVisible(rung));
  }
}
