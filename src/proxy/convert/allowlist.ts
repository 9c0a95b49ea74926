/**
 * The converter's allowlist: which destinations a Connect TLV may name. Each rule is
 * `CIDR[:PORTS]` (IPv6 in brackets when ports follow: `[fd00::/64]:443`), PORTS a comma list of
 * ports and ranges (`80,443,8000-8099`); no PORTS means every port. A destination is allowed
 * when some rule holds its address and port. An empty list allows nothing: the server refuses to
 * start in converter mode without one (never an open relay).
 */
import { BlockList, isIP } from 'node:net';

export interface AllowRule {
  /** As given, for logs and messages. */
  text: string;
  address: string;
  prefix: number;
  family: 4 | 6;
  /** Inclusive port ranges; empty = every port. */
  ports: [number, number][];
}

const FORMS = "use CIDR[:PORTS], e.g. --allow 10.20.0.0/24:80,443 or --allow '[fd00::/64]:8000-8099'";

/** Parses one rule; the message names the fix. */
export function parseAllowRule(text: string): AllowRule | { error: string } {
  const bad = (why: string) => ({ error: `--allow '${text}': ${why}; ${FORMS}` });
  let cidr: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    cidr = v6[1] ?? '';
    portText = v6[2];
  } else if ((text.match(/:/g) ?? []).length > 1) {
    // Bare IPv6 (no brackets): no ports possible.
    cidr = text;
  } else {
    const i = text.indexOf(':');
    cidr = i < 0 ? text : text.slice(0, i);
    portText = i < 0 ? undefined : text.slice(i + 1);
  }
  const slash = cidr.indexOf('/');
  const address = slash < 0 ? cidr : cidr.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return bad(`'${address}' is not an IP address`);
  const max = family === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : cidr.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d+$/.test(prefixText) || prefix > max) return bad(`the prefix length must be 0-${max}`);
  const ports: [number, number][] = [];
  if (portText !== undefined) {
    for (const part of portText.split(',')) {
      const m = /^(\d+)(?:-(\d+))?$/.exec(part);
      const lo = Number(m?.[1]);
      const hi = m?.[2] === undefined ? lo : Number(m[2]);
      if (!m || lo < 1 || hi > 65535 || lo > hi)
        return bad(`'${part}' is not a port (1-65535) or a range LOW-HIGH`);
      ports.push([lo, hi]);
    }
  }
  return { text, address, prefix, family: family as 4 | 6, ports };
}

export class Allowlist {
  private readonly nets: { rule: AllowRule; list: BlockList }[];

  constructor(readonly rules: readonly AllowRule[]) {
    this.nets = rules.map((rule) => {
      const list = new BlockList();
      list.addSubnet(rule.address, rule.prefix, rule.family === 4 ? 'ipv4' : 'ipv6');
      return { rule, list };
    });
  }

  /** The first rule that allows `host:port`, or undefined (refused). `host` is an IP address. */
  match(host: string, port: number): AllowRule | undefined {
    const family = isIP(host);
    if (family === 0) return undefined;
    for (const { rule, list } of this.nets) {
      if (rule.family !== family) continue;
      if (!list.check(host, family === 4 ? 'ipv4' : 'ipv6')) continue;
      if (rule.ports.length === 0 || rule.ports.some(([lo, hi]) => port >= lo && port <= hi)) return rule;
    }
    return undefined;
  }
}
