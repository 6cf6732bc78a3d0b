// Seeded pseudo-random numbers for the tests: mulberry32 (32-bit state, fast, good enough for
// test inputs) plus Box-Muller normals. Every run picks a fresh seed (testSeed) and prints it
// in failure messages; IGNIS_TEST_SEED=<n> reruns with the same inputs.

export class Rng {
  private state: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of randomness. */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Integer uniform in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** Standard normal (Box-Muller, the second value kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** n normals with the given standard deviation and mean. */
  normals(n: number, std = 1, mean = 0): Float64Array {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }

  /** n integers uniform in [lo, hi]. */
  ints(n: number, lo: number, hi: number): Int32Array {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(lo, hi);
    return out;
  }
}

/** 32-bit FNV-1a of a string: derives a per-case seed from the run's seed and the case name. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

let runSeed: number | undefined;

/** The seed of this run: IGNIS_TEST_SEED if set, else fresh from the clock (once per process). */
export function testSeed(): number {
  if (runSeed === undefined) {
    const env = typeof process !== 'undefined' ? process.env.IGNIS_TEST_SEED : undefined;
    runSeed = env !== undefined && env !== '' ? Number(env) >>> 0 : (Date.now() ^ (Math.random() * 0x7fffffff)) >>> 0;
  }
  return runSeed;
}

/** A generator for one test case: same run seed + same case name -> same inputs. */
export function rngFor(caseName: string, seed = testSeed()): Rng {
  return new Rng((seed ^ hashString(caseName)) >>> 0);
}
