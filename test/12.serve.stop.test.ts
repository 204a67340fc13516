// OpenAI stop strings over streamed text: cut before the first one, a tail that may still become one held back,
// a held tail that does not complete released, nothing after a stop.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { StopStrings } from '../ts/serve/stop_strings.js';

const run = (stops: string[], pieces: string[]) => {
  const s = new StopStrings(stops);
  const out = pieces.map((p) => s.push(p));
  return { out, rest: s.flush(), stopped: s.stopped };
};

test('a stop string inside one piece or across pieces cuts the text before it', () => {
  assert.equal(run(['END'], ['abcENDxyz', 'more']), { out: ['abc', ''], rest: '', stopped: true });
  assert.equal(run(['END'], ['ab', 'cE', 'N', 'Dxy']), { out: ['ab', 'c', '', ''], rest: '', stopped: true });
  // The earliest of several wins.
  assert.equal(run(['zz', 'b'], ['azzb']), { out: ['a'], rest: '', stopped: true });
  assert.equal(run(['\n\n', '###'], ['one\n', 'two##', '#three']), { out: ['one', '\ntwo', ''], rest: '', stopped: true });
});

test('a held tail that does not become a stop string is released; without stops everything passes', () => {
  assert.equal(run(['END'], ['abE', 'Nx', 'y']), { out: ['ab', 'ENx', 'y'], rest: '', stopped: false });
  assert.equal(run(['END'], ['abEN']), { out: ['ab'], rest: 'EN', stopped: false });
  assert.equal(run([], ['a', 'b']), { out: ['a', 'b'], rest: '', stopped: false });
});

test.run();
