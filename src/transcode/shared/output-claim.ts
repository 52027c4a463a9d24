/**
 * A rendition output's hold on its name in the registry: it keeps its own broadcaster, never writes
 * into a publisher's broadcast, and ends a previous session's output of the same name before
 * publishing its own.
 */

import type { FragmentBroadcaster } from '../../fragment/broadcaster.ts';
import type { FragmentMeta } from '../../fragment/fragment.ts';
import type { FragmentBroadcasterRegistry } from '../../fragment/registry.ts';

/** Whose output a claim is for. */
export type OutputClaimOptions = {
  registry: FragmentBroadcasterRegistry;
  /** Source broadcast name. */
  source: string;
  /** Rendition name. */
  rendition: string;
  /** Told why the output cannot be published (its name is taken by a publisher). */
  onRefused: (message: string) => void;
};

/** The broadcaster of one rendition output under `<source>/<rendition>`, track `track`. */
export class OutputClaim {
  /** `<source>/<rendition>`. */
  readonly name: string;
  readonly #options: OutputClaimOptions;
  readonly #track: string;
  readonly #transcoder: string;
  #output: FragmentBroadcaster | undefined;

  /** A claim not yet made, for an output of `transcoder` on `track`. */
  constructor(options: OutputClaimOptions, track: string, transcoder: string) {
    this.#options = options;
    this.#track = track;
    this.#transcoder = transcoder;
    this.name = `${options.source}/${options.rendition}`;
  }

  /** The broadcaster published to, while the name is held. */
  get output(): FragmentBroadcaster | undefined {
    return this.#output;
  }

  /**
   * Publishes `meta` under the name: on the broadcaster already held while the registry keeps it
   * open, else on a new rendition broadcaster (a previous session's output of that name is removed
   * first). Returns true when a new broadcaster was taken; false when the held one was kept, or
   * when a publisher owns the name (then nothing is held and `onRefused` is told).
   */
  claim(meta: FragmentMeta): boolean {
    const { registry, source, rendition } = this.#options;
    const existing = registry.get(this.name, this.#track);
    if (existing !== undefined && existing === this.#output && !existing.closed) {
      existing.setMeta(meta);
      return false;
    }
    if (existing !== undefined) {
      if (existing.origin.kind !== 'rendition') {
        // A publisher owns that name: never write into its broadcast.
        this.#options.onRefused(`output ${this.name} is taken by a published broadcast`);
        this.#output = undefined;
        return false;
      }
      // The output of a previous session of this source (a restart while its renditions still
      // finish): end it here, so its late fragments can never follow ours in one broadcaster.
      registry.remove(this.name, this.#track);
    }
    this.#output = registry.getOrCreate(this.name, this.#track, meta, {
      origin: { kind: 'rendition', source, rendition, transcoder: this.#transcoder },
    });
    if (this.#output.meta !== meta) this.#output.setMeta(meta);
    return true;
  }

  /** Lets go of the name (ENDLIST downstream when the registry still holds our broadcaster). */
  release(): void {
    this.#letGo(false);
  }

  /**
   * Lets go of the name and withdraws what was published under it: downstream drops it instead of
   * ending it (the HLS layer stops serving it at once).
   */
  withdraw(): void {
    this.#letGo(true);
  }

  #letGo(withdraw: boolean): void {
    const registry = this.#options.registry;
    const output = this.#output;
    this.#output = undefined;
    if (output === undefined || registry.get(this.name, this.#track) !== output) return;
    if (withdraw) output.withdraw();
    registry.remove(this.name, this.#track);
  }
}
