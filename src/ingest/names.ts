/** Broadcast name rules: `[A-Za-z0-9_-]` segments joined by `/`, no empty or dot segments, bounded. */

import { LvqrError } from '../core/errors.ts';

/** Longest broadcast name accepted. */
export const MAX_BROADCAST_NAME_LENGTH = 200;
/** Most `/`-separated segments accepted. */
export const MAX_BROADCAST_SEGMENTS = 8;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/** Returns `name` if valid, else throws `LvqrError('ingest.bad_name')` saying what is wrong. */
export function validateBroadcastName(name: string): string {
  const fail = (why: string): never => {
    throw new LvqrError('ingest.bad_name', `invalid broadcast name ${JSON.stringify(name.slice(0, 64))}: ${why}`);
  };
  if (name.length === 0) fail('it is empty');
  if (name.length > MAX_BROADCAST_NAME_LENGTH) fail(`longer than ${MAX_BROADCAST_NAME_LENGTH} characters`);
  const segments = name.split('/');
  if (segments.length > MAX_BROADCAST_SEGMENTS) fail(`more than ${MAX_BROADCAST_SEGMENTS} segments`);
  for (const segment of segments) {
    if (segment === '') fail('empty segment (leading, trailing or double slash)');
    if (!SEGMENT.test(segment)) fail(`segment ${JSON.stringify(segment)} may only contain A-Z a-z 0-9 _ -`);
  }
  return name;
}
