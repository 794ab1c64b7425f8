import { describe, expect, it } from 'vitest';
import { Limits, networkKey } from '../../src/core/limits.js';

describe('networkKey', () => {
  it('counts IPv4 clients per address', () => {
    expect(networkKey('203.0.113.7')).toBe('203.0.113.7');
    expect(networkKey(null)).toBe('unknown');
  });

  it('counts IPv6 clients per /64, whatever the spelling', () => {
    for (const address of [
      '2001:db8:1:2::1',
      '2001:0db8:0001:0002:ffff:ffff:ffff:ffff',
      '2001:DB8:1:2:0:0:0:9',
      '2001:db8:1:2::1%eth0',
      '2001:db8:1:2::192.0.2.1',
    ]) {
      expect(networkKey(address), address).toBe('2001:db8:1:2::/64');
    }
    expect(networkKey('2001:db8:1:3::1')).not.toBe(networkKey('2001:db8:1:2::1'));
    expect(networkKey('::1')).toBe('0:0:0:0::/64');
    expect(networkKey('fe80::1')).toBe('fe80:0:0:0::/64');
  });
});

describe('Limits', () => {
  const events: string[] = [];
  const limits = new Limits({ enabled: true, prefix: `t${Date.now()}`, onEvent: (event) => events.push(event) });

  it('allows exactly the budget of a burst of concurrent takes', async () => {
    const decisions = await Promise.all(Array.from({ length: 25 }, () => limits.take('signin.account.minute', 'burst')));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(5);
  });

  it('gives a point back on refund, so a right attempt costs nothing', async () => {
    expect((await limits.take('mfa.account', 'refund')).remaining).toBe(9);
    await limits.refund('mfa.account', 'refund');
    expect((await limits.take('mfa.account', 'refund')).remaining).toBe(9);
  });
});
