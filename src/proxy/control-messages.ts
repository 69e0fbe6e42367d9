/**
 * Frontend messages txproxy sends on its own to run a statement in the
 * middle of a client's extended-protocol traffic.
 *
 * They use a prepared statement and a portal of txproxy's own name, never
 * the unnamed ones: the client may have bound the unnamed portal already
 * and be about to execute it. Both are closed first (a leftover from a
 * sequence an error cut short would make Parse fail) and after.
 */
import { serialize } from '../protocol/frontend-messages.js';

export const CONTROL_NAME = 'txproxy_control';

const CLOSE_PORTAL = serialize.close({ type: 'P', name: CONTROL_NAME });
const CLOSE_STATEMENT = serialize.close({ type: 'S', name: CONTROL_NAME });
const BIND = serialize.bind({ portal: CONTROL_NAME, statement: CONTROL_NAME });
const EXECUTE = serialize.execute({ portal: CONTROL_NAME });
const SYNC = serialize.sync();

/** One statement through the control statement and portal, in order; `execute` is the message the server answers with the statement's result. */
export interface ControlSequence {
  prepare: Buffer[];
  execute: Buffer;
  cleanup: Buffer[];
}

export function controlSequence(sql: string): ControlSequence {
  return {
    prepare: [CLOSE_PORTAL, CLOSE_STATEMENT, serialize.parse({ name: CONTROL_NAME, text: sql }), BIND],
    execute: EXECUTE,
    cleanup: [CLOSE_PORTAL, CLOSE_STATEMENT],
  };
}

export function syncMessage(): Buffer {
  return SYNC;
}

export function queryMessage(sql: string): Buffer {
  return serialize.query(sql);
}
