/**
 * How CI adds up tap runs (.ci/tap-count.sh). Regression test for a run
 * whose output held a NUL (a test named after a text with one): grep took
 * the log for a binary file, found no summary, and CI counted none of its
 * tests.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function totals(logs: { text: string; status: number }[]): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ci-count-'));
  try {
    const lines = ['source .ci/tap-count.sh'];
    for (const [i, log] of logs.entries()) {
      const file = path.join(dir, `${i}.log`);
      await writeFile(file, log.text);
      lines.push(`count run${i} ${file} ${log.status} >/dev/null`);
    }
    lines.push('printf "%s passed, %s failed, exit %s\\n%s" "$total_pass" "$total_fail" "$overall" "$failures"');
    const { stdout } = await promisify(execFile)('bash', ['-c', lines.join('\n')], { cwd: ROOT });
    return stdout;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

t.test('runs are added up from their summaries, a NUL in the output or not', async (t) => {
  const out = await totals([
    { text: 'ok 1 - SELECT 4\0 LIMIT 7\n# { total: 3, pass: 3 }\n', status: 0 },
    { text: 'ok 1 - a\nnot ok 2 - b\0c\nok 3 - d # SKIP\n# { total: 3, pass: 1, fail: 1, skip: 1 }\n', status: 1 },
    { text: 'it crashed before any summary\n', status: 2 },
  ]);
  const [head, ...failed] = out.split('\n').filter((line) => line !== '');
  t.equal(head, '4 passed, 2 failed, exit 2', 'the NUL run counted, and a crash is a failure');
  // bash drops the NUL from the name it keeps.
  t.same(failed, ['[run1] not ok 2 - bc'], 'the failed test is named');
});
