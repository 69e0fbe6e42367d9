import t from 'tap';
import { optionSettings, settingsSql, startupSettings } from '../../src/pool/startup-settings.js';

t.test('options: -c name=value, -cname=value and --name=value, with backslash escapes', async (t) => {
  const cases: [string, [string, string][]][] = [
    ['-c search_path=a,b', [['search_path', 'a,b']]],
    ['-csearch_path=a -c work_mem=4MB', [['search_path', 'a'], ['work_mem', '4MB']]],
    ['--geqo-threshold=9', [['geqo_threshold', '9']]],
    ['-c application_name=with\\ space', [['application_name', 'with space']]],
    ['  -c\tx.y=1  \n', [['x.y', '1']]],
    ['-c a=b\\\\', [['a', 'b\\']]],
    ['-B 100 -c a=1 -e', [['a', '1']]],
    ['-c =nothing -c novalue', []],
    ['', []],
  ];
  for (const [options, expected] of cases) t.same(optionSettings(options), expected, JSON.stringify(options));
});

t.test('startup parameters: options first, then every parameter that is a setting', async (t) => {
  t.same(
    startupSettings({ user: 'u', database: 'd', application_name: 'app', options: '-c work_mem=1MB', client_encoding: 'UTF8', '_pq_.x': '1', replication: 'false' }),
    [
      ['work_mem', '1MB'],
      ['application_name', 'app'],
      ['client_encoding', 'UTF8'],
    ],
  );
});

t.test('settings SQL quotes every name and value so that it means the same whatever standard_conforming_strings says', async (t) => {
  t.equal(settingsSql([]), '');
  t.equal(
    settingsSql([
      ['application_name', "it's"],
      ['x.y', 'back\\slash'],
    ]),
    "SELECT pg_catalog.set_config(E'application_name', E'it''s', false);SELECT pg_catalog.set_config(E'x.y', E'back\\\\slash', false);",
  );
});
