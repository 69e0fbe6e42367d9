/**
 * How the server will read the strings of the client's next message: the
 * session's standard_conforming_strings (lexer.ts says what it changes).
 *
 * The server reports the setting in ParameterStatus at the start and after
 * every change, but only just before the ReadyForQuery that ends the message
 * which changed it (PostgreSQL 14 and later), and a client may have sent
 * more by then: `SET standard_conforming_strings = off` and a Parse in the
 * same batch, or two pipelined Queries. So a SET or RESET of it that the
 * client sends counts at once, for the messages after it, until the server's
 * report for that point arrives. When nothing is in flight, the last report
 * is the truth (a SET that failed changed nothing, and says nothing).
 */
import type { StatementInfo } from '../sql/classify.js';

const SETTING = 'standard_conforming_strings';

export class StringSyntax {
  /** What the server reported last. */
  private reported = true;
  /** What it reported when the session began: what RESET goes back to. */
  private sessionDefault = true;
  /**
   * The ReadyForQuery (by count) before which the server reports the change
   * the client's last SET or RESET makes; 0 when none is pending.
   */
  private predictedUntil = 0;
  private readies = 0;
  /** The setting the server will read the client's next message with. */
  standardConformingStrings = true;

  /** ParameterStatus: PostgreSQL sends `on` or `off`. */
  parameterStatus(name: string, value: string): void {
    if (name !== SETTING) return;
    this.reported = value === 'on';
    // The report comes before the ReadyForQuery that is next: unless a later message changes it again, it holds.
    if (this.predictedUntil <= this.readies + 1) {
      this.predictedUntil = 0;
      this.standardConformingStrings = this.reported;
    }
  }

  /** The first ReadyForQuery: the value now is the one RESET returns to. */
  sessionReady(): void {
    this.sessionDefault = this.reported;
  }

  /**
   * A ReadyForQuery; `idle` when nothing else is in flight, so the
   * server's last report is the setting.
   */
  ready(idle: boolean): void {
    this.readies++;
    if (idle || this.predictedUntil <= this.readies) {
      this.predictedUntil = 0;
      this.standardConformingStrings = this.reported;
    }
  }

  /**
   * A statement the client sends; `readiesAhead` counts the ReadyForQuery
   * messages the server sends before the one that ends this statement's
   * message (the Query or Sync not yet sent counts as one).
   */
  statementSent(info: StatementInfo, readiesAhead: number): void {
    const value = this.settingOf(info);
    if (value === null) return;
    this.standardConformingStrings = value;
    this.predictedUntil = this.readies + readiesAhead;
  }

  /** What a SET/RESET/DISCARD statement makes the setting, or null when it does not touch it. */
  private settingOf(info: StatementInfo): boolean | null {
    const operation = info.operation;
    if (operation === 'RESET') return /^reset\s+(?:all|standard_conforming_strings)\s*$/i.test(info.text) ? this.sessionDefault : null;
    if (operation === 'DISCARD') return /^discard\s+all\s*$/i.test(info.text) ? this.sessionDefault : null;
    if (operation !== 'SET') return null;
    const match = /^set\s+(?:(?:session|local)\s+)?standard_conforming_strings\s*(?:=|\s+to\s+)\s*(.*)$/is.exec(info.text);
    if (match === null) return null;
    const value = match[1].trim();
    if (/^default$/i.test(value)) return this.sessionDefault;
    return parseBool(value.replace(/^'(.*)'$/s, '$1'));
  }
}

/** PostgreSQL's parse_bool: on/off, true/false, yes/no, 1/0, and unique prefixes of them. */
export function parseBool(text: string): boolean | null {
  const value = text.toLowerCase();
  if (value === '') return null;
  if ('true'.startsWith(value) || 'yes'.startsWith(value) || value === 'on' || value === '1') return true;
  if ('false'.startsWith(value) || 'no'.startsWith(value) || value === 'of' || value === 'off' || value === '0') return false;
  return null;
}
