import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { describe, expect, it } from 'vitest';
import { NetworkGuard, parseNetworks, type NetworkPolicy } from '../../src/delivery/network-guard.js';

const guard = (policy: Partial<NetworkPolicy> = {}) => new NetworkGuard({ allowHttp: false, allowedNetworks: [], ...policy });
const LOOPBACK = ['127.0.0.0/8', '::1/128'];

describe('checkAddress', () => {
  const refused: [string, string][] = [
    ['0.1.2.3', '0.0.0.0/8'],
    ['10.0.0.5', '10.0.0.0/8'],
    ['100.64.0.1', '100.64.0.0/10'],
    ['127.0.0.1', '127.0.0.0/8'],
    ['169.254.169.254', '169.254.0.0/16'],
    ['172.16.0.1', '172.16.0.0/12'],
    ['172.31.255.254', '172.16.0.0/12'],
    ['192.0.0.8', '192.0.0.0/24'],
    ['192.0.2.1', '192.0.2.0/24'],
    ['192.168.1.1', '192.168.0.0/16'],
    ['198.19.0.1', '198.18.0.0/15'],
    ['198.51.100.7', '198.51.100.0/24'],
    ['203.0.113.9', '203.0.113.0/24'],
    ['224.0.0.251', '224.0.0.0/4'],
    ['240.0.0.1', '240.0.0.0/4'],
    ['255.255.255.255', '255.255.255.255/32'],
    ['::', '::/128'],
    ['::1', '::1/128'],
    ['::7f00:1', '::/96'],
    ['fc00::1', 'fc00::/7'],
    ['fd00:ec2::254', 'fc00::/7'],
    ['fe80::1', 'fe80::/10'],
    ['fe80::1%eth0', 'fe80::/10'],
    ['ff02::1', 'ff00::/8'],
    ['2001:db8::1', '2001:db8::/32'],
    ['::ffff:10.0.0.1', '10.0.0.0/8'],
    ['::ffff:127.0.0.1', '127.0.0.0/8'],
    ['::ffff:a9fe:a9fe', '169.254.0.0/16'],
    ['64:ff9b::10.0.0.1', '10.0.0.0/8'],
    ['64:ff9b::a9fe:a9fe', '169.254.0.0/16'],
  ];
  it.each(refused)('refuses %s (%s)', (ip, cidr) => {
    const reason = guard().checkAddress(ip);
    expect(reason).toContain(`(${cidr})`);
    expect(reason).toContain('COHORTCAST_ALLOWED_NETWORKS');
  });

  it('explains a refusal in one sentence', () => {
    expect(guard().checkAddress('10.0.0.5')).toBe(
      'address 10.0.0.5 is in a private range (10.0.0.0/8); allow it with COHORTCAST_ALLOWED_NETWORKS',
    );
    expect(guard().checkAddress('::ffff:10.0.0.1')).toContain('(IPv4 10.0.0.1)');
  });

  it.each(['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '172.32.0.1', '100.128.0.1'])(
    'allows public %s',
    (ip) => expect(guard().checkAddress(ip)).toBeUndefined(),
  );

  it('refuses what is not an address', () => {
    expect(guard().checkAddress('localhost')).toContain('not an IP address');
  });

  it('opens exactly the allowed networks', () => {
    const g = guard({ allowedNetworks: LOOPBACK });
    expect(g.checkAddress('127.0.0.1')).toBeUndefined();
    expect(g.checkAddress('127.255.0.9')).toBeUndefined();
    expect(g.checkAddress('::ffff:127.0.0.1')).toBeUndefined();
    expect(g.checkAddress('::1')).toBeUndefined();
    expect(g.checkAddress('10.0.0.1')).toContain('10.0.0.0/8');
    expect(g.checkAddress('::')).toContain('::/128');
    expect(g.checkAddress('fe80::1')).toContain('fe80::/10');
    const host = guard({ allowedNetworks: ['10.1.2.3/32'] });
    expect(host.checkAddress('10.1.2.3')).toBeUndefined();
    expect(host.checkAddress('10.1.2.4')).toContain('10.0.0.0/8');
  });

  it('rejects a bad allowed network at construction', () => {
    expect(() => guard({ allowedNetworks: ['10.0.0.0/33'] })).toThrow('10.0.0.0/33');
  });
});

describe('parseNetworks', () => {
  it('reads a comma-separated list, giving bare addresses their full prefix', () => {
    expect(parseNetworks(' 127.0.0.0/8, ::1/128 ,,10.1.2.3, fd00::1 ')).toEqual(['127.0.0.0/8', '::1/128', '10.1.2.3/32', 'fd00::1/128']);
    expect(parseNetworks('')).toEqual([]);
    expect(parseNetworks(' , ')).toEqual([]);
  });

  it.each(['10.0.0.0/33', '::/129', 'example.com', '10.0.0/8', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', 'fe80::1%eth0', '0x7f.1'])(
    'names the bad entry %s and the expected form',
    (entry) => {
      expect(() => parseNetworks(`127.0.0.0/8, ${entry}`)).toThrow(`"${entry}"`);
      expect(() => parseNetworks(entry)).toThrow(/IPv4 or IPv6 CIDR/);
    },
  );
});

describe('checkUrl', () => {
  it('requires https unless http is allowed', () => {
    const reason = guard().checkUrl('http://example.com/hook');
    expect(reason).toContain('https is required');
    expect(reason).toContain('COHORTCAST_ALLOW_HTTP=true');
    expect(guard({ allowHttp: true }).checkUrl('http://example.com/hook')).toBeUndefined();
    expect(guard({ allowHttp: true }).checkUrl('https://example.com/hook')).toBeUndefined();
  });

  it('refuses other schemes, unparsable URLs and credentials', () => {
    expect(guard().checkUrl('ftp://example.com/x')).toContain('ftp');
    expect(guard({ allowHttp: true }).checkUrl('file:///etc/passwd')).toContain('file');
    expect(guard().checkUrl('not a url')).toContain('not a valid URL');
    expect(guard().checkUrl('https://user:pw@example.com/')).toContain('basic_auth');
    expect(guard().checkUrl('https://user@example.com/')).toContain('basic_auth');
  });

  it('checks IP-literal hosts, in every spelling the URL parser accepts', () => {
    expect(guard().checkUrl('https://10.0.0.1/')).toContain('10.0.0.0/8');
    expect(guard().checkUrl('https://[::1]/')).toContain('::1/128');
    expect(guard().checkUrl('https://[::ffff:169.254.169.254]/')).toContain('169.254.0.0/16');
    expect(guard().checkUrl('https://2130706433/')).toContain('127.0.0.0/8');
    expect(guard().checkUrl('https://0x7f.1/')).toContain('127.0.0.0/8');
    expect(guard().checkUrl('https://127.0.0.1./')).toContain('127.0.0.0/8');
    expect(guard({ allowedNetworks: LOOPBACK }).checkUrl('https://[::1]:8443/')).toBeUndefined();
  });

  it('accepts public https URLs without resolving hostnames', () => {
    expect(guard().checkUrl('https://hooks.example.com/x?y=1')).toBeUndefined();
    expect(guard().checkUrl('https://8.8.8.8/')).toBeUndefined();
    expect(guard().checkUrl('https://localhost/')).toBeUndefined(); // left to lookup
  });
});

const lookupOnce = (g: NetworkGuard, options: { all?: boolean }) =>
  new Promise<{ err: NodeJS.ErrnoException | null; address: unknown; family?: number }>((resolve) =>
    g.lookup('localhost', options, (err, address, family) => resolve({ err, address, family })),
  );

describe('lookup', () => {
  it('refuses a hostname that resolves to a refused address', async () => {
    const { err } = await lookupOnce(guard(), {});
    expect(err?.code).toBe('ERR_ADDRESS_REFUSED');
    expect(err?.message).toContain('localhost');
    expect(err?.message).toContain('COHORTCAST_ALLOWED_NETWORKS');
  });

  it('answers in both callback shapes when the addresses are allowed', async () => {
    const g = guard({ allowedNetworks: LOOPBACK });
    const one = await lookupOnce(g, {});
    expect(one.err).toBeNull();
    expect(['127.0.0.1', '::1']).toContain(one.address);
    expect([4, 6]).toContain(one.family);
    const all = await lookupOnce(g, { all: true });
    expect(all.err).toBeNull();
    expect(Array.isArray(all.address)).toBe(true);
    for (const a of all.address as { address: string; family: number }[]) expect(['127.0.0.1', '::1']).toContain(a.address);
  });
});

describe('undici with the guard as lookup', () => {
  const withServer = async (fn: (port: number) => Promise<void>) => {
    const server = http.createServer((_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      await fn((server.address() as AddressInfo).port);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  };
  const codesAndMessages = (err: unknown) => {
    const seen: string[] = [];
    for (let e: unknown = err; e instanceof Error; e = e.cause) seen.push(String((e as NodeJS.ErrnoException).code), e.message);
    return seen.join('\n');
  };

  it('never connects to a refused resolved address', async () => {
    await withServer(async (port) => {
      const agent = new Agent({ connect: guard({ allowHttp: true }).connectOptions() });
      try {
        const err = await request(`http://localhost:${port}/`, { dispatcher: agent }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(codesAndMessages(err)).toContain('ERR_ADDRESS_REFUSED');
      } finally {
        await agent.close();
      }
    });
  });

  it('connects when the resolved address is allowed', async () => {
    await withServer(async (port) => {
      const g = guard({ allowHttp: true, allowedNetworks: LOOPBACK });
      const agent = new Agent({ connect: { lookup: g.lookup } });
      try {
        const res = await request(`http://localhost:${port}/`, { dispatcher: agent });
        expect(res.statusCode).toBe(200);
        expect(await res.body.text()).toBe('ok');
      } finally {
        await agent.close();
      }
    });
  });
});
