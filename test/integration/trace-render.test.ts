/**
 * The transcript of traces recorded through a real txproxy in front of a
 * real PostgreSQL, driven by node-postgres: the renderer must reproduce the
 * transaction boundaries the server really had.
 */
import t from 'tap';
import type pg from 'pg';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';
import { blocksOf, render, transactionBlocks, type Block } from '../unit/trace-render/fixtures.js';

const postgres = await startPostgres();
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});
await postgres.sql('CREATE TABLE items (id serial PRIMARY KEY, name text UNIQUE)');

/** Runs a workload on its own session and returns the trace records it produced, session end included. */
async function record(workload: (client: pg.Client) => Promise<void>): Promise<Record<string, unknown>[]> {
  const from = proxy.trace.records.length;
  const client = await proxy.client();
  await workload(client);
  await client.end();
  await eventually(() => proxy.trace.records.slice(from).some((r) => r.kind === 'session' && r.event === 'end'), 5000, 'session end record');
  return proxy.trace.records.slice(from);
}

const names = (rows: { name: string }[]) => rows.map((r) => r.name);
const statementsOf = (block: Block) => block.statements.map((s) => [s.tag, s.sql]);

t.test('(a) two autocommit INSERTs: two implicit blocks, flagged not atomic for the one request', async (t) => {
  const records = await record(async (c) => {
    // Parameters: the extended protocol, as ORMs send it.
    await c.query('INSERT INTO items (name) VALUES ($1)', ['order-1']);
    await c.query('INSERT INTO items (name) VALUES ($1)', ['address-1']);
  });
  const { text, problems } = render(records);
  t.same(problems, []);
  const blocks = transactionBlocks(text);
  t.equal(blocks.length, 2, 'one block per autocommit statement');
  for (const block of blocks) {
    t.match(block.title, /· implicit \(autocommit\) · commit · .* · 1 statement · 1 write$/);
    t.same(statementsOf(block).map(([tag]) => tag), ['INSERT 0 1']);
  }
  t.same(blocks.map((b) => b.statements[0].sql), ['INSERT INTO items (name) VALUES ($1)', 'INSERT INTO items (name) VALUES ($1)']);
  const [first, second] = blocks;
  const firstId = /^── tx (\S+)/.exec(first.title)![1];
  t.notMatch(first.lines.join('\n'), /not atomic/, 'the first write alone is not yet a problem');
  t.match(second.lines.join('\n'), new RegExp(`WARNING not atomic: autocommit transaction 2 with writes in request \\S+ \\(after ${firstId.replace('.', '\\.')}\\)`));
  const summaries = blocksOf(text).filter((b) => b.title.startsWith('── request '));
  t.equal(summaries.length, 1, 'one request summary');
  t.match(summaries[0].lines[1], /WARNING not atomic: 2 separate autocommit transactions wrote/);
});

t.test('(b) the same inside BEGIN/COMMIT: one explicit block, atomic', async (t) => {
  const records = await record(async (c) => {
    await c.query('BEGIN');
    await c.query('INSERT INTO items (name) VALUES ($1)', ['order-2']);
    await c.query('INSERT INTO items (name) VALUES ($1)', ['address-2']);
    await c.query('COMMIT');
  });
  const { text } = render(records);
  const blocks = transactionBlocks(text);
  t.equal(blocks.length, 1);
  t.match(blocks[0].title, /· explicit · commit · .* · 4 statements · 2 writes$/);
  t.same(statementsOf(blocks[0]), [
    ['BEGIN', 'BEGIN'],
    ['INSERT 0 1', 'INSERT INTO items (name) VALUES ($1)'],
    ['INSERT 0 1', 'INSERT INTO items (name) VALUES ($1)'],
    ['COMMIT', 'COMMIT'],
  ]);
  t.same(blocks[0].statements.map((s) => s.indent), [0, 0, 0, 0]);
  t.notMatch(text, /not atomic|read-only|late record|unfinished/);
});

t.test('several statements in one simple Query are one implicit transaction: atomic', async (t) => {
  const records = await record(async (c) => {
    await c.query("INSERT INTO items (name) VALUES ('order-3'); INSERT INTO items (name) VALUES ('address-3')");
  });
  const { text } = render(records);
  const blocks = transactionBlocks(text);
  t.equal(blocks.length, 1);
  t.match(blocks[0].title, /· implicit \(autocommit\) · commit · .* · 2 statements · 2 writes$/);
  t.same(statementsOf(blocks[0]).map(([, sql]) => sql), ["INSERT INTO items (name) VALUES ('order-3')", "INSERT INTO items (name) VALUES ('address-3')"]);
  t.notMatch(text, /not atomic/);
});

t.test('COMMIT inside a multi-statement Query ends the implicit transaction it is part of', async (t) => {
  const records = await record(async (c) => {
    await c.query("INSERT INTO items (name) VALUES ('order-4'); COMMIT; INSERT INTO items (name) VALUES ('address-4')");
  });
  const { text } = render(records);
  const blocks = transactionBlocks(text);
  t.same(
    blocks.map((b) => statementsOf(b).map(([tag]) => tag)),
    [['INSERT 0 1', 'COMMIT'], ['INSERT 0 1']],
    'the COMMIT, written after its transaction record, is still in its block',
  );
  t.notMatch(text, /late record/);
});

t.test('(c) a read-only BEGIN/SELECT/ROLLBACK is flagged as not needing a transaction', async (t) => {
  const records = await record(async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT name FROM items WHERE name = $1', ['order-2']);
    await c.query('ROLLBACK');
  });
  const blocks = transactionBlocks(render(records).text);
  t.equal(blocks.length, 1);
  t.match(blocks[0].title, /· explicit · rollback · .* · 3 statements · 0 writes$/);
  t.same(statementsOf(blocks[0]), [
    ['BEGIN', 'BEGIN'],
    ['SELECT 1', 'SELECT name FROM items WHERE name = $1'],
    ['ROLLBACK', 'ROLLBACK'],
  ]);
  t.match(blocks[0].lines.join('\n'), /NOTICE read-only: 1 read, no writes or row locks; this transaction was not needed/);
});

t.test('a read that locks rows does need its transaction: not flagged', async (t) => {
  const records = await record(async (c) => {
    await c.query('BEGIN');
    await c.query('SELECT id FROM items WHERE name = $1 FOR UPDATE', ['order-2']);
    await c.query('COMMIT');
  });
  const blocks = transactionBlocks(render(records).text);
  t.equal(blocks.length, 1);
  t.notMatch(blocks[0].lines.join('\n'), /read-only/);
});

t.test('(d) nested savepoints with ROLLBACK TO: an indented tree, the rolled-back part marked', async (t) => {
  const records = await record(async (c) => {
    await c.query('BEGIN');
    await c.query("INSERT INTO items (name) VALUES ('tree-a')");
    await c.query('SAVEPOINT outer_sp');
    await c.query("INSERT INTO items (name) VALUES ('tree-b')");
    await c.query('SAVEPOINT inner_sp');
    await c.query("INSERT INTO items (name) VALUES ('tree-c')");
    await t.rejects(c.query("INSERT INTO items (name) VALUES ('tree-a')"), { code: '23505' });
    await c.query('ROLLBACK TO SAVEPOINT inner_sp');
    await c.query("INSERT INTO items (name) VALUES ('tree-d')");
    await c.query('RELEASE SAVEPOINT inner_sp');
    await c.query("INSERT INTO items (name) VALUES ('tree-e')");
    await c.query('RELEASE SAVEPOINT outer_sp');
    await c.query('COMMIT');
  });
  const stored = await postgres.sql("SELECT name FROM items WHERE name LIKE 'tree-%' ORDER BY name");
  t.same(names(stored.rows), ['tree-a', 'tree-b', 'tree-d', 'tree-e'], 'what the server kept');

  const blocks = transactionBlocks(render(records).text);
  t.equal(blocks.length, 1);
  const [block] = blocks;
  t.match(block.title, /· explicit · commit · .* · 13 statements · 5 writes$/);
  t.match(block.lines[1], /2 savepoints \(1 rolled back to\) · .*first error 23505/);
  t.same(
    block.statements.map((s) => [s.indent, s.sql]),
    [
      [0, 'BEGIN'],
      [0, "INSERT INTO items (name) VALUES ('tree-a')"],
      [0, 'SAVEPOINT outer_sp'],
      [1, "INSERT INTO items (name) VALUES ('tree-b')"],
      [1, 'SAVEPOINT inner_sp'],
      [2, "INSERT INTO items (name) VALUES ('tree-c')"],
      [2, "INSERT INTO items (name) VALUES ('tree-a')"],
      [1, 'ROLLBACK TO SAVEPOINT inner_sp'],
      [2, "INSERT INTO items (name) VALUES ('tree-d')"],
      [1, 'RELEASE SAVEPOINT inner_sp'],
      [1, "INSERT INTO items (name) VALUES ('tree-e')"],
      [0, 'RELEASE SAVEPOINT outer_sp'],
      [0, 'COMMIT'],
    ],
    'SAVEPOINT opens a level; RELEASE and ROLLBACK TO sit at the level of the savepoint they close or rewind',
  );
  const seqOf = (i: number) => block.statements[i].seq;
  const rollbackSeq = seqOf(7);
  t.same(
    block.statements.map((s) => s.suffix),
    ['', '', '', '', '', `↶ rolled back by #${rollbackSeq}`, `↶ rolled back by #${rollbackSeq}`, `↶ undid #${seqOf(5)}, #${seqOf(6)} (2 statements)`, '', '', '', '', ''],
    'exactly the statements the server undid are marked',
  );
  t.same(block.statements.map((s) => s.gutter), ['', '', '', '│', '│', '│╎', '│╎', '│', '││', '│', '│', '', '']);
  t.equal(block.statements[6].tag, 'ERROR 23505');
  t.match(block.statements[6].details, [/^ERROR 23505: duplicate key value violates unique constraint "items_name_key"$/], 'the error inline with its SQLSTATE');
});
