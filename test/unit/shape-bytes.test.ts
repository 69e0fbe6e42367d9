import t from 'tap';
import { literalSpans, Shape } from '../../src/sql/number-shape.js';
import { ShapeBytes } from '../../src/sql/shape-bytes.js';

/** `text` at `offset` of a buffer that is itself a view at `viewOffset` of a larger one, bytes around it not its own. */
function placed(text: string, offset: number, viewOffset: number): { buf: Buffer; start: number; end: number } {
  const whole = Buffer.alloc(viewOffset + offset + text.length + 8, 0x37);
  whole.write(text, viewOffset + offset, 'latin1');
  const buf = whole.subarray(viewOffset);
  return { buf, start: offset, end: offset + text.length };
}

t.test('a text matches its shape in bytes as it does as a string, at every alignment', async (t) => {
  const bases = ['7', 'x=1', 'id = 42', 'SELECT 12', 'UPDATE t SET v = v + 5 WHERE id = 1234;', 'VALUES (1, 22, 333, 4444)'];
  let compared = 0;
  for (const base of bases) {
    const spans = literalSpans(base)!;
    const shape = new Shape(base, spans);
    const bytes = ShapeBytes.of(shape.text, spans)!;
    // The text, others of its shape, and each one-character change of it (a literal's digit to a letter, a letter to another).
    const texts = [base, base.replace(/\d/g, '9'), base.replace(/\d/g, '0')];
    for (let i = 0; i < base.length; i++) {
      const c = base[i];
      texts.push(base.slice(0, i) + (/\d/.test(c) ? 'a' : c === 'z' ? 'y' : 'z') + base.slice(i + 1));
      texts.push(base.slice(0, i) + '\0' + base.slice(i + 1));
    }
    texts.push(base + ' ', base.slice(1));
    for (const text of texts) {
      for (let offset = 0; offset < 8; offset++) {
        for (const viewOffset of [0, 1, 3]) {
          const { buf, start, end } = placed(text, offset, viewOffset);
          const matches = bytes.matches(buf, start, end);
          t.equal(matches, shape.matches(text), `${JSON.stringify(text)} at ${offset}+${viewOffset}`);
          if (matches) t.equal(bytes.render(bytes.literalValues(buf, start)!), text, 'made again from its literals');
          compared++;
        }
      }
    }
  }
  t.ok(compared > 1000, `${compared} comparisons`);
});

t.test("a match's literals are read as numbers, and only where a double holds them exactly", async (t) => {
  const base = 'SELECT 007, 12 FROM t LIMIT 999999999999999';
  const spans = literalSpans(base)!;
  const bytes = ShapeBytes.of(new Shape(base, spans).text, spans)!;
  const { buf, start, end } = placed(base, 5, 1);
  t.ok(bytes.matches(buf, start, end));
  t.same(bytes.literalValues(buf, start), [7, 12, 999999999999999]);
  t.equal(bytes.render([7, 12, 999999999999999]), base, 'leading zeros and all');
  t.equal(bytes.render([0, 0, 0]), 'SELECT 000, 00 FROM t LIMIT 000000000000000');
  const longer = 'SELECT 1 LIMIT 1234567890123456';
  const longSpans = literalSpans(longer)!;
  t.equal(ShapeBytes.of(new Shape(longer, longSpans).text, longSpans)!.literalValues(Buffer.from(longer), 0), null, '16 digits');
  t.equal(ShapeBytes.of('SELECT é', []), null, 'not plain ASCII');
});

t.test('a statement of a text is rendered into a buffer as it is in the text, and only plain JSON bodies are json-safe', async (t) => {
  const text = 'UPDATE t SET v = v + 5 WHERE id = 1234; SELECT 42, 7;';
  const spans = literalSpans(text)!;
  const bytes = ShapeBytes.of(new Shape(text, spans).text, spans)!;
  const values = bytes.literalValues(Buffer.from(text), 0)!;
  const out = Buffer.alloc(text.length + 10, 0x2a);
  // Each cut that leaves the literals whole: their own edges, the statements', the whole text's.
  const cuts = [0, ...spans, text.indexOf(';') + 1, text.length];
  for (const from of cuts) {
    for (const to of cuts) {
      if (to < from) continue;
      out.fill(0x2a);
      const end = bytes.renderInto(values, from, to, out, 3);
      t.equal(end, 3 + to - from);
      t.equal(out.toString('latin1', 3, end), text.slice(from, to), `[${from}, ${to})`);
      t.equal(out[2], 0x2a, 'nothing before');
      t.equal(out[end], 0x2a, 'nothing after');
    }
  }
  t.ok(bytes.jsonSafe);
  for (const unsafe of ['SELECT "v" FROM t WHERE id = 1', 'SELECT\t1', 'SELECT 1\nFROM t']) {
    const s = literalSpans(unsafe)!;
    t.notOk(ShapeBytes.of(new Shape(unsafe, s).text, s)!.jsonSafe, JSON.stringify(unsafe));
  }
});
