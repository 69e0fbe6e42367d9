/**
 * What the server sides of pooled sessions (borrowed-server.ts for session
 * pooling, transaction-server.ts for transaction pooling) share: txproxy
 * logged the client in itself, so there is no login to relay, and a pooled
 * connection outlives its client, so the client's Terminate stays with
 * txproxy.
 */
import { FORWARD, type Verdict } from '../protocol/message-scanner.js';

export abstract class PooledServerSide {
  readonly forwardsTerminate = false;

  // The welcome the session relays has no authentication requests.
  serverRequest(): Verdict {
    return FORWARD;
  }

  clientResponse(): Verdict {
    return FORWARD;
  }

  loginMessage(): void {}

  loginDone(): void {}
}
