/**
 * Cuts a session into requests. Without sqlcommenter tags the session is one
 * request (Django's default CONN_MAX_AGE=0 opens a connection per HTTP
 * request). With tags, a new trace id starts a new request on the same
 * session, and route/controller/action/application name it.
 */
import { traceIdOf, type SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { RequestInfo } from './types.js';

export class RequestTracker {
  private seq = 0;
  private current: RequestInfo;

  constructor(
    private readonly sessionId: string,
    private readonly onNewRequest: (request: RequestInfo, previous: RequestInfo | null) => void,
  ) {
    this.current = this.make(null, null);
  }

  get request(): RequestInfo {
    return this.current;
  }

  /** Emits the first request; called once the session is established. */
  start(): void {
    this.onNewRequest(this.current, null);
  }

  /** Whether a statement with these tags would start a new request (a new trace id after tagged ones). */
  startsNew(tags: SqlCommenterTags | null): boolean {
    if (tags === null || this.current.tags === null) return false;
    const traceId = traceIdOf(tags.traceparent);
    return traceId !== null && traceId !== this.current.traceId;
  }

  /** Sees the tags of a statement; returns the request it belongs to. */
  observe(tags: SqlCommenterTags | null): RequestInfo {
    if (tags === null) return this.current;
    const traceId = traceIdOf(tags.traceparent);
    const current = this.current;
    if (current.tags === null) {
      // The first tags seen name the request the session is in.
      this.current = describe(current.id, traceId, tags);
    } else if (traceId !== null && traceId !== current.traceId) {
      this.current = this.make(traceId, tags);
      this.onNewRequest(this.current, current);
    }
    return this.current;
  }

  private make(traceId: string | null, tags: SqlCommenterTags | null): RequestInfo {
    this.seq++;
    return describe(`${this.sessionId}.r${this.seq}`, traceId, tags);
  }
}

function describe(id: string, traceId: string | null, tags: SqlCommenterTags | null): RequestInfo {
  return {
    id,
    traceId,
    route: tags?.route ?? null,
    controller: tags?.controller ?? null,
    action: tags?.action ?? null,
    application: tags?.application ?? null,
    framework: tags?.framework ?? null,
    tags,
  };
}
