/** How the transcript shows a transaction whose statements tail sampling partly left out. */
import t from 'tap';
import { render, statement, transaction } from './fixtures.js';

t.test('statements_dropped: named as left out by trace.keep, not as missing', async (t) => {
  const { text, problems } = render([
    statement('s1', 's1.t1', 40, "INSERT INTO t VALUES (1)", { 'db.response.status_code': '23505', 'error.message': 'duplicate key' }),
    statement('s1', 's1.t1', 41, 'ROLLBACK'),
    transaction('s1', 's1.t1', { implicit: false, outcome: 'failed', statements: 41, statements_dropped: 39 }),
  ]);
  t.same(problems, []);
  t.match(text, /39 statements not traced \(trace\.keep held too many\)/);
  t.notMatch(text, /missing from the trace/);
});

t.test('records lost besides: both counts', async (t) => {
  const { text } = render([
    statement('s1', 's1.t2', 50, 'ROLLBACK'),
    transaction('s1', 's1.t2', { implicit: false, outcome: 'failed', statements: 50, statements_dropped: 39 }),
  ]);
  t.match(text, /39 statements not traced \(trace\.keep held too many\) · 10 statements missing from the trace/);
});
