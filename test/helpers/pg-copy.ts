/**
 * COPY FROM STDIN / TO STDOUT with node-postgres itself, through its
 * "submittable" query interface (the hook pg-copy-streams builds on): the
 * client sends a simple Query, then CopyData/CopyDone (or CopyFail) on
 * CopyInResponse, and collects CopyData until ReadyForQuery.
 */
import type pg from 'pg';

interface PgConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
  sendCopyFail(message: string): void;
}

export interface CopyResult {
  /** The CommandComplete tag, e.g. `COPY 3`. */
  tag: string | null;
  /** CopyData payloads received (COPY TO STDOUT). */
  data: Buffer[];
}

class CopySubmittable {
  private tag: string | null = null;
  private readonly data: Buffer[] = [];
  readonly done: Promise<CopyResult>;
  private settle!: (err: Error | null) => void;

  constructor(
    private readonly text: string,
    private readonly input: Buffer[] | { fail: string } | null,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.settle = (err) => (err === null ? resolve({ tag: this.tag, data: this.data }) : reject(err));
    });
  }

  submit(connection: PgConnection): void {
    connection.query(this.text);
  }

  handleCopyInResponse(connection: PgConnection): void {
    if (this.input === null) {
      connection.sendCopyFail('no data to send');
    } else if (Array.isArray(this.input)) {
      for (const chunk of this.input) connection.sendCopyFromChunk(chunk);
      connection.endCopyFrom();
    } else {
      connection.sendCopyFail(this.input.fail);
    }
  }

  handleCopyData(message: { chunk: Buffer }): void {
    this.data.push(message.chunk);
  }

  handleCommandComplete(message: { text: string }): void {
    this.tag = message.text;
  }

  /** node-postgres forgets the query on an error: ReadyForQuery will not reach it. */
  handleError(err: Error): void {
    this.settle(err);
  }

  handleReadyForQuery(): void {
    this.settle(null);
  }

  handleRowDescription(): void {}
  handleDataRow(): void {}
  handleEmptyQuery(): void {}
  handlePortalSuspended(): void {}
}

/** `COPY … FROM STDIN` sending `chunks` (or failing with CopyFail when given `{ fail }`). */
export function copyIn(client: pg.Client, text: string, chunks: Buffer[] | { fail: string }): Promise<CopyResult> {
  const submittable = new CopySubmittable(text, chunks);
  (client as unknown as { query(q: unknown): void }).query(submittable);
  return submittable.done;
}

/** `COPY … TO STDOUT`: the CopyData payloads and the tag. */
export function copyOut(client: pg.Client, text: string): Promise<CopyResult> {
  const submittable = new CopySubmittable(text, null);
  (client as unknown as { query(q: unknown): void }).query(submittable);
  return submittable.done;
}
