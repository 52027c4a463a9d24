/**
 * The admin API, on only with `--admin-token` (404 otherwise): `GET`, `PUT` and `DELETE
 * /api/v1/broadcasts/<broadcast>/ladder` with `Authorization: Bearer <admin token>` (401 without,
 * 403 wrong). `PUT` takes a JSON list of renditions (LVQR fields), or `{ "ladder": [...] }`,
 * validated like a rendition file; while the broadcast is live a rung taller or wider than its
 * source is refused. A change to a live broadcast's ladder applies at its next source keyframe.
 */

import { type Context, Hono, type Next } from 'hono';
import { errorMessage, LvqrError } from '../core/errors.ts';
import { ladderFromJsonValue } from '../events/index.ts';
import { constantTimeEqual, validateBroadcastName } from '../ingest/index.ts';
import { planLadder } from '../transcode/ladder/index.ts';
import { errorResponse, jsonError } from './errors.ts';
import { ladderToJson, type StreamLadders } from './stream-ladders.ts';

/** What the admin routes need. */
export type AdminRoutesDeps = {
  /** The admin token; the routes answer 404 without one. */
  token: string | undefined;
  ladders: StreamLadders;
  /** The decoded size of a live source, if known. */
  sourceSize: (broadcast: string) => { width: number; height: number } | undefined;
  /** Applies the ladder now set for the live broadcast `broadcast` (at its next source keyframe). */
  replan: (broadcast: string) => void;
};

const PREFIX = '/api/v1/broadcasts/';
const SUFFIX = '/ladder';
/** Largest PUT body, bytes. */
const MAX_BODY_BYTES = 64 * 1024;

/** The `/api/v1/broadcasts/<broadcast>/ladder` routes. */
export function adminRoutes(deps: AdminRoutesDeps): Hono {
  const routes = new Hono();
  const handle = async (c: Context, next: Next): Promise<Response | undefined> => {
    const path = c.req.path;
    if (!path.startsWith(PREFIX) || !path.endsWith(SUFFIX)) {
      await next();
      return undefined;
    }
    if (deps.token === undefined) return jsonError('not_found', 'the admin API is off (start with --admin-token)');
    const header = c.req.header('authorization');
    if (header === undefined || !header.startsWith('Bearer ')) {
      return jsonError('admin.unauthorized', 'the admin API needs Authorization: Bearer <admin token>');
    }
    if (!constantTimeEqual(header.slice(7).trim(), deps.token)) {
      return jsonError('admin.forbidden', 'the bearer token is not the admin token');
    }
    const broadcast = path.slice(PREFIX.length, -SUFFIX.length);
    try {
      validateBroadcastName(broadcast);
      if (c.req.method === 'PUT') return await put(c, broadcast);
      if (c.req.method === 'DELETE' && deps.ladders.delete(broadcast)) {
        const live = deps.ladders.isActive(broadcast);
        if (live) deps.replan(broadcast);
        return c.json({ ...describe(broadcast), appliesAt: live ? 'next keyframe' : 'publish' });
      }
      return c.json(describe(broadcast));
    } catch (error) {
      return errorResponse(error);
    }
  };

  const describe = (broadcast: string): Record<string, unknown> => {
    const { ladder, origin } = deps.ladders.configured(broadcast);
    return {
      broadcast,
      origin,
      ladder: ladderToJson(ladder),
      active: deps.ladders.isActive(broadcast) ? ladderToJson(deps.ladders.active(broadcast)) : null,
    };
  };

  const put = async (c: Context, broadcast: string): Promise<Response> => {
    const text = await readBody(c);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new LvqrError('admin.bad_request', `the body is not JSON (${errorMessage(error)})`);
    }
    const list = Array.isArray(raw) ? raw : (raw as { ladder?: unknown } | null)?.ladder;
    const ladder = ladderFromJsonValue(list);
    const size = deps.sourceSize(broadcast);
    if (size !== undefined) {
      const upscale = planLadder({ width: size.width, height: size.height, frameRate: undefined }, ladder).skipped;
      const [first] = upscale;
      if (first !== undefined) {
        throw new LvqrError(
          'rendition.invalid',
          `ladder: rendition ${JSON.stringify(first.rendition.name)} would upscale the ${size.width}x${size.height} source (${first.reason})`,
        );
      }
    }
    deps.ladders.set(broadcast, ladder, 'api');
    const live = deps.ladders.isActive(broadcast);
    if (live) deps.replan(broadcast);
    return c.json({ ...describe(broadcast), appliesAt: live ? 'next keyframe' : 'publish' });
  };

  routes.on(['GET', 'PUT', 'DELETE'], `${PREFIX}*`, handle);
  return routes;
}

async function readBody(c: Context): Promise<string> {
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > MAX_BODY_BYTES) {
    throw new LvqrError('admin.bad_request', `the body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  const text = await c.req.text();
  if (text.length > MAX_BODY_BYTES) {
    throw new LvqrError('admin.bad_request', `the body is larger than ${MAX_BODY_BYTES} bytes`);
  }
  return text;
}
