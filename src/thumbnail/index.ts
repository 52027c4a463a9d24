/**
 * Thumbnails: the newest source keyframe of each ingest broadcast as a small JPEG. Pictures come
 * from the ladder's keyframe tap where the ladder decodes the source, else from a short-lived
 * decoder of the newest keyframe sample; renders happen on request, at most once a second per
 * broadcast and width, and are shared by concurrent requests. Pixels are box-filtered and
 * converted in JS; `@napi-rs/canvas` encodes the JPEG.
 */

export type { KeyframeSample } from './decode-keyframe.ts';
export {
  DEFAULT_THUMBNAIL_WIDTH,
  MAX_THUMBNAIL_WIDTH,
  MIN_THUMBNAIL_WIDTH,
  type RgbaImage,
  thumbnailSize,
  thumbnailWidth,
} from './picture.ts';
export {
  type Thumbnail,
  type ThumbnailAnswer,
  type ThumbnailStatus,
  ThumbnailStore,
  type ThumbnailStoreOptions,
} from './store.ts';
