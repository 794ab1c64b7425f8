import { describe, expect, it } from 'vitest';
import { partition } from '../../src/core/keys.js';
import type { SigningKeyRow } from '../../src/store/schema.js';

const MINUTE = 60_000;
/** Access-token lifetime plus leeway, as the keyring computes it: (900 + 60) s. */
const RETIRE_AFTER = 960_000;
const T0 = Date.UTC(2026, 0, 1);

function key(kid: string, activatesAt: number): SigningKeyRow {
  return { kid, alg: 'ES256', public_jwk: '{}', private_jwk: '{}', created_at: activatesAt - 60 * MINUTE, activates_at: activatesAt };
}

/** `{ kid: state }` for kept keys, and the dropped kids. */
function states(rows: SigningKeyRow[], now: number): { keep: Record<string, string>; drop: string[] } {
  const { keep, drop } = partition(rows, now, RETIRE_AFTER);
  return { keep: Object.fromEntries(keep.map(({ row, state }) => [row.kid, state])), drop: drop.map((r) => r.kid) };
}

describe('partition (signing-key states from activation times)', () => {
  it('makes a single key whose time has come active', () => {
    expect(states([key('a', T0)], T0)).toEqual({ keep: { a: 'active' }, drop: [] });
    expect(states([key('a', T0)], T0 + 365 * 24 * 60 * MINUTE)).toEqual({ keep: { a: 'active' }, drop: [] });
  });

  it('publishes a key whose time has not come as next, while the current key keeps signing', () => {
    const rows = [key('old', T0), key('new', T0 + 60 * MINUTE)];
    expect(states(rows, T0 + 10 * MINUTE)).toEqual({ keep: { old: 'active', new: 'next' }, drop: [] });
    expect(states(rows, T0 + 60 * MINUTE - 1)).toEqual({ keep: { old: 'active', new: 'next' }, drop: [] });
  });

  it('activates the next key at its activation time and keeps the old one as retiring', () => {
    const rows = [key('old', T0), key('new', T0 + 60 * MINUTE)];
    expect(states(rows, T0 + 60 * MINUTE)).toEqual({ keep: { old: 'retiring', new: 'active' }, drop: [] });
  });

  it('keeps the retiring key until its successor has been active for the retirement period, then drops it', () => {
    const switchAt = T0 + 60 * MINUTE;
    const rows = [key('old', T0), key('new', switchAt)];
    expect(states(rows, switchAt + RETIRE_AFTER - 1)).toEqual({ keep: { old: 'retiring', new: 'active' }, drop: [] });
    expect(states(rows, switchAt + RETIRE_AFTER)).toEqual({ keep: { new: 'active' }, drop: ['old'] });
    expect(states(rows, switchAt + 10 * RETIRE_AFTER)).toEqual({ keep: { new: 'active' }, drop: ['old'] });
  });

  it('times each retirement from the key that replaced it, not from the newest key', () => {
    const rows = [key('k1', T0), key('k2', T0 + 60 * MINUTE), key('k3', T0 + 70 * MINUTE)];
    // k2 took over from k1 at +60 min; k1 is still needed for 16 minutes after that.
    expect(states(rows, T0 + 70 * MINUTE)).toEqual({ keep: { k1: 'retiring', k2: 'retiring', k3: 'active' }, drop: [] });
    expect(states(rows, T0 + 76 * MINUTE)).toEqual({ keep: { k2: 'retiring', k3: 'active' }, drop: ['k1'] });
    expect(states(rows, T0 + 86 * MINUTE)).toEqual({ keep: { k3: 'active' }, drop: ['k1', 'k2'] });
  });

  it('does not depend on the order rows come in', () => {
    const rows = [key('new', T0 + 60 * MINUTE), key('next', T0 + 120 * MINUTE), key('old', T0)];
    const { keep } = partition(rows, T0 + 61 * MINUTE, RETIRE_AFTER);
    expect(keep.map(({ row, state }) => [row.kid, state])).toEqual([
      ['old', 'retiring'],
      ['new', 'active'],
      ['next', 'next'],
    ]);
  });

  it('marks every key next when none has activated yet, and keeps exactly one active otherwise', () => {
    expect(states([key('a', T0 + MINUTE)], T0)).toEqual({ keep: { a: 'next' }, drop: [] });
    const rows = [key('a', T0), key('b', T0), key('c', T0 + MINUTE)];
    const { keep } = partition(rows, T0 + MINUTE, RETIRE_AFTER);
    expect(keep.filter((k) => k.state === 'active').map((k) => k.row.kid)).toEqual(['c']);
  });

  it('gives nothing for no rows', () => {
    expect(partition([], T0, RETIRE_AFTER)).toEqual({ keep: [], drop: [] });
  });
});
