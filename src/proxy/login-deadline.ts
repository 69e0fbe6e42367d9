/**
 * connect_timeout for the server's part of a login. Like libpq's
 * connect_timeout, it bounds each wait for the server until the connection
 * is usable: from connecting until its first message has arrived in full (a
 * server that sends a few bytes and stalls is as dead as one that sends
 * none), and again whenever the server owes the next message — after the
 * client answered an authentication request, and between AuthenticationOk
 * and ReadyForQuery. Waits for the client (a password prompt) are not
 * counted: the server's authentication_timeout governs those.
 */
export class LoginDeadline {
  private timer: NodeJS.Timeout | null = null;
  private answered = false;

  constructor(
    readonly timeoutMs: number,
    /** The server kept the login waiting; `firstAnswer` when it never sent a whole message. */
    private readonly onStall: (firstAnswer: boolean) => void,
  ) {}

  /** The server owes an answer now; it must come within `ms` (the whole timeout unless less is left). */
  serverOwes(ms = this.timeoutMs): void {
    this.clear();
    const timer = setTimeout(() => {
      this.timer = null;
      this.onStall(!this.answered);
    }, Math.max(0, ms));
    timer.unref();
    this.timer = timer;
  }

  /**
   * A whole server message of the login arrived. The server then waits for
   * the client (`clientsTurn`), is done (`ready`), or owes the next message.
   */
  serverMessage(clientsTurn: boolean, ready: boolean): void {
    this.answered = true;
    if (clientsTurn || ready) this.clear();
    else this.serverOwes();
  }

  clear(): void {
    if (this.timer === null) return;
    clearTimeout(this.timer);
    this.timer = null;
  }
}
