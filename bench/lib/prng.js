// A small deterministic PRNG (mulberry32) for the benchmarks' generated data, so every run sends
// the same shape of data.

/** Numbers in [0, 1) from `seed`, the same sequence for the same seed. */
export function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
