/**
 * Every process the benchmark starts goes through here, so that all of them
 * are stopped at the end, on an error and on Ctrl-C, and so that their
 * output is at hand when one of them fails.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

const TAIL_LINES = 40;
const STOP_GRACE_MS = 3000;

export class Child {
  readonly process: ChildProcess;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  readonly exited: Promise<number | string>;
  private tailLines: string[] = [];
  private partial = '';
  private lineWatchers = new Set<(line: string) => void>();
  private exitStatus: number | string | null = null;

  constructor(
    readonly name: string,
    command: string,
    args: string[],
    options: SpawnOptions,
  ) {
    this.process = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout!.setEncoding('utf8').on('data', (text: string) => this.onOutput(text));
    this.process.stderr!.setEncoding('utf8').on('data', (text: string) => this.onOutput(text));
    this.exited = new Promise((resolve) => {
      this.process.once('error', (err) => {
        this.tailLines.push(`cannot start ${command}: ${err.message}`);
        this.exitStatus = 'spawn-error';
        resolve(this.exitStatus);
      });
      this.process.once('exit', (code, signal) => {
        this.exitStatus = code ?? signal ?? 'unknown';
        resolve(this.exitStatus);
      });
    });
  }

  get pid(): number {
    if (this.process.pid === undefined) throw new Error(`${this.name} has no pid: ${this.tail()}`);
    return this.process.pid;
  }

  get running(): boolean {
    return this.exitStatus === null;
  }

  /** The exit code or signal name; null while running. */
  get status(): number | string | null {
    return this.exitStatus;
  }

  /** The last lines of stdout and stderr, for error messages. */
  tail(): string {
    return [...this.tailLines, this.partial].join('\n').trim();
  }

  /** Resolves with the first output line matching `pattern`; rejects if the process exits first or time runs out. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, match?: RegExpMatchArray) => {
        clearTimeout(timer);
        this.lineWatchers.delete(watch);
        if (err) reject(err);
        else resolve(match!);
      };
      const watch = (line: string) => {
        const match = line.match(pattern);
        if (match) done(null, match);
      };
      const timer = setTimeout(() => done(new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms:\n${this.tail()}`)), timeoutMs);
      this.lineWatchers.add(watch);
      for (const line of this.tailLines) watch(line);
      void this.exited.then((status) => done(new Error(`${this.name} exited (${status}) before printing ${pattern}:\n${this.tail()}`)));
    });
  }

  private onOutput(text: string): void {
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      this.tailLines.push(line);
      for (const watch of this.lineWatchers) watch(line);
    }
    if (this.tailLines.length > TAIL_LINES) this.tailLines.splice(0, this.tailLines.length - TAIL_LINES);
  }
}

export class ChildRegistry {
  private children = new Set<Child>();

  spawn(name: string, command: string, args: string[], options: SpawnOptions = {}): Child {
    const child = new Child(name, command, args, options);
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    return child;
  }

  /** SIGTERM to each child still running, SIGKILL to those still there after a grace period. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.children].map((child) => stop(child)));
  }

  /** For the process `exit` hook, where nothing asynchronous runs any more. */
  killAllNow(): void {
    for (const child of this.children) {
      if (child.running) child.process.kill('SIGKILL');
    }
  }
}

export async function stop(child: Child): Promise<void> {
  if (!child.running) return;
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.running && child.process.kill('SIGKILL'), STOP_GRACE_MS);
  await child.exited;
  clearTimeout(timer);
}
