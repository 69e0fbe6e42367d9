/**
 * The live transcript sink: records in as txproxy writes them, transaction
 * blocks out as soon as they are complete; one still waiting for more of
 * its records is shown after a pause, or when the trace is flushed.
 */
import t from 'tap';
import { transcriptSink, type TextWriter } from '../../src/trace-render/live-transcript.js';
import { plainStyle } from '../../src/trace-render/style.js';
import { eventually } from '../helpers/proxy.js';
import { pin, session, statement, transaction } from './trace-render/fixtures.js';

function writer(): TextWriter & { text: string; flushes: number } {
  return {
    text: '',
    flushes: 0,
    write(text) {
      this.text += text;
    },
    async flush() {
      this.flushes++;
    },
  };
}

const line = (record: Record<string, unknown>) => JSON.stringify(record);

t.test('an explicit transaction is shown once its transaction record comes', async (t) => {
  const out = writer();
  const sink = transcriptSink(out, plainStyle, 60_000);
  sink.writeLine(line(session('s1', 'start')));
  t.match(out.text, /── session s1 started · web@app · application shop/);
  sink.writeLine(line(statement('s1', 's1.t1', 1, 'BEGIN')));
  sink.writeLine(line(statement('s1', 's1.t1', 2, "INSERT INTO notes VALUES ('a')", { 'pg.command_tag': 'INSERT 0 1' })));
  sink.writeLine(line(statement('s1', 's1.t1', 3, 'COMMIT')));
  t.notMatch(out.text, /── tx/, 'nothing until the transaction ends');
  sink.writeLine(line(transaction('s1', 's1.t1', { implicit: false, statements: 3, writes: 1 })));
  t.match(out.text, /── tx s1\.t1 · explicit · commit · 2\.00 ms · 3 statements · 1 write\n/);
  t.match(out.text, /#2 +0\.50 ms {2}INSERT 0 1 +INSERT INTO notes VALUES \('a'\)\n/);
  t.notMatch(out.text, /\{"kind"/, 'no NDJSON');
});

t.test('an autocommit transaction, held for a closing statement that does not come, is shown after the pause', async (t) => {
  const out = writer();
  const sink = transcriptSink(out, plainStyle, 20);
  sink.writeLine(line(statement('s2', 's2.t1', 1, 'SELECT 1')));
  sink.writeLine(line(transaction('s2', 's2.t1')));
  await eventually(() => /── tx s2\.t1 · implicit/.test(out.text), 5000, 'the held block');
  t.pass('shown without another record');
});

t.test('flush shows what is held, then flushes the writer', async (t) => {
  const out = writer();
  const sink = transcriptSink(out, plainStyle, 60_000);
  sink.writeLine(line(statement('s3', 's3.t1', 1, 'SELECT 1')));
  sink.writeLine(line(transaction('s3', 's3.t1')));
  t.notMatch(out.text, /── tx/);
  await sink.flush();
  t.match(out.text, /── tx s3\.t1/);
  t.equal(out.flushes, 1);
});

t.test('a pin is shown as it comes, after the held transaction of its session', async (t) => {
  const out = writer();
  const sink = transcriptSink(out, plainStyle, 60_000);
  sink.writeLine(line(statement('s4', 's4.t1', 1, 'LISTEN jobs', { 'pg.command_tag': 'LISTEN' })));
  sink.writeLine(line(transaction('s4', 's4.t1')));
  t.notMatch(out.text, /── tx/, 'held for a closing statement');
  sink.writeLine(line(pin('s4', 'pin', 4242, ['listen'])));
  t.match(out.text, /── tx s4\.t1 · implicit[^]*\n\n── pinned to backend 4242: listen · session s4 · \S+ \S+ UTC\n\n$/);
  sink.writeLine(line(pin('s4', 'unpin', 4242, ['listen'])));
  t.match(out.text, /── unpinned from backend 4242: listen · session s4 · \S+ \S+ UTC\n\n$/, 'without waiting for anything');
});
