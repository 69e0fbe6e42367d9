/**
 * A client that speaks the protocol message by message, to check exactly
 * what a client receives: every message, command tag and ReadyForQuery
 * status, with batches pipelined in one write. Needs a server that trusts
 * the connection (no password exchange): startPostgres({ hba: TRUST_LOCAL }).
 */
import net from 'node:net';
import type { BackendMessage } from 'pg-protocol/dist/messages';
import { Parser } from 'pg-protocol/dist/parser';
import { serialize } from '../../src/protocol/frontend-messages.js';

export const TRUST_LOCAL = 'host all all 127.0.0.1/32 trust\nlocal all all trust\n';

export { serialize };

export interface RawClient {
  /** Sends the messages in one write and resolves with what came back up to the `readyCount`-th ReadyForQuery. */
  exchange(messages: Buffer[], readyCount?: number): Promise<string[]>;
  /** Everything received and not yet returned, summarized. */
  received(): string[];
  /** Resolves when the server closes the connection. */
  closed: Promise<void>;
  end(): void;
  destroy(): void;
}

/** `CC(INSERT 0 1)`, `Z(I)`, `E(25P01)`, `N(WARNING 25P01)`, `1`, `2`, `D`, `T`… */
function summarize(message: BackendMessage): string {
  const m = message as BackendMessage & Record<string, unknown>;
  switch (message.name) {
    case 'commandComplete':
      return `CC(${m.text})`;
    case 'readyForQuery':
      return `Z(${m.status})`;
    case 'error':
      return `E(${m.code}${m.severity === 'ERROR' ? '' : ` ${m.severity}`})`;
    case 'notice':
      return `N(${m.severity} ${m.code})`;
    case 'parseComplete':
      return '1';
    case 'bindComplete':
      return '2';
    case 'closeComplete':
      return '3';
    case 'noData':
      return 'n';
    case 'dataRow':
      return 'D';
    case 'rowDescription':
      return 'T';
    case 'emptyQuery':
      return 'I';
    default:
      return message.name;
  }
}

export async function rawClient(port: number, params: Record<string, string>): Promise<RawClient> {
  const socket = net.connect(port, '127.0.0.1');
  const inbox: BackendMessage[] = [];
  let wake: (() => void) | null = null;
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  void closed.then(() => wake?.());
  const parser = new Parser();
  socket.on('data', (chunk: Buffer) =>
    parser.parse(chunk, (message) => {
      inbox.push(message);
      wake?.();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let isClosed = false;
  void closed.then(() => (isClosed = true));

  const waitFor = async (predicate: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (isClosed) throw new Error(`connection closed while waiting for ${what}; received ${inbox.map(summarize).join(' ')}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received ${inbox.map(summarize).join(' ')}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
      wake = null;
    }
  };

  socket.write(serialize.startup(params));
  await waitFor(() => inbox.some((m) => m.name === 'readyForQuery' || m.name === 'error'), 'startup');
  const failed = inbox.find((m) => m.name === 'error');
  if (failed) throw new Error(`startup failed: ${(failed as unknown as { message: string }).message}`);
  inbox.length = 0;

  return {
    async exchange(messages, readyCount = 1) {
      socket.write(Buffer.concat(messages));
      const readies = () => inbox.filter((m) => m.name === 'readyForQuery').length;
      await waitFor(() => readies() >= readyCount, `${readyCount} ReadyForQuery`);
      let seen = 0;
      const upTo = inbox.findIndex((m) => m.name === 'readyForQuery' && ++seen === readyCount);
      return inbox.splice(0, upTo + 1).map(summarize);
    },
    received: () => inbox.splice(0).map(summarize),
    closed,
    end: () => socket.end(serialize.end()),
    destroy: () => socket.destroy(),
  };
}

/** The messages of one extended-protocol statement with its Sync. */
export function extended(text: string, values: string[] = [], sync = true): Buffer[] {
  const messages = [serialize.parse({ text }), serialize.bind({ values }), serialize.describe({ type: 'P' }), serialize.execute({})];
  if (sync) messages.push(serialize.sync());
  return messages;
}
