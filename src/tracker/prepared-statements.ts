/**
 * The extended protocol's named objects on one session: prepared
 * statements (Parse), the portals bound to them (Bind), and each portal's
 * run since its Bind. They outlive batches and transactions, until the
 * client closes them or the session ends, so the tracker can tell what an
 * Execute runs long after its Parse.
 */
import { classifyStatement, type StatementInfo } from '../sql/classify.js';
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { PortalRun } from './transaction-ledger.js';

/** What the client prepared: statement name → SQL and its classification. */
export interface Prepared {
  /** The prepared statement's name ('' for the unnamed one). */
  name: string;
  text: string;
  info: StatementInfo;
  tags: SqlCommenterTags | null;
}

/** What a statement or portal the tracker never saw prepared runs, as far as it can tell. */
export const UNKNOWN_STATEMENT: Prepared = {
  name: '',
  text: '',
  info: classifyStatement(''),
  tags: null,
};

export class PreparedStatements {
  private readonly statements = new Map<string, Prepared>();
  private readonly portals = new Map<string, Prepared>();
  /** Portals executed since their Bind (see PortalRun). */
  private readonly runs = new Map<string, PortalRun>();

  /** Parse: the statement of that name is (re)defined. */
  parsed(prepared: Prepared): void {
    this.statements.set(prepared.name, prepared);
  }

  /** Bind: the portal runs the named statement from now on. */
  bound(portal: string, statementName: string): Prepared {
    const prepared = this.statements.get(statementName) ?? { ...UNKNOWN_STATEMENT, name: statementName };
    this.portals.set(portal, prepared);
    // A new portal of that name: its first Execute runs it afresh.
    this.runs.delete(portal);
    return prepared;
  }

  /** Close of a statement ('S') or a portal ('P'). */
  closed(target: 'S' | 'P', name: string): void {
    if (target === 'S') this.statements.delete(name);
    else {
      this.portals.delete(name);
      this.runs.delete(name);
    }
  }

  statement(name: string): Prepared | undefined {
    return this.statements.get(name);
  }

  portal(name: string): Prepared | undefined {
    return this.portals.get(name);
  }

  /** Execute: the portal's run since its Bind, begun by its first Execute. */
  runOf(portal: string): PortalRun {
    let run = this.runs.get(portal);
    if (run === undefined) {
      run = { written: false };
      this.runs.set(portal, run);
    }
    return run;
  }
}
