// The `meshmart ready {json}` line tools/stack/start.ts prints once every unit is healthy (with --ports auto), and its
// reader (tools/stack/child-stack.ts): one format, written and parsed here only.
const PREFIX = "meshmart ready ";

export function formatReadyLine(ready: object): string {
  return `${PREFIX}${JSON.stringify(ready)}`;
}

/** The ready object of a `meshmart ready` line; undefined for any other line (logs). */
export function parseReadyLine<T = unknown>(line: string): T | undefined {
  return line.startsWith(PREFIX) ? (JSON.parse(line.slice(PREFIX.length)) as T) : undefined;
}
