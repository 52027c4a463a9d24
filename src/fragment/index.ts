/**
 * Fragment model and fan-out: `Fragment`, `FragmentMeta`, `FragmentBroadcaster` and the
 * `FragmentBroadcasterRegistry` every ingest produces into and every egress subscribes through.
 *
 * Back-pressure: `emit` never blocks or awaits. Each subscriber has its own bounded queue
 * (fragments and bytes). A subscriber that falls behind loses the oldest whole GOP (or everything,
 * then waits for the next independent fragment), reads the count from `lagged`, and never resumes
 * in the middle of a GOP. The live datapath is never blocked by a slow consumer.
 *
 * Init segments: a subscriber reads meta changes in stream order (`meta`, `metaVersion`), can wait
 * for the first init (`waitForInit`), and the broadcaster notifies listeners (`onMeta`).
 *
 * Not a history buffer: a subscriber sees fragments emitted after it subscribed.
 */

export {
  type BroadcasterOptions,
  type BroadcastOrigin,
  DEFAULT_SUBSCRIBER_CAPACITY,
  DEFAULT_SUBSCRIBER_MAX_BYTES,
  FragmentBroadcaster,
  FragmentSubscription,
  type SubscribeOptions,
} from './broadcaster.ts';
export {
  AUDIO_TRACK,
  createFragment,
  createMeta,
  type Fragment,
  FragmentFlags,
  type FragmentMeta,
  VIDEO_TRACK,
} from './fragment.ts';
export {
  type EntryCallback,
  FragmentBroadcasterRegistry,
  type GetOrCreateOptions,
  type RegistryOptions,
} from './registry.ts';
