/**
 * How long a test waits for something that should happen. Test files run
 * three at a time (package.json's tap `jobs`), each with its own PostgreSQL
 * and txproxy processes, beside other CI runs: on a two-CPU machine a
 * process start or a round trip then takes seconds longer than alone. A
 * wait ends as soon as its condition holds, so a longer limit costs a
 * passing test nothing; it only keeps a loaded machine from failing it.
 */
const DEADLINE_SLACK = 3;

/** The time a wait written as `ms` is given. */
export function waitLimit(ms: number): number {
  return ms * DEADLINE_SLACK;
}

/** Polls `check` until it returns true or the time is up (`timeoutMs`, stretched by waitLimit). */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const limit = waitLimit(timeoutMs);
  const deadline = Date.now() + limit;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (${limit} ms)`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
