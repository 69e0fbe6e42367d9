/**
 * What a dry-run request would have changed: one entry per data-changing
 * command, with the rows its command tag reports. Work the request undid
 * itself (ROLLBACK TO a savepoint, or the rollback of its own block, which
 * single-transaction turns into ROLLBACK TO) is taken back out, so the
 * report is what a real run would have left behind.
 */
import { rowsOfTag } from '../tracker/command-tag.js';

export interface Change {
  command: 'INSERT' | 'UPDATE' | 'DELETE' | 'MERGE' | 'COPY';
  rows: number;
  statement: string;
}

const COMMANDS = new Set<string>(['INSERT', 'UPDATE', 'DELETE', 'MERGE']);

export class DryRunChanges {
  private readonly changes: Change[] = [];
  /** Open savepoints and how many changes there were when each was set. */
  private readonly marks: { name: string; count: number }[] = [];

  get list(): readonly Change[] {
    return this.changes;
  }

  get rowsTotal(): number {
    let total = 0;
    for (const change of this.changes) total += change.rows;
    return total;
  }

  /** A command completed with `tag`; `copyIn` when it was COPY … FROM STDIN. */
  completed(tag: string, statement: string, copyIn: boolean): void {
    const rows = rowsOfTag(tag);
    if (rows === null) return;
    const verb = tag.slice(0, tag.indexOf(' '));
    if (COMMANDS.has(verb) || (verb === 'COPY' && copyIn)) {
      this.changes.push({ command: verb as Change['command'], rows, statement });
    }
  }

  savepoint(op: 'create' | 'release' | 'rollback_to', name: string): void {
    const i = this.lastMark(name);
    if (op === 'create') {
      this.marks.push({ name, count: this.changes.length });
    } else if (i >= 0 && op === 'release') {
      this.marks.length = i;
    } else if (i >= 0) {
      this.changes.length = this.marks[i].count;
      this.marks.length = i + 1;
    }
  }

  private lastMark(name: string): number {
    for (let i = this.marks.length - 1; i >= 0; i--) if (this.marks[i].name === name) return i;
    return -1;
  }
}
