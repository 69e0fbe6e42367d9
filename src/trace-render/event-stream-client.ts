/**
 * Follows a server-sent events stream (txproxy's `GET /events`) and
 * reconnects politely when it fails: a delay that starts at one second (or
 * the server's `retry:`) and doubles up to 30 s, reset once a connection
 * works again. Every change of connection is reported as one readable
 * sentence through `onStatus`.
 *
 * A stream that stays silent longer than `idleTimeoutMs` (txproxy sends a
 * keepalive comment every 15 s) is taken as lost: a half-open connection
 * would otherwise look like a quiet proxy forever.
 */
import http from 'node:http';
import https from 'node:https';
import { SseDecoder } from './sse-decoder.js';

export interface EventStreamHandlers {
  /** The data of one event. */
  onEvent(data: string): void;
  /** A sentence about the connection, for stderr. */
  onStatus(message: string): void;
}

export interface EventStreamOptions {
  initialRetryMs?: number;
  maxRetryMs?: number;
  /** Time allowed to connect and get the response headers. */
  connectTimeoutMs?: number;
  /** Silence (not even a keepalive) after which the stream is taken as lost. */
  idleTimeoutMs?: number;
  /** The admin endpoint's bearer token (admin.token), sent as `Authorization: Bearer …`. */
  token?: string | null;
}

export interface EventStreamClient {
  stop(): void;
}

const DEFAULTS: Required<EventStreamOptions> = {
  initialRetryMs: 1000,
  maxRetryMs: 30_000,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 45_000,
  token: null,
};

/** What to do about an answer other than 200, by status. */
const STATUS_HINTS: Record<number, string> = {
  401: ': the admin endpoint requires a token; set TXPROXY_ADMIN_TOKEN or TXPROXY_ADMIN_TOKEN_FILE to its admin.token',
  404: ": is this txproxy's admin address (--http)?",
  503: ': too many subscribers (admin.max_event_subscribers)',
};

export function followEventStream(url: URL, handlers: EventStreamHandlers, options: EventStreamOptions = {}): EventStreamClient {
  const settings = { ...DEFAULTS, ...options };
  let baseRetryMs = settings.initialRetryMs;
  let retryMs = baseRetryMs;
  let stopped = false;
  let everConnected = false;
  let request: http.ClientRequest | null = null;
  let timer: NodeJS.Timeout | null = null;
  const decoder = new SseDecoder({
    onData: (data) => handlers.onEvent(data),
    onRetry: (ms) => {
      baseRetryMs = Math.max(100, ms);
    },
  });

  const connect = () => {
    timer = null;
    if (stopped) return;
    let failed = false;
    let connected = false;
    const fail = (reason: string) => {
      if (failed || stopped) return;
      failed = true;
      request?.destroy();
      request = null;
      decoder.reset();
      const seconds = formatSeconds(retryMs);
      handlers.onStatus(
        connected
          ? `lost the event stream from ${url.href} (${reason}); reconnecting in ${seconds}`
          : `cannot follow ${url.href} (${reason}); retrying in ${seconds}`,
      );
      timer = setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, settings.maxRetryMs);
    };
    const get = url.protocol === 'https:' ? https.get : http.get;
    const headers: http.OutgoingHttpHeaders = { accept: 'text/event-stream', 'cache-control': 'no-cache' };
    if (settings.token !== null) headers.authorization = `Bearer ${settings.token}`;
    request = get(url, { headers }, (response) => {
      const type = String(response.headers['content-type'] ?? '');
      if (response.statusCode !== 200) {
        response.resume();
        fail(`HTTP ${response.statusCode}${STATUS_HINTS[response.statusCode ?? 0] ?? ''}`);
        return;
      }
      if (!type.startsWith('text/event-stream')) {
        response.resume();
        fail(`answered ${type || 'without a content type'}, not text/event-stream`);
        return;
      }
      connected = true;
      retryMs = baseRetryMs;
      handlers.onStatus(everConnected ? `reconnected to ${url.href}; records written while disconnected are not shown` : `following ${url.href}`);
      everConnected = true;
      response.setEncoding('utf8');
      response.socket.setTimeout(settings.idleTimeoutMs, () => fail(`nothing received for ${formatSeconds(settings.idleTimeoutMs)}`));
      response.on('data', (chunk: string) => {
        if (!failed) decoder.push(chunk);
      });
      response.on('end', () => fail('the server closed the stream'));
      response.on('error', (err) => fail(err.message));
      response.on('close', () => fail('the connection closed'));
    });
    request.setTimeout(settings.connectTimeoutMs, () => {
      if (!connected) fail(`no answer within ${formatSeconds(settings.connectTimeoutMs)}`);
    });
    request.on('error', (err) => fail(err.message));
  };

  connect();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      request?.destroy();
      request = null;
    },
  };
}

function formatSeconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
