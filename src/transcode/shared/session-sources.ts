/**
 * One shared decoder per source session, for both ladders: the first rendition of a registry entry
 * creates it, the last one to let go closes it, and a restarted source (a new entry under the same
 * name) gets a new decoder, never its predecessor's.
 */

import type { FragmentMeta } from '../../fragment/fragment.ts';

/** Source sessions remembered (for renditions built later for the same entry). */
const MAX_SESSIONS = 1024;

/** What `SessionSources` needs of a shared decoder. */
export interface SharedSource<Sink> {
  /** Starts feeding `sink`. */
  attach(sink: Sink): void;
  /** Stops feeding `sink`; returns how many sinks remain. */
  detach(sink: Sink): number;
  /** Closes the decoder for good. */
  close(): void;
}

/** A sink's hold on its source's shared decoder. */
export type SessionLease<Source> = {
  readonly source: Source;
  /** Lets go of the decoder (the last sink to let go closes it). */
  release(): void;
};

/** How `SessionSources` makes and retires decoders. */
export type SessionSourcesOptions<Source> = {
  /** A new decoder for `broadcast`, configured from `meta`. */
  create: (broadcast: string, meta: FragmentMeta) => Source;
  /** Called after a decoder is closed. */
  onClosed?: (() => void) | undefined;
};

/** The shared decoders of a ladder, one per source session. */
export class SessionSources<Sink, Source extends SharedSource<Sink>> {
  readonly #options: SessionSourcesOptions<Source>;
  /** The current decoder per source name, with the session token of the entry it serves. */
  readonly #sources = new Map<string, { token: object; source: Source }>();
  /** Every decoder not yet closed (a restarted source may overlap its predecessor briefly). */
  readonly #live = new Set<Source>();
  readonly #sessions = new Map<string, { meta: FragmentMeta; token: object }>();

  /** No decoders yet; `options.create` makes each one on first use. */
  constructor(options: SessionSourcesOptions<Source>) {
    this.#options = options;
  }

  /** The current decoder of `broadcast`, if any. */
  current(broadcast: string): Source | undefined {
    return this.#sources.get(broadcast)?.source;
  }

  /** Every decoder not yet closed. */
  live(): Source[] {
    return [...this.#live];
  }

  /**
   * The session token of a source entry. Every factory builds its transcoder for a new registry
   * entry in one synchronous pass with the same `meta` object, so equal meta = same entry; a
   * restarted source (a new entry under the same name) gets a new token, hence its own decoder.
   */
  session(broadcast: string, meta: FragmentMeta): object {
    const last = this.#sessions.get(broadcast);
    if (last !== undefined && last.meta === meta) return last.token;
    const token = {};
    this.#sessions.delete(broadcast);
    this.#sessions.set(broadcast, { meta, token });
    while (this.#sessions.size > MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!);
    return token;
  }

  /** The decoder of `broadcast` for session `token` (created on first use), held by `sink`. */
  attach(broadcast: string, token: object, meta: FragmentMeta, sink: Sink): SessionLease<Source> {
    let entry = this.#sources.get(broadcast);
    if (entry === undefined || entry.token !== token) {
      // A new session never shares a decoder with the (possibly still finishing) previous one.
      const source = this.#options.create(broadcast, meta);
      entry = { token, source };
      this.#sources.set(broadcast, entry);
      this.#live.add(source);
    }
    const { source } = entry;
    source.attach(sink);
    return { source, release: () => this.#release(broadcast, source, sink) };
  }

  /** Drops a sink; the last one closes the decoder. */
  #release(broadcast: string, source: Source, sink: Sink): void {
    if (source.detach(sink) > 0) return;
    const entry = this.#sources.get(broadcast);
    if (entry?.source === source) {
      this.#sources.delete(broadcast);
      if (this.#sessions.get(broadcast)?.token === entry.token) this.#sessions.delete(broadcast);
    }
    this.#live.delete(source);
    source.close();
    this.#options.onClosed?.();
  }
}
