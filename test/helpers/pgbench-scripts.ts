/**
 * pgbench's savepoint script: BEGIN, SAVEPOINT, ROLLBACK TO, RELEASE and
 * COMMIT in one transaction. Per transaction: 11 statements, 3 savepoints
 * created (depth 3 at most), one ROLLBACK TO (undoing the history INSERT),
 * and RELEASE of the oldest, which releases all 3.
 */
export const SAVEPOINT_SCRIPT = `\\set aid random(1, 100000 * :scale)
\\set tid random(1, 10 * :scale)
\\set bid random(1, :scale)
\\set delta random(-5000, 5000)
BEGIN;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
SAVEPOINT s1;
UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
SAVEPOINT "S2";
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
ROLLBACK TO SAVEPOINT "S2";
SAVEPOINT s3;
UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
RELEASE SAVEPOINT s1;
COMMIT;
`;
