/**
 * `GET /hls/<broadcast>/thumbnail.jpg[?width=N]`: the newest source keyframe of a broadcast as a
 * JPEG, answered beside the HLS layer's files (same CORS, same error bodies). `width` must be a
 * positive integer; it is clamped to the thumbnail range and made even, and the height follows the
 * source's aspect ratio. 404 `hls.not_found` until the broadcast's first keyframe; 400
 * `hls.bad_request` for a width that is not a positive integer.
 */

import { errorResponse, type HlsResponse, splitHlsPath } from '../hls/index.ts';
import { DEFAULT_THUMBNAIL_WIDTH, type ThumbnailAnswer, thumbnailWidth } from '../thumbnail/index.ts';
import type { HlsHandler } from './hls-routes.ts';

/** The file name of a broadcast's thumbnail. */
export const THUMBNAIL_FILE = 'thumbnail.jpg';

/** What the route needs of the thumbnail store. */
export interface ThumbnailSource {
  thumbnail(broadcast: string, width: number): Promise<ThumbnailAnswer>;
}

/** The playback-token check of the HLS layer (`HlsBridge.authorize`): undefined when allowed. */
export type AuthorizeHls = (path: string, query: URLSearchParams) => Promise<HlsResponse | undefined>;

/**
 * `hls` with `/hls/<broadcast>/thumbnail.jpg` answered from `thumbnails`, after the same
 * playback-token check as every other file under `/hls/`.
 */
export function withThumbnails(hls: HlsHandler, thumbnails: ThumbnailSource, authorize: AuthorizeHls): HlsHandler {
  return {
    handle(path, query, signal) {
      if (!path.endsWith(`/${THUMBNAIL_FILE}`)) return hls.handle(path, query, signal);
      const split = splitHlsPath(path);
      if (split === undefined || split.file !== THUMBNAIL_FILE) return hls.handle(path, query, signal);
      return authorize(path, query).then(
        (refused) => refused ?? thumbnailResponse(thumbnails, split.broadcast, query.get('width')),
      );
    },
  };
}

async function thumbnailResponse(
  thumbnails: ThumbnailSource,
  broadcast: string,
  widthParam: string | null,
): Promise<HlsResponse> {
  let width = DEFAULT_THUMBNAIL_WIDTH;
  if (widthParam !== null) {
    if (!/^[1-9][0-9]{0,8}$/.test(widthParam)) {
      return errorResponse('hls.bad_request', `width must be a positive integer, got ${JSON.stringify(widthParam)}`);
    }
    width = thumbnailWidth(Number(widthParam));
  }
  const answer = await thumbnails.thumbnail(broadcast, width);
  if ('missing' in answer) return errorResponse('hls.not_found', answer.missing);
  const { thumbnail } = answer;
  return {
    status: 200,
    headers: {
      'Access-Control-Allow-Origin': '*',
      'Content-Type': 'image/jpeg',
      'Cache-Control': 'no-cache, max-age=1',
      'Last-Modified': new Date(thumbnail.renderedAtMs).toUTCString(),
    },
    body: thumbnail.jpeg,
  };
}
