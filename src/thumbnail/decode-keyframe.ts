/**
 * One keyframe decoded on request by a short-lived `H264Decoder` (used where the ladder does not
 * already decode the source): configure, decode the one sample, flush, hand the frame to `use`
 * while it is valid, close.
 */

import { errorMessage, LvqrError } from '../core/errors.ts';
import { H264Decoder, type VideoFramePort, type WebCodecs } from '../webcodecs/index.ts';

/** A source keyframe and what its decoder needs. */
export type KeyframeSample = {
  codec: string;
  /** The `avcC` payload of the init. */
  description: Uint8Array;
  width: number;
  height: number;
  /** The sample: length-prefixed NAL units. */
  data: Uint8Array;
};

/** Decodes `sample` and resolves with what `use` made of its frame (the frame is closed after). */
export async function decodeKeyframe<T>(
  codecs: WebCodecs,
  sample: KeyframeSample,
  use: (frame: VideoFramePort) => Promise<T>,
): Promise<T> {
  let result: { value: T } | undefined;
  let failure: unknown;
  const decoder = new H264Decoder(codecs, {
    codec: sample.codec,
    description: sample.description,
    ...(sample.width > 0 ? { codedWidth: sample.width, codedHeight: sample.height } : {}),
    onFrame: async (frame) => {
      if (result !== undefined) return;
      try {
        result = { value: await use(frame) };
      } catch (error) {
        failure = error;
      }
    },
    onError: (error) => {
      failure ??= error;
    },
  });
  try {
    await decoder.decode({ data: sample.data, timestampUs: 0, durationUs: 0, keyframe: true });
    await decoder.flush();
  } finally {
    decoder.close();
  }
  if (result !== undefined) return result.value;
  throw new LvqrError(
    'codec.decode_failed',
    `thumbnail: the keyframe did not decode${failure === undefined ? '' : `: ${errorMessage(failure)}`}`,
  );
}
