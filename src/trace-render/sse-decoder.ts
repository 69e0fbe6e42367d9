/**
 * Decodes a server-sent events stream (text/event-stream) into the data of
 * each event, following the WHATWG HTML "event stream interpretation":
 * lines end with CR, LF or CRLF; `data:` lines of one event are joined with
 * LF; a blank line dispatches the event; `:` lines are comments (txproxy's
 * keepalives); `retry:` sets the reconnection delay; `event:` and `id:` are
 * read and ignored (txproxy sends neither).
 * https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export interface SseHandlers {
  onData(data: string): void;
  onRetry?(ms: number): void;
}

export class SseDecoder {
  private line = '';
  private data: string[] = [];
  /** A CR ended the last chunk: an LF starting the next one belongs to it. */
  private afterCr = false;
  private first = true;

  constructor(private readonly handlers: SseHandlers) {}

  push(chunk: string): void {
    let text = chunk;
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let start = 0;
    if (this.afterCr && text.startsWith('\n')) start = 1;
    this.afterCr = false;
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line += text.slice(start, i);
      this.processLine(this.line);
      this.line = '';
      if (c === 13) {
        if (i + 1 < text.length) {
          if (text.charCodeAt(i + 1) === 10) i++;
        } else {
          this.afterCr = true;
        }
      }
      start = i + 1;
    }
    this.line += text.slice(start);
  }

  /** The stream closed: an event without its blank line is discarded, as the spec says. */
  reset(): void {
    this.line = '';
    this.data = [];
    this.afterCr = false;
    this.first = true;
  }

  private processLine(line: string): void {
    if (line === '') {
      if (this.data.length > 0) {
        const data = this.data.join('\n');
        this.data = [];
        this.handlers.onData(data);
      }
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
  }
}
