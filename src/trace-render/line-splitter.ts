/**
 * Cuts a stream of text chunks into lines, numbered from 1, whatever the
 * chunk boundaries. Both `\n` and `\r\n` end a line; a last line without a
 * newline is delivered by `end()`.
 */
export class LineSplitter {
  private partial = '';
  private lineNumber = 0;

  constructor(private readonly onLine: (line: string, lineNumber: number) => void) {}

  push(chunk: string): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) break;
      // Join with the carried-over piece only when a line spans chunks.
      const piece = chunk.slice(start, nl);
      const line = this.partial === '' ? piece : this.partial + piece;
      this.partial = '';
      this.emit(line);
      start = nl + 1;
    }
    if (start < chunk.length) this.partial += chunk.slice(start);
  }

  end(): void {
    if (this.partial !== '') {
      const line = this.partial;
      this.partial = '';
      this.emit(line);
    }
  }

  private emit(line: string): void {
    this.lineNumber++;
    this.onLine(line.endsWith('\r') ? line.slice(0, -1) : line, this.lineNumber);
  }
}
