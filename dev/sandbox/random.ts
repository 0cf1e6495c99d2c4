/**
 * The sandbox's source of chance: a small seedable pseudo-random generator (mulberry32).
 *
 * Every fault decision the sandbox makes draws from one of these, so a run started with
 * the same seed and sent the same sequence of requests answers them with the same
 * sequence of faults. It is fast and good enough for simulation; it is not for secrets
 * (ids and message SIDs come from node:crypto instead).
 */
import { randomInt } from 'node:crypto';

export interface Random {
  /** The seed this generator started from. */
  readonly seed: number;
  /** A number in [0, 1). */
  next(): number;
  /** Back to the state right after construction. */
  restart(): void;
}

/** A seed for runs that were given none; the sandbox reports it so a run can be repeated. */
export function randomSeed(): number {
  return randomInt(0, 2 ** 32);
}

export function createRandom(seed: number): Random {
  const start = seed >>> 0;
  let state = start;
  return {
    seed: start,
    next() {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
    restart() {
      state = start;
    },
  };
}
