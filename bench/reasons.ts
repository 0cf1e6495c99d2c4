/**
 * The "Why met" and "Why missed" paragraphs of docs/PERFORMANCE.md, built from claims that
 * carry their own test against the figures of the same run.
 *
 * A claim is a sentence and the condition on the figures under which it is true ("the
 * worker process runs short of CPU" only while it is busy at least CPU_BOUND of a core).
 * A section offers the claims that may explain its verdict; `supported` keeps those its
 * figures bear out; `reasonParagraph` refuses (throws, so the run or the report fails) a
 * paragraph with a claim its figures contradict, or with none at all. Thresholds are here,
 * once, so that every section means the same by "short of CPU" or "the machine was full".
 */

/** A process busy at least this share of one core is short of CPU (a single-threaded event loop). */
export const CPU_BOUND = 0.85;
/** The machine counts as full when all its cores were busy at least this share of the time. */
export const MACHINE_FULL = 0.9;

export interface Claim {
  text: string;
  /** Whether the figures bear the claim out. */
  holds: boolean;
  /** The figures it rests on, for the error when they do not. */
  evidence: string;
}

export const claim = (text: string, holds: boolean, evidence: string): Claim => ({ text, holds, evidence });

export class ContradictedReasonError extends Error {
  override readonly name = 'ContradictedReasonError';
}

/** The claims the figures bear out, in the order given. */
export function supported(claims: readonly Claim[]): Claim[] {
  return claims.filter((c) => c.holds);
}

/** Splits a paragraph into lines of at most `width` characters (the report's source stays readable). */
function wrap(text: string, width = 118): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines;
}

/**
 * "**Why met.** ..." or "**Why missed.** ...", from `claims`, followed by an empty line.
 * Throws ContradictedReasonError when a claim does not hold or there is none.
 */
export function reasonParagraph(title: 'Why met.' | 'Why missed.', claims: readonly Claim[]): string[] {
  const contradicted = claims.filter((c) => !c.holds);
  if (contradicted.length) {
    throw new ContradictedReasonError(
      `"${title}" states what its own figures contradict: ${contradicted.map((c) => `"${c.text}" (${c.evidence})`).join('; ')}`,
    );
  }
  if (!claims.length) throw new ContradictedReasonError(`"${title}" has no claim its figures bear out`);
  return [...wrap(`**${title}** ${claims.map((c) => c.text).join(' ')}`), ''];
}
