/**
 * The image's admin address: the Dockerfile's ENV and ENTRYPOINT, run as
 * `docker run` would run them (with `node` replaced by a stand-in that
 * prints what it was given). Regression test for an image that served the
 * unauthenticated admin API, SQL text included, on all interfaces.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dockerfile = await readFile(path.join(ROOT, 'Dockerfile'), 'utf8');
/** The final stage: what `docker run` starts. */
const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

/** `ENV A=1 B=2` instructions of the final stage. */
function imageEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [, pairs] of finalStage.matchAll(/^ENV (.+)$/gm)) {
    for (const [, name, value] of pairs.matchAll(/(\w+)=(\S+)/g)) env[name] = value;
  }
  return env;
}

/** The exec-form ENTRYPOINT, with the image's /app mapped to this checkout. */
function entrypoint(): string[] {
  const match = /^ENTRYPOINT (\[.*\])$/m.exec(finalStage);
  if (match === null) throw new Error('the Dockerfile has no exec-form ENTRYPOINT');
  return (JSON.parse(match[1]) as string[]).map((part) => part.replace(/^\/app\//, ROOT));
}

const bin = await mkdtemp(path.join(os.tmpdir(), 'txproxy-entrypoint-'));
t.teardown(() => rm(bin, { recursive: true, force: true }));
await writeFile(path.join(bin, 'node'), '#!/bin/sh\necho "TXPROXY_HTTP=${TXPROXY_HTTP:-}"\necho "ARGS=$*"\n');
await chmod(path.join(bin, 'node'), 0o755);

/** Runs the image's entry point with `docker run -e …` variables; what `node` got. */
function dockerRun(env: Record<string, string>, args: string[] = []): Promise<{ http: string; args: string }> {
  const [command, ...rest] = entrypoint();
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TXPROXY_')));
  return new Promise((resolve, reject) => {
    execFile(command, [...rest, ...args], { env: { ...clean, ...imageEnv(), ...env, PATH: `${bin}:${process.env.PATH}` } }, (err, stdout) => {
      if (err) return reject(err);
      resolve({ http: /^TXPROXY_HTTP=(.*)$/m.exec(stdout)![1], args: /^ARGS=(.*)$/m.exec(stdout)![1] });
    });
  });
}

t.test('the image does not set the admin address to all interfaces itself', async (t) => {
  t.notOk('TXPROXY_HTTP' in imageEnv(), 'no ENV TXPROXY_HTTP');
  t.equal(imageEnv().TXPROXY_LISTEN, '0.0.0.0:6432', 'clients still connect on all interfaces');
  t.match(finalStage, /^COPY docker\/entrypoint\.sh /m, 'the entry point is in the image');
});

t.test('without a token the admin API stays on the container loopback', async (t) => {
  t.equal((await dockerRun({})).http, '127.0.0.1:9930');
  // An empty secret is no token (and txproxy itself refuses it at start).
  t.equal((await dockerRun({ TXPROXY_ADMIN_TOKEN: '' })).http, '127.0.0.1:9930');
});

t.test('with a token, or a token file, it listens on all interfaces', async (t) => {
  t.equal((await dockerRun({ TXPROXY_ADMIN_TOKEN: 'c2a7f0e4b19d8653e0f1a2b3c4d5e6f7' })).http, '0.0.0.0:9930');
  t.equal((await dockerRun({ TXPROXY_ADMIN_TOKEN_FILE: '/run/secrets/txproxy-admin' })).http, '0.0.0.0:9930');
});

t.test('TXPROXY_HTTP, when given, decides', async (t) => {
  t.equal((await dockerRun({ TXPROXY_HTTP: '0.0.0.0:9930' })).http, '0.0.0.0:9930');
  t.equal((await dockerRun({ TXPROXY_HTTP: 'off', TXPROXY_ADMIN_TOKEN: 'c2a7f0e4b19d8653e0f1a2b3c4d5e6f7' })).http, 'off');
});

t.test('arguments reach txproxy unchanged', async (t) => {
  const run = await dockerRun({}, ['trace', '--follow', 'http://127.0.0.1:9930/events']);
  t.match(run.args, /\/dist\/src\/main\.js trace --follow http:\/\/127\.0\.0\.1:9930\/events$/);
});
