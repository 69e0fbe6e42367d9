/**
 * The built txproxy command on a pseudo-terminal, as `npm start` runs it
 * in a terminal: through util-linux `script`, which gives the command a
 * pty for stdin, stdout and stderr and copies what it prints to our pipe.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { environment, MAIN } from './txproxy-cli.js';

/** `script` from util-linux (Debian's bsdutils), or null when this system lacks it. */
export function scriptCommand(): string | null {
  const found = spawnSync('script', ['--version'], { encoding: 'utf8' });
  return found.status === 0 && /util-linux/.test(found.stdout) ? 'script' : null;
}

export interface TerminalCli {
  /** Everything printed to the terminal so far (stdout and stderr, with the pty's \r\n). */
  output(): string;
  /** The port txproxy listens on, once it printed its DATABASE_URL. */
  port: Promise<number>;
  /** Types Ctrl-C, as a person would: the terminal sends SIGINT to txproxy. */
  interrupt(): void;
  exited: Promise<number | null>;
  /**
   * Ends it whatever state it is in: Ctrl-C twice (txproxy exits at the
   * second), then SIGKILL to `script`. Killing `script` alone would leave
   * txproxy running: the terminal's hangup is SIGHUP, which reloads it.
   */
  stop(): Promise<void>;
}

const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

export function startCliOnTerminal(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): TerminalCli {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
  // `script` runs the command with `$SHELL -c`. `exec` makes txproxy the
  // only process on the terminal whatever that shell is: dash would
  // otherwise stay as its parent and die of the same Ctrl-C.
  const command = `exec ${[process.execPath, MAIN, ...args].map(quote).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], { env: environment(env), stdio: ['pipe', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const port = new Promise<number>((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const poll = setInterval(() => {
      const match = /DATABASE_URL=(\S+)/.exec(output);
      if (match !== null) {
        clearInterval(poll);
        resolve(Number(new URL(match[1]).port));
      } else if (Date.now() > deadline || child.exitCode !== null) {
        clearInterval(poll);
        reject(new Error(`txproxy printed no DATABASE_URL on the terminal; it printed:\n${output}`));
      }
    }, 20);
  });
  return {
    output: () => output,
    port,
    interrupt: () => child.stdin.write('\x03'),
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin.write('\x03');
      child.stdin.write('\x03');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Terminal output as text: no colour codes, \n line ends. */
export function plainText(output: string): string {
  // eslint-disable-next-line no-control-regex
  return output.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r\n/g, '\n');
}
