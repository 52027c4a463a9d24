/**
 * The frame scaler (`--transcode-scaler quality`): each decoded frame copied once into its source's
 * shared WebAssembly memory and scaled for every rung at once (bicubic for the largest rung, then
 * Lanczos-3 down the ladder) by SIMD kernels (wasm/scaler.ts) in worker threads the runtime starts.
 */

export { createScalerExecutor, type ScalerExecutor } from './executor.ts';
export {
  BICUBIC,
  horizontalTables,
  type Kernel,
  LANCZOS3,
  resampleTaps,
  type Taps,
  verticalTables,
} from './filters.ts';
export { FrameScaler, type FrameScalerOptions } from './frame-scaler.ts';
export { PendingPicture } from './picture.ts';
export { type PicturePlanes, type PlaneSpan, planScaler, runOrder, type ScalerPlan, type Size } from './program.ts';
export { ScalerThread, type ScalerWorker, type StartWorker, scalerKernels, scalerThread } from './thread.ts';
