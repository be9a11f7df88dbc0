import fc from 'fast-check';

/**
 * Every property test file imports this first: the run's seed is chosen here (or taken from
 * FC_SEED) and printed, so any run, passing or not, can be repeated exactly.
 */
const fromEnv = process.env.FC_SEED;
if (fromEnv !== undefined && !/^-?\d+$/.test(fromEnv)) throw new Error(`FC_SEED must be a whole number, got "${fromEnv}"`);
export const seed = fromEnv !== undefined ? Number(fromEnv) : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed });
console.log(`fast-check seed ${seed} (run again with FC_SEED=${seed} to repeat it)`);
