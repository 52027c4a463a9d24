/**
 * What the video ladder (../ladder/) and the audio ladder (../audio/) share, one job per file:
 * session-sources.ts (one shared decoder per source session, leased by its renditions) ->
 * task-chain.ts (the decoder's ordered tasks, each fragment decoded once) -> source-feed.ts (a
 * rendition's lease, init and back-pressure) -> drain-queue.ts (a rendition's work queue and its
 * waiters) -> output-claim.ts (the output's name in the registry).
 *
 * Back-pressure: a rendition's `onFragment` waits while its queue is above its soft limit
 * (`SourceFeed`). Errors: a failing decoder task is reported to its owner and never poisons the
 * chain; an output name held by a publisher is refused, never written into.
 *
 * Not here: codecs, planning, timing and CMAF packaging (each ladder keeps its own).
 */

export { DrainQueue } from './drain-queue.ts';
export { OutputClaim, type OutputClaimOptions } from './output-claim.ts';
export { type SessionLease, SessionSources, type SessionSourcesOptions, type SharedSource } from './session-sources.ts';
export { type FedSource, type FeedQueue, SourceFeed } from './source-feed.ts';
export { TaskChain } from './task-chain.ts';
