/**
 * Worker threads for code below the runtime layer (the frame scaler): `startWorkerThread` runs a
 * setup function's source in a new thread and wires its messages (Node, Bun and Deno all provide
 * `node:worker_threads`).
 */

import { Worker } from 'node:worker_threads';
import type { ScalerWorker, StartWorker } from '../webcodecs/scaler/index.ts';

/** Starts a thread that runs `setup` (`(data, reply) => onMessage`) with `data`. */
export const startWorkerThread: StartWorker = (setup, { name, data }): ScalerWorker => {
  const code = `import('node:worker_threads').then(({ parentPort, workerData }) => {
  const onMessage = (${setup})(workerData, (message) => parentPort.postMessage(message));
  parentPort.on('message', onMessage);
});`;
  const worker = new Worker(code, { eval: true, name, workerData: data });
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (listener) => {
      worker.on('message', listener);
    },
    onEnd: (listener) => {
      worker.on('error', (error: Error) => listener(`failed: ${error.message}`));
      worker.on('exit', (code: number) => listener(`exited (${code})`));
    },
    ref: () => worker.ref(),
    unref: () => worker.unref(),
    terminate: () => {
      void worker.terminate();
    },
  };
};
