/** The one internal media type: every ingest produces `Fragment`s, every egress consumes them. */

/** Sample-level flags of a fragment. */
export type FragmentFlags = {
  /** Starts with a sync sample (IDR for video). */
  readonly keyframe: boolean;
  /** Decodable without earlier fragments (keyframes, and every audio fragment). */
  readonly independent: boolean;
  /** May be dropped without breaking later fragments. */
  readonly discardable: boolean;
};

/** Flag presets, as in LVQR. */
export const FragmentFlags = {
  KEYFRAME: { keyframe: true, independent: true, discardable: false },
  AUDIO: { keyframe: false, independent: true, discardable: false },
  DELTA_DISCARDABLE: { keyframe: false, independent: false, discardable: true },
  DELTA: { keyframe: false, independent: false, discardable: false },
} as const satisfies Record<string, FragmentFlags>;

/** One CMAF chunk (`moof`+`mdat`) of one track, with timing in the track timescale. */
export type Fragment = {
  /** Track id, `0.mp4` (video) or `1.mp4` (audio). */
  readonly trackId: string;
  /** Group (GOP / segment) sequence number. */
  readonly groupId: number;
  /** Object index within the group. */
  readonly objectId: number;
  /** Delivery priority (0 = highest). */
  readonly priority: number;
  /** Decode time of the first sample, in timescale ticks. */
  readonly dts: number;
  /** Presentation time of the first sample, in timescale ticks. */
  readonly pts: number;
  /** Total duration of the samples, in timescale ticks. */
  readonly duration: number;
  readonly flags: FragmentFlags;
  /** One `moof`+`mdat` (shared, never mutated after emit). */
  readonly payload: Uint8Array;
  /** Wall-clock ms when the bytes of this fragment arrived at ingest (0 if unknown). */
  readonly ingestTimeMs: number;
};

/** Builds a fragment; `ingestTimeMs` defaults to 0 as in LVQR. */
export function createFragment(fields: Omit<Fragment, 'ingestTimeMs'> & { ingestTimeMs?: number }): Fragment {
  return { ...fields, ingestTimeMs: fields.ingestTimeMs ?? 0 };
}

/** Track-level metadata: codec string, timescale and the init segment (`ftyp`+`moov`) once known. */
export type FragmentMeta = {
  /** RFC 6381 codec string, e.g. `avc1.64001f` or `mp4a.40.2`. */
  readonly codec: string;
  /** Ticks per second of every timestamp on this track. */
  readonly timescale: number;
  /** The init segment, or undefined until the producer has one. */
  readonly initSegment: Uint8Array | undefined;
  /**
   * Video frames per second, measured once where the stream enters (the container parser): what
   * the init states, else from the durations of the first samples. Undefined for audio and until
   * known; a producer that learns it after publishing this meta fills it in on this same object
   * (the same init, so no meta change and no new version). Read it here; never re-estimate it.
   */
  readonly frameRate?: number;
};

/** Builds track metadata. */
export function createMeta(codec: string, timescale: number, initSegment?: Uint8Array): FragmentMeta {
  return { codec, timescale, initSegment };
}

/** Video and audio track ids, as in LVQR. */
export const VIDEO_TRACK = '0.mp4';
export const AUDIO_TRACK = '1.mp4';
