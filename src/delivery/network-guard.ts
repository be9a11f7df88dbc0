import dns from 'node:dns';
import net, { BlockList, type LookupFunction } from 'node:net';

/** Where webhooks may go: http at all, and which otherwise refused networks are opened up. */
export interface NetworkPolicy {
  allowHttp: boolean;
  /** CIDR strings ("127.0.0.0/8", "::1/128"); a bare address means /32 or /128. */
  allowedNetworks: string[];
}

type Family = 'ipv4' | 'ipv6';

interface Range {
  cidr: string;
  label: string;
  list: BlockList;
}

function range(cidr: string, label: string): Range {
  const { address, prefix, family } = parseNetwork(cidr);
  const list = new BlockList();
  list.addSubnet(address, prefix, family);
  return { cidr, label, list };
}

// Order matters only for the message: the first match names the range.
const IPV4_REFUSED: readonly Range[] = [
  range('0.0.0.0/8', 'this-network'),
  range('10.0.0.0/8', 'private'),
  range('100.64.0.0/10', 'shared (carrier-grade NAT)'),
  range('127.0.0.0/8', 'loopback'),
  range('169.254.0.0/16', 'link-local (cloud metadata)'),
  range('172.16.0.0/12', 'private'),
  range('192.0.0.0/24', 'IETF protocol assignment'),
  range('192.0.2.0/24', 'documentation'),
  range('192.168.0.0/16', 'private'),
  range('198.18.0.0/15', 'benchmarking'),
  range('198.51.100.0/24', 'documentation'),
  range('203.0.113.0/24', 'documentation'),
  range('224.0.0.0/4', 'multicast'),
  range('255.255.255.255/32', 'broadcast'),
  range('240.0.0.0/4', 'reserved'),
];

const IPV6_REFUSED: readonly Range[] = [
  range('::/128', 'unspecified'),
  range('::1/128', 'loopback'),
  // Deprecated IPv4-compatible addresses: no public use, and some stacks route them to IPv4.
  range('::/96', 'IPv4-compatible (deprecated)'),
  range('fc00::/7', 'unique local'), // includes the AWS metadata address fd00:ec2::254
  range('fe80::/10', 'link-local'),
  range('ff00::/8', 'multicast'),
  range('2001:db8::/32', 'documentation'),
];

// IPv6 addresses that reach an IPv4 address: judged by the IPv4 address inside.
const EMBEDS_IPV4: readonly Range[] = [range('::ffff:0:0/96', 'IPv4-mapped'), range('64:ff9b::/96', 'NAT64')];

const EXPECTED = 'expected an IPv4 or IPv6 CIDR such as 10.0.0.0/8 or fd00::/8 (a bare address means /32 or /128)';

/** One CIDR entry, checked; throws with the entry and the expected form. */
function parseNetwork(entry: string): { address: string; prefix: number; family: Family } {
  const slash = entry.lastIndexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const version = address.includes('%') ? 0 : net.isIP(address);
  const max = version === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : entry.slice(slash + 1);
  const prefix = Number(prefixText);
  if (version === 0 || !/^\d{1,3}$/.test(prefixText) || prefix > max) {
    throw new Error(`invalid network "${entry}": ${EXPECTED}`);
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A comma-separated list such as COHORTCAST_ALLOWED_NETWORKS, each entry checked and given its prefix. */
export function parseNetworks(list: string): string[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const { address, prefix } = parseNetwork(entry);
      return `${address}/${prefix}`;
    });
}

/** The 8 16-bit groups of a valid IPv6 address (zone already removed). */
function ipv6Groups(ip: string): number[] {
  const half = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head = '', tail] = ip.split('::');
  if (tail === undefined) return half(head);
  const h = half(head);
  const t = half(tail);
  return [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
}

function embeddedIpv4(ip: string): string {
  const g = ipv6Groups(ip);
  const hi = g[6] ?? 0;
  const lo = g[7] ?? 0;
  return [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff].join('.');
}

const article = (label: string) => (/^[aeiou]/i.test(label) ? 'an' : 'a');

/**
 * The outbound safety policy for webhook destinations: no private, loopback, link-local (cloud
 * metadata), multicast or reserved addresses unless an allowed network opens them, and https only
 * unless http is allowed.
 *
 * Two checks, because Node's net.connect skips `lookup` when the host is an IP literal:
 * `checkUrl` (which covers literals) before every request, and `lookup` on the connection itself,
 * so a hostname is judged by the exact address that is connected to (no DNS rebinding window).
 */
export class NetworkGuard {
  readonly #allowed = new BlockList();

  constructor(private readonly policy: NetworkPolicy) {
    for (const entry of policy.allowedNetworks) {
      const { address, prefix, family } = parseNetwork(entry.trim());
      this.#allowed.addSubnet(address, prefix, family);
    }
  }

  /** Why the URL may not be a destination, or undefined when it may. Hostnames are not resolved. */
  checkUrl(url: string): string | undefined {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `"${url}" is not a valid URL`;
    }
    if (parsed.protocol === 'http:' && !this.policy.allowHttp) {
      return 'https is required; set COHORTCAST_ALLOW_HTTP=true to allow http destinations';
    }
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
      return `scheme ${parsed.protocol.slice(0, -1)} is not supported; use https`;
    }
    if (parsed.username !== '' || parsed.password !== '') {
      return 'credentials in the URL are not accepted; use basic_auth instead';
    }
    // The URL parser has already normalised IPv4 forms such as 0x7f.1 and 2130706433.
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    return net.isIP(host) ? this.checkAddress(host) : undefined;
  }

  /** Why a connection to this address is refused, or undefined when it is allowed. */
  checkAddress(ip: string): string | undefined {
    const address = ip.replace(/%.*$/, ''); // a zone id does not change the range
    const version = net.isIP(address);
    if (version === 0) return `"${ip}" is not an IP address`;
    if (version === 4) return this.#judge(ip, address, 'ipv4', IPV4_REFUSED);
    if (this.#allowed.check(address, 'ipv6')) return undefined;
    if (EMBEDS_IPV4.some((r) => r.list.check(address, 'ipv6'))) {
      const v4 = embeddedIpv4(address);
      return this.#judge(`${ip} (IPv4 ${v4})`, v4, 'ipv4', IPV4_REFUSED);
    }
    return this.#judge(ip, address, 'ipv6', IPV6_REFUSED);
  }

  #judge(shown: string, address: string, family: Family, ranges: readonly Range[]): string | undefined {
    if (this.#allowed.check(address, family)) return undefined;
    const hit = ranges.find((r) => r.list.check(address, family));
    if (!hit) return undefined;
    return `address ${shown} is in ${article(hit.label)} ${hit.label} range (${hit.cidr}); allow it with COHORTCAST_ALLOWED_NETWORKS`;
  }

  /**
   * net.connect's `lookup`: resolves, then fails with code ERR_ADDRESS_REFUSED if any address is
   * refused, so only checked addresses are ever connected to. Answers in both callback shapes
   * (`all: true`, as used with autoSelectFamily, and a single address).
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const first = addresses[0];
      if (!first) return callback(Object.assign(new Error(`${hostname} did not resolve`), { code: 'ENOTFOUND' }), '');
      for (const { address } of addresses) {
        const reason = this.checkAddress(address);
        if (reason) {
          const refused = Object.assign(new Error(`connection to ${hostname} refused: ${reason}`), { code: 'ERR_ADDRESS_REFUSED' });
          return callback(refused, '');
        }
      }
      if (options.all) callback(null, addresses);
      else callback(null, first.address, first.family);
    });
  };

  /** For undici: `new Agent({ connect: guard.connectOptions() })`. */
  connectOptions(): { lookup: LookupFunction } {
    return { lookup: this.lookup };
  }
}
