/**
 * The signals inside an alert expression: its operands without the threshold, so a test
 * can check that each one finds series in a live Prometheus even when the alert does not
 * fire. `A > 5` gives `A`; `A and on (x) B` gives A and B; `absent(X)` gives X; an
 * `offset` (a window in the past, which a short test cannot have filled) is dropped.
 */
function topLevel(expr: string): boolean[] {
  const flags: boolean[] = [];
  let depth = 0;
  let quote: string | undefined;
  for (let index = 0; index < expr.length; index += 1) {
    const char = expr[index]!;
    if (quote) {
      if (char === '\\') index += 1;
      else if (char === quote) quote = undefined;
      flags.push(false);
      continue;
    }
    if (char === '"' || char === "'" || char === '`') quote = char;
    else if ('([{'.includes(char)) depth += 1;
    else if (')]}'.includes(char)) depth -= 1;
    flags.push(depth === 0 && !quote && !'([{)]}'.includes(char));
  }
  return flags;
}

function splitTopLevel(expr: string, keywords: string[]): string[] {
  const flags = topLevel(expr);
  const parts: string[] = [];
  let start = 0;
  const pattern = new RegExp(`\\s(${keywords.join('|')})\\s`, 'g');
  for (const match of expr.matchAll(pattern)) {
    if (flags[match.index!] && flags[match.index! + match[0].length - 1]) {
      parts.push(expr.slice(start, match.index));
      start = match.index! + match[0].length;
    }
  }
  parts.push(expr.slice(start));
  return parts.map((part) =>
    part
      .trim()
      .replace(/^(on|ignoring)\s*\([^)]*\)\s*/, '')
      .replace(/^(group_left|group_right)\s*(\([^)]*\))?\s*/, ''),
  );
}

function stripThreshold(expr: string): string {
  const flags = topLevel(expr);
  const match = /(==|!=|>=|<=|>|<)\s*(bool\s+)?-?\d+(\.\d+)?\s*$/.exec(expr);
  if (match && flags[match.index]) return expr.slice(0, match.index).trim();
  return expr.trim();
}

export function signalQueries(expr: string): string[] {
  const withoutOffsets = expr.replace(/\s+offset\s+\d+[smhdwy]/g, '');
  return splitTopLevel(withoutOffsets.trim(), ['and', 'unless'])
    .map(stripThreshold)
    .map((part) => {
      const absent = /^absent\((.*)\)$/s.exec(part);
      return absent ? stripThreshold(absent[1]!) : part;
    })
    .filter((part) => part && !/^vector\(\s*-?\d+(\.\d+)?\s*\)$/.test(part) && !/^-?\d+(\.\d+)?$/.test(part));
}
