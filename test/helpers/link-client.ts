/**
 * A borrower of a pooled ServerLink, as a client session is: it attaches
 * its reader to the link and writes the link's socket itself while it holds
 * the link, one simple Query at a time, and stops reading at the
 * ReadyForQuery.
 */
import { errorFieldsOfBody } from '../../src/auth/server-login.js';
import type { TxStatus } from '../../src/protocol/codes.js';
import type { ErrorFields } from '../../src/protocol/decode.js';
import { serialize } from '../../src/protocol/frontend-messages.js';
import type { PoolLink } from '../../src/pool/pool-link.js';
import { MessageReader } from '../../src/server-link/message-reader.js';
import type { ServerLink } from '../../src/server-link/server-link.js';

export interface Answer {
  /** Each DataRow's columns as text (null for SQL NULL). */
  rows: (string | null)[][];
  error: ErrorFields | null;
  status: TxStatus;
}

/** Runs `sql` on a lent link and reads its whole answer. */
export function query(pooled: PoolLink, sql: string, timeoutMs = 10_000): Promise<Answer> {
  const link = pooled as ServerLink;
  const { socket } = link;
  const reader = new MessageReader();
  const answer: Answer = { rows: [], error: null, status: 'I' };
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      // Whatever comes after the ReadyForQuery is not this query's.
      link.attach(() => true);
      socket.off('close', onClose);
      socket.pause();
      if (err === undefined) resolve(answer);
      else reject(err);
    };
    const timer = setTimeout(() => done(new Error(`no answer to ${sql} within ${timeoutMs}ms`)), timeoutMs);
    const onClose = () => done(new Error('the server closed the connection'));
    const onData = (chunk: Buffer) => {
      for (const message of reader.push(chunk)) {
        if (message.type === 'D') answer.rows.push(columns(message.body));
        if (message.type === 'E' && answer.error === null) answer.error = errorFieldsOfBody(message.body);
        if (message.type === 'Z') {
          answer.status = String.fromCharCode(message.body[0]) as TxStatus;
          return done();
        }
      }
    };
    // The reader may keep part of a chunk for a message not yet whole.
    link.attach((chunk) => {
      onData(chunk);
      return true;
    });
    socket.on('close', onClose);
    socket.write(serialize.query(sql));
    socket.resume();
  });
}

/** The first column of the first row. */
export async function value(link: PoolLink, sql: string): Promise<string | null> {
  const answer = await query(link, sql);
  if (answer.error !== null) throw new Error(`${sql}: ${answer.error.message}`);
  return answer.rows[0]?.[0] ?? null;
}

function columns(body: Buffer): (string | null)[] {
  const count = body.readInt16BE(0);
  const out: (string | null)[] = [];
  let pos = 2;
  for (let i = 0; i < count; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length === -1) out.push(null);
    else {
      out.push(body.toString('utf8', pos, pos + length));
      pos += length;
    }
  }
  return out;
}
