/**
 * `MasterBuilder`: the master playlist of a broadcast (its own variant, then its visible rungs by
 * bandwidth) and the EXT-X-RENDITION-REPORTs of its video playlists. Audio groups: the source's
 * own audio (`audio`, while it is live), and one group per audio-only rung (the audio ladder's
 * renditions, one per codec and bitrate). A rung's variant references the AAC group `rungAudio`
 * names for it (its audio bitrate), else the source's audio; every video variant is then listed a
 * second time per Opus group, after all the others. BANDWIDTH counts the audio a variant
 * references. Rungs the overload policy hides, rungs without a complete segment, and rungs that
 * ended while their source went on are left out; rungs that ended with their source stay.
 * No two video variants of one listing have the same resolution: a rung at the source's size
 * (encoded because the source's bitrate is above the rung's) takes the source variant's place.
 */

import { errorMessage } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Bitrate } from './bitrate.ts';
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
  /**
   * The audio rendition (an audio-only rung of the same source) whose group the video rung
   * `rendition` references; while it has no playable segment, or without one, the source's audio.
   */
  rungAudio: (source: string, rendition: string) => string | undefined;
  logger: Logger;
};

/** GROUP-ID of a source's own audio. */
const SOURCE_AUDIO_GROUP = 'audio';
/** CODECS of Opus (RFC 6381 registry, lower case as hls.js expects). */
const OPUS_CODEC = 'opus';

/** The rendition name of a rung, undefined for a source. */
function renditionOf(b: HlsBroadcast): string | undefined {
  return b.origin.kind === 'rendition' ? b.origin.rendition : undefined;
}

/** An audio group as the master uses it. */
type AudioGroup = { id: string; name: string; uri: string; codec: string; bitrate: Bitrate };

/** Master playlists and rendition reports over a set of broadcasts. */
export class MasterBuilder {
  readonly #broadcasts: BroadcastLookup;
  readonly #describer: VariantDescriber;
  readonly #sourceBandwidthBps: number | undefined;
  readonly #isRungHidden: (source: string, rendition: string) => boolean;
  readonly #rungAudio: (source: string, rendition: string) => string | undefined;
  readonly #logger: Logger;

  /** A builder reading `options.broadcasts`. */
  constructor(options: MasterBuilderOptions) {
    this.#broadcasts = options.broadcasts;
    this.#describer = options.describer;
    this.#sourceBandwidthBps = options.sourceBandwidthBps;
    this.#isRungHidden = options.isRungHidden;
    this.#rungAudio = options.rungAudio;
    this.#logger = options.logger;
  }

  /** Whether `b` is listed in a master playlist now: a visible rung, or a source with a complete segment. */
  listed(b: HlsBroadcast): boolean {
    if (b.origin.kind === 'rendition') return this.#rungVisible(b) || this.#audioVisible(b);
    const video = b.tracks.get('video')?.window;
    const main = video ?? b.tracks.get('audio')?.window;
    if (main === undefined || !playable(main)) return false;
    return (
      video?.init === undefined ||
      !this.#visibleRungs(b.name).some((r) => this.#sameSize(r.tracks.get('video')!.window, video))
    );
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

  /**
   * The master playlist answer of `b`, or 404 before its first complete segment: hls.js stops with
   * a fatal `levelEmptyError` on a media playlist that lists parts but no segment yet.
   */
  render(b: HlsBroadcast): HlsResponse {
    const video = b.tracks.get('video')?.window;
    const audioWindow = b.tracks.get('audio')?.window;
    const main = video ?? audioWindow;
    if (main === undefined || !playable(main)) {
      return errorResponse('hls.not_found', `broadcast '${b.name}' has no complete segment yet`);
    }
    // The source's own audio group: its audio, while it is live (or everything has ended).
    const sourceAudio =
      video !== undefined &&
      audioWindow?.init !== undefined &&
      audioWindow.latestPart() !== undefined &&
      (!audioWindow.ended || video.ended)
        ? this.#group(audioWindow, SOURCE_AUDIO_GROUP, 'main', 'audio.m3u8')
        : undefined;
    // The audio ladder's renditions (audio-only rungs), when the source has video to pair them with.
    const renditions =
      video === undefined
        ? []
        : this.#visibleAudio(b.name).map((a) =>
            this.#group(
              a.tracks.get('audio')!.window,
              renditionOf(a) ?? a.name,
              undefined,
              relativeUri(b.name, a.name, 'audio.m3u8'),
            ),
          );
    const opus = renditions.filter((g) => g.codec === OPUS_CODEC);
    const referenced: AudioGroup[] = [];

    const variant = (
      w: TrackWindow,
      uri: string,
      override: number | undefined,
      audio: AudioGroup | undefined,
    ): MasterVariant => {
      const init = w.init!;
      const kind = w === audioWindow ? 'audio' : 'video';
      const description = this.#describer.describe(init, kind);
      const rate = w.bitrate();
      const withAudio = kind === 'video' ? audio : undefined;
      if (withAudio !== undefined && !referenced.includes(withAudio)) referenced.push(withAudio);
      const peak = rate.peakBps + (withAudio?.bitrate.peakBps ?? 0);
      const average = rate.averageBps + (withAudio?.bitrate.averageBps ?? 0);
      const bandwidth = override ?? peak;
      return {
        uri,
        bandwidthBps: bandwidth,
        averageBandwidthBps: Math.min(average, bandwidth),
        codecs: withAudio === undefined ? [description.codec] : [description.codec, withAudio.codec],
        width: kind === 'video' ? description.width : undefined,
        height: kind === 'video' ? description.height : undefined,
        frameRate: kind === 'video' ? this.#describer.frameRate(init) : undefined,
        audioGroup: withAudio?.id,
      };
    };
    /** The AAC group a rung's audio bitrate selects, else the source's audio. */
    const rungAudio = (rendition: string): AudioGroup | undefined => {
      const name = this.#rungAudio(b.name, rendition);
      return renditions.find((g) => g.id === name && g.codec !== OPUS_CODEC) ?? sourceAudio;
    };

    const sourceBandwidth = b.origin.kind === 'ingest' ? this.#sourceBandwidthBps : undefined;
    const sourceUri = main === video ? 'playlist.m3u8' : 'audio.m3u8';
    // Rungs by bandwidth (video and the audio it references), highest first.
    const rungBps = (rung: HlsBroadcast): number =>
      rung.tracks.get('video')!.window.bitrate().peakBps + (rungAudio(renditionOf(rung) ?? '')?.bitrate.peakBps ?? 0);
    const rungs = this.#visibleRungs(b.name).sort((x, y) => rungBps(y) - rungBps(x));
    const sourceSized =
      video !== undefined && rungs.some((rung) => this.#sameSize(rung.tracks.get('video')!.window, video));
    const listing = (audio: (rendition: string | undefined) => AudioGroup | undefined): MasterVariant[] => [
      ...(sourceSized ? [] : [variant(main, sourceUri, sourceBandwidth, audio(undefined))]),
      ...rungs.map((rung) =>
        variant(
          rung.tracks.get('video')!.window,
          relativeUri(b.name, rung.name, 'playlist.m3u8'),
          undefined,
          audio(renditionOf(rung)),
        ),
      ),
    ];
    // AAC (and the source's audio) first: players without Opus (Safari's native HLS) pick from these.
    const variants = listing((rendition) => (rendition === undefined ? sourceAudio : rungAudio(rendition)));
    if (video !== undefined) for (const group of opus) variants.push(...listing(() => group));
    return playlistResponse(
      renderMasterPlaylist({
        audioGroups: referenced.map((g) => ({ id: g.id, name: g.name, uri: g.uri })),
        variants,
      }),
    );
  }

  /** Whether two video windows have the same picture size. */
  #sameSize(a: TrackWindow, b: TrackWindow): boolean {
    const x = this.#describer.describe(a.init!, 'video');
    const y = this.#describer.describe(b.init!, 'video');
    return x.width !== undefined && x.width === y.width && x.height === y.height;
  }

  #group(window: TrackWindow, id: string, name: string | undefined, uri: string): AudioGroup {
    return {
      id,
      name: name ?? id,
      uri,
      codec: this.#describer.describe(window.init!, 'audio').codec,
      bitrate: window.bitrate(),
    };
  }

  /** Whether `b` is an audio-only rung (an audio ladder rendition) with a playable segment. */
  #audioVisible(b: HlsBroadcast): boolean {
    const origin = b.origin;
    if (origin.kind !== 'rendition' || b.tracks.has('video')) return false;
    const w = b.tracks.get('audio')?.window;
    if (w === undefined || !playable(w)) return false;
    return !w.ended || this.#endedWithSource(w, origin.source);
  }

  #visibleAudio(source: string): HlsBroadcast[] {
    return this.#broadcasts.rungsOf(source).filter((a) => this.#audioVisible(a));
  }

  #rungVisible(b: HlsBroadcast): boolean {
    const origin = b.origin;
    if (origin.kind !== 'rendition') return false;
    const w = b.tracks.get('video')?.window;
    if (w === undefined || !playable(w)) return false;
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

/** Whether a player can start on `w`: it has an init and its playlist lists a complete segment. */
function playable(w: TrackWindow): boolean {
  return w.init !== undefined && w.listing().segments.length > 0;
}
