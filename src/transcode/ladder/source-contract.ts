/**
 * The contract between a source's shared decoder and its rungs: what the decoder needs of each
 * rung it feeds (`RungSink`), and what a rung needs of its source's decoder (`DecodedSource`).
 */

import type { Fragment, FragmentMeta } from '../../fragment/fragment.ts';
import type { PictureSize, VideoFrameLike } from '../codecs.ts';
import type { RenditionSpec } from '../rendition.ts';
import type { FrameMeta, SourceFormat } from './frames.ts';
import type { LoadSampled } from './load.ts';
import type { RungLoadState } from './overload.ts';
import type { SourceVideo } from './plan.ts';
import type { GopBitrate } from './source-bitrate.ts';

/** What the shared decoder needs of each rung it feeds. */
export interface RungSink extends LoadSampled {
  readonly rendition: RenditionSpec;
  /** Load state under the overload policy. */
  readonly loadState: RungLoadState;
  /** True from an encoder failure until the rung's next encoder session publishes output. */
  readonly failed: boolean;
  /**
   * The picture size the rung encodes frames at next; undefined when it encodes none (its
   * rendition does not fit the source, or the source variant serves it).
   */
  readonly pictureSize: PictureSize | undefined;
  /** A frame (a clone, or a picture scaled to `pictureSize`) the rung now owns (and must close). */
  enqueue(frame: VideoFrameLike, meta: FrameMeta): void;
  /** The source switched to a new init after the frames enqueued so far. */
  enqueueFormat(format: SourceFormat): void;
  /** Counts source frames the rung did not get. */
  countDropped(frames: number): void;
  /** Resolves once the rung's queue is below `limit` (or the rung stops). */
  waitForRoom(limit: number): Promise<void>;
  /** Frames (and markers) in the rung's queue now. */
  readonly queuedFrames: number;
  /** Gives every frame waiting in the rung's queue a new handle (called before each collection). */
  renewFrameHandles(): void;
}

/** What a rung needs of its source's decoder. */
export interface DecodedSource {
  /** Source picture size and stated frame rate. */
  readonly video: SourceVideo;
  /** The source frame rate: the meta's (measured once at ingest), else the one the init states. */
  frameRate(): number | undefined;
  /** Resolves once the frame rate is trustworthy (or the source ends, or `maxMs` passes). */
  frameRateSettled(maxMs?: number): Promise<void>;
  /** The video bitrate of the current format's first GOP (decided before its frames reach the rungs). */
  readonly bitrate: Pick<GopBitrate, 'bps' | 'partialBps' | 'seconds'>;
  /** Decodes `fragment` unless another rung already submitted it. */
  submit(fragment: Fragment, init: Uint8Array | undefined): Promise<void>;
  /** Switches to a new init once; later calls for it are no-ops. */
  reconfigure(meta: FragmentMeta): Promise<void>;
  /** Flushes the decoder once at the end of the source. */
  finish(): Promise<void>;
}
