import t from 'tap';
import { colourStyle, plainStyle, wantsColour } from '../../../src/trace-render/style.js';
import { render, statement, transaction } from './fixtures.js';

t.test('colour on a terminal unless NO_COLOR; FORCE_COLOR asks for it anywhere', async (t) => {
  t.equal(wantsColour(true, {}), true);
  t.equal(wantsColour(false, {}), false);
  t.equal(wantsColour(true, { NO_COLOR: '1' }), false);
  t.equal(wantsColour(true, { NO_COLOR: '' }), true, 'an empty NO_COLOR is unset (no-color.org)');
  t.equal(wantsColour(false, { FORCE_COLOR: '1' }), true);
  t.equal(wantsColour(false, { FORCE_COLOR: '0' }), false);
  t.equal(wantsColour(true, { FORCE_COLOR: '1', NO_COLOR: '1' }), false, 'NO_COLOR wins');
});

t.test('the coloured transcript is the plain one plus ANSI styles', async (t) => {
  const records = [
    statement('1', '1.t1', 1, 'INSERT INTO t VALUES (1)', { 'db.response.status_code': '23505', 'pg.command_tag': null, 'error.message': 'duplicate key' }),
    transaction('1', '1.t1', { outcome: 'failed' }),
  ];
  const plain = render(records, undefined, plainStyle).text;
  const coloured = render(records, undefined, colourStyle).text;
  t.notMatch(plain, /\x1b\[/);
  t.match(coloured, /\x1b\[31m/, 'errors in red');
  t.equal(coloured.replace(/\x1b\[\d+m/g, ''), plain);
});
