/** Byte builders for scripted protocol exchanges in tests. */
import { Backend } from '../../src/protocol/codes.js';
import { commandComplete, errorResponse, readyForQuery } from '../../src/protocol/encode.js';
import type { TxStatus } from '../../src/protocol/codes.js';

export { serialize } from '../../src/protocol/frontend-messages.js';

function empty(type: number): Buffer {
  return Buffer.from([type, 0, 0, 0, 4]);
}

export const server = {
  parseComplete: () => empty(Backend.ParseComplete),
  bindComplete: () => empty(Backend.BindComplete),
  closeComplete: () => empty(Backend.CloseComplete),
  noData: () => empty(Backend.NoData),
  portalSuspended: () => empty(Backend.PortalSuspended),
  emptyQuery: () => empty(Backend.EmptyQueryResponse),
  complete: (tag: string) => commandComplete(tag),
  ready: (status: TxStatus) => readyForQuery(status),
  error: (code: string, message = 'boom') => errorResponse({ severity: 'ERROR', code, message }),
  dataRow: () => Buffer.from([Backend.DataRow, 0, 0, 0, 6, 0, 0]),
  rowDescription: () => Buffer.from([Backend.RowDescription, 0, 0, 0, 6, 0, 0]),
};

/** Splits a buffer of whole messages into [type, buf, start, end] tuples. */
export function messagesOf(buf: Buffer): [number, Buffer, number, number][] {
  const out: [number, Buffer, number, number][] = [];
  let pos = 0;
  while (pos < buf.length) {
    const end = pos + 1 + buf.readInt32BE(pos + 1);
    out.push([buf[pos], buf, pos, end]);
    pos = end;
  }
  return out;
}
