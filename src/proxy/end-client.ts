/**
 * Ending a client connection from txproxy's side, optionally with a last
 * message (a FATAL ErrorResponse).
 *
 * `socket.end()` only half-closes: the socket is gone when the client's FIN
 * has been read. A socket paused with a full read buffer (a session pauses
 * its client under backpressure) never reads that FIN, and a client may
 * simply never close its side; either way the file descriptor would stay
 * open for good, outside any session count. So reading resumes (callers
 * ignore what still arrives) and the socket is destroyed after a grace
 * period that leaves the last message ample time to be delivered.
 */
import type net from 'node:net';

/** How long a client may keep its side open after txproxy said goodbye. */
const CLOSE_GRACE_MS = 10_000;

export function endClient(socket: net.Socket, lastMessage?: Buffer, graceMs = CLOSE_GRACE_MS): void {
  if (socket.destroyed) return;
  if (lastMessage === undefined) socket.end();
  else socket.end(lastMessage);
  socket.resume();
  setTimeout(() => socket.destroy(), graceMs).unref();
}
