/**
 * A scaled picture still being made. The ladder queues it like a frame (it has a timestamp, and
 * clone/close); the encoder binding awaits `picture()` before encoding. Closing every handle
 * before the scaler reaches it saves the scaling; closing it after releases the frame.
 */

import type { VideoFramePort } from '../port.ts';

type State = {
  frame: VideoFramePort | undefined;
  error: Error | undefined;
  settled: boolean;
  handles: number;
  waiters: Array<() => void>;
};

export class PendingPicture {
  readonly timestamp: number;
  readonly #state: State;
  #closed = false;

  private constructor(timestamp: number, state: State) {
    this.timestamp = timestamp;
    this.#state = state;
    state.handles += 1;
  }

  /** A picture for `timestamp`, and the producer's side: `settle`, and whether it is still `wanted`. */
  static create(timestamp: number): {
    picture: PendingPicture;
    settle: (result: VideoFramePort | Error) => void;
    wanted: () => boolean;
  } {
    const state: State = { frame: undefined, error: undefined, settled: false, handles: 0, waiters: [] };
    const picture = new PendingPicture(timestamp, state);
    return {
      picture,
      wanted: () => state.handles > 0 && !state.settled,
      settle: (result) => {
        if (state.settled) {
          if (!(result instanceof Error)) result.close();
          return;
        }
        state.settled = true;
        if (result instanceof Error) state.error = result;
        else if (state.handles === 0) result.close();
        else state.frame = result;
        for (const wake of state.waiters.splice(0)) wake();
      },
    };
  }

  /** The scaled frame (owned by this picture: closed with its last handle). */
  async picture(): Promise<VideoFramePort> {
    const state = this.#state;
    if (!state.settled) await new Promise<void>((resolve) => state.waiters.push(resolve));
    if (this.#closed) throw new Error('the picture was closed');
    if (state.error !== undefined) throw state.error;
    return state.frame!;
  }

  clone(): PendingPicture {
    if (this.#closed) throw new Error('the picture was closed');
    return new PendingPicture(this.timestamp, this.#state);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const state = this.#state;
    state.handles -= 1;
    if (state.handles === 0 && state.frame !== undefined) {
      state.frame.close();
      state.frame = undefined;
    }
  }
}
