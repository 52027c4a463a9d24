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
export { ScalerThread, scalerKernels, scalerThread } from './thread.ts';
