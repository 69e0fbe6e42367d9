/**
 * A pooled server connection on loan to a session (pooling). txproxy logged
 * the client in itself and the link was logged in long before, so there is
 * no login to relay; the client knows only the cancel key txproxy minted,
 * and the connection goes back to its pool when the session ends.
 */
import type net from 'node:net';
import { cancelRequest } from '../protocol/encode.js';
import type { BorrowedServer } from '../pool/pooled-connect.js';
import type { ServerLink } from '../server-link/server-link.js';
import { PooledServerSide } from './pooled-server-side.js';
import type { ServerSide } from './server-side.js';

type Release = (link: ServerLink, reusable: boolean) => void;

export class BorrowedServerSide extends PooledServerSide implements ServerSide {
  /** Null once the link went back. */
  private link: ServerLink | null;
  /** The server's own cancel key: kept past the loan, as the session's backend pid is. */
  private readonly key: Buffer;

  constructor(
    server: BorrowedServer,
    private readonly release: Release,
    /** The connection closed while on loan. */
    private readonly onClose: () => void,
    onData: (chunk: Buffer) => boolean,
  ) {
    super();
    this.link = server.link;
    this.key = server.link.backendKey;
    server.link.socket.on('close', onClose);
    server.link.attach(onData);
  }

  get socket(): net.Socket | null {
    return this.link?.socket ?? null;
  }

  get onLoan(): boolean {
    return this.link !== null;
  }

  /** The client only ever saw the key txproxy minted: the server gets its own. */
  cancelPacketFor(_clientPacket: Buffer, backendPid: number): Buffer {
    return cancelRequest(backendPid, this.key);
  }

  serverKey(): Buffer {
    return this.key;
  }

  giveBack(reusable: boolean, blocked: boolean): void {
    const link = this.link!;
    this.link = null;
    link.socket.off('close', this.onClose);
    // Blocked writing to us, the server would act on nothing else: drop the connection.
    if (blocked) link.socket.destroy();
    this.release(link, reusable);
  }

  ended(): void {}
}
