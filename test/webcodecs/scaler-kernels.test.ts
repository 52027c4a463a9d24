/**
 * The scaler's WebAssembly kernels against a floating-point evaluation of the same filters, the
 * filters' own properties, and the committed module against its source.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import {
  BICUBIC,
  createScalerExecutor,
  LANCZOS3,
  planScaler,
  resampleTaps,
  runOrder,
  type ScalerPlan,
  type Size,
  scalerKernels,
  type Taps,
} from '../../src/webcodecs/scaler/index.ts';

/** A deterministic plane with edges, gradients and noise. */
function testPlane(width: number, height: number, seed: number): Uint8Array {
  const out = new Uint8Array(width * height);
  let s = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      const noise = (s >>> 24) % 40;
      const bars = Math.floor(x / 37) % 2 === 0 ? 200 : 30;
      const ramp = Math.floor((255 * y) / height);
      out[y * width + x] = Math.min(255, Math.max(0, (bars + ramp) / 2 + noise - 20));
    }
  }
  return out;
}

/** Separable filtering in floating point with `h` and `v` taps (what the kernels approximate). */
function reference(src: Uint8Array, width: number, h: Taps[], v: Taps[]): Float64Array {
  const rows = src.length / width;
  const mid = new Float64Array(rows * h.length);
  for (let y = 0; y < rows; y++) {
    for (const [x, t] of h.entries()) {
      let acc = 0;
      for (let k = 0; k < t.weights.length; k++) acc += t.weights[k]! * src[y * width + t.first + k]!;
      mid[y * h.length + x] = acc;
    }
  }
  const out = new Float64Array(v.length * h.length);
  for (const [y, t] of v.entries()) {
    for (let x = 0; x < h.length; x++) {
      let acc = 0;
      for (let k = 0; k < t.weights.length; k++) acc += t.weights[k]! * mid[(t.first + k) * h.length + x]!;
      out[y * h.length + x] = Math.min(255, Math.max(0, acc));
    }
  }
  return out;
}

/** Runs `plan` inline on planes Y/U/V of the source; returns every output's planes. */
function runPlan(plan: ScalerPlan, planes: Uint8Array[]): Uint8Array[][] {
  const module = scalerKernels();
  if (module === null) throw new Error('this runtime cannot run the kernels');
  const memory = new WebAssembly.Memory({ initial: plan.bytes / 65536, maximum: plan.bytes / 65536, shared: true });
  const bytes = new Uint8Array(memory.buffer);
  for (const t of plan.tables) bytes.set(t.data, t.offset);
  const slot = plan.slots[0]!;
  slot.source.forEach((p, i) => {
    for (let y = 0; y < p.height; y++)
      bytes.set(planes[i]!.subarray(y * p.width, (y + 1) * p.width), p.offset + y * p.stride);
  });
  const executor = createScalerExecutor(module);
  executor.open(1, memory, plan.program);
  executor.run(
    1,
    0,
    runOrder(
      plan,
      plan.outputs.map((_, i) => i),
    ),
  );
  return slot.outputs.map((picture) =>
    picture.map((p) => {
      const out = new Uint8Array(p.width * p.height);
      for (let y = 0; y < p.height; y++)
        out.set(bytes.subarray(p.offset + y * p.stride, p.offset + y * p.stride + p.width), y * p.width);
      return out;
    }),
  );
}

const chromaOf = (s: Size): Size => ({ width: (s.width + 1) >> 1, height: (s.height + 1) >> 1 });

describe('scaler filters', () => {
  it('weights of every output sum to 1 and stay inside the source', () => {
    for (const [src, dst] of [
      [1920, 1280],
      [1920, 854],
      [1280, 426],
      [7, 3],
      [100, 100],
    ] as const) {
      for (const kernel of [BICUBIC, LANCZOS3]) {
        for (const t of resampleTaps(src, dst, kernel, 0.25)) {
          expect(t.first).toBeGreaterThanOrEqual(0);
          expect(t.first + t.weights.length).toBeLessThanOrEqual(src);
          expect(t.weights.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
        }
      }
    }
  });

  it('leaves a picture as it is at the same size, and stretches the kernel by the downscale factor', () => {
    for (const t of resampleTaps(64, 64, BICUBIC)) expect(Math.max(...t.weights)).toBeCloseTo(1, 12);
    const half = resampleTaps(1920, 960, BICUBIC)[100]!;
    expect(half.weights.length).toBe(8);
    const third = resampleTaps(1920, 640, LANCZOS3)[100]!;
    // Centred on a sample: the two at exactly three stretched lobes weigh nothing.
    expect(third.weights.length).toBe(17);
  });

  it('plans the cascade: the largest output from the source, each other from the next larger one that holds it', () => {
    const plan = planScaler({ width: 1920, height: 1080 }, [
      { width: 854, height: 480 },
      { width: 1280, height: 720 },
      { width: 426, height: 240 },
    ]);
    expect(plan.inputs).toEqual([
      { from: 1, kernel: 'lanczos3' },
      { from: -1, kernel: 'bicubic' },
      { from: 0, kernel: 'lanczos3' },
    ]);
    expect(runOrder(plan, [2])).toEqual([1, 0, 2]);
    expect(runOrder(plan, [0])).toEqual([1, 0]);
    expect(runOrder(plan, [1])).toEqual([1]);
    // 720x1280 does not hold 1280x720: both come from the source; 640x360 from the nearer that holds it.
    const mixed = planScaler({ width: 1920, height: 1920 }, [
      { width: 1280, height: 720 },
      { width: 720, height: 1280 },
      { width: 640, height: 360 },
    ]);
    expect(mixed.inputs.map((i) => i.from)).toEqual([-1, -1, 1]);
    expect(runOrder(mixed, [2, 0])).toEqual([0, 1, 2]);
    // Listed smallest first, run largest first.
    const reversed = planScaler({ width: 1920, height: 1080 }, [
      { width: 426, height: 240 },
      { width: 854, height: 480 },
      { width: 1280, height: 720 },
    ]);
    expect(reversed.inputs.map((i) => i.from)).toEqual([1, 2, -1]);
    expect(runOrder(reversed, [0])).toEqual([2, 1, 0]);
    expect(() => planScaler({ width: 640, height: 360 }, [{ width: 1280, height: 720 }])).toThrow(/larger/);
  });
});

describe('scaler kernels', () => {
  it('match the filters evaluated in floating point within one level, on every plane and step', () => {
    const cases: Array<{ source: Size; outputs: Size[] }> = [
      {
        source: { width: 1920, height: 1080 },
        outputs: [
          { width: 1280, height: 720 },
          { width: 854, height: 480 },
          { width: 426, height: 240 },
        ],
      },
      {
        source: { width: 641, height: 359 },
        outputs: [
          { width: 640, height: 358 },
          { width: 98, height: 54 },
          { width: 2, height: 2 },
        ],
      },
    ];
    for (const { source, outputs } of cases) {
      const plan = planScaler(source, outputs);
      const sizes = [source, chromaOf(source), chromaOf(source)];
      const planes = sizes.map((s, i) => testPlane(s.width, s.height, 7 + i));
      const got = runPlan(plan, planes);
      for (const [o, size] of outputs.entries()) {
        const from = plan.inputs[o]!.from;
        const kernel = plan.inputs[o]!.kernel === 'bicubic' ? BICUBIC : LANCZOS3;
        const inputSize = from === -1 ? source : outputs[from]!;
        const inputPlanes = from === -1 ? planes : got[from]!;
        for (let p = 0; p < 3; p++) {
          const src = p === 0 ? inputSize : chromaOf(inputSize);
          const dst = p === 0 ? size : chromaOf(size);
          const shift = p === 0 ? 0 : (src.width / dst.width - 1) / 4;
          const want = reference(
            inputPlanes[p]!,
            src.width,
            resampleTaps(src.width, dst.width, kernel, shift),
            resampleTaps(src.height, dst.height, kernel),
          );
          const have = got[o]![p]!;
          let worst = 0;
          for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(want[i]! - have[i]!));
          expect(
            worst,
            `${source.width}x${source.height} -> ${dst.width}x${dst.height} plane ${p}`,
          ).toBeLessThanOrEqual(1);
        }
      }
    }
  });
});

describe('scaler kernels module', () => {
  it('is what wasm/scaler.ts builds to (npm run build:wasm)', () => {
    const run = spawnSync(process.execPath, ['wasm/build.mjs', '--check'], { encoding: 'utf8' });
    expect(run.stdout + run.stderr).toContain('the committed kernels match');
    expect(run.status).toBe(0);
  });
});
