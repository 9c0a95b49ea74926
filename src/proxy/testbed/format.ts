/** What `mptun testbed up|show` prints about a testbed: text for people, JSON for scripts. */
import { HASH_FIELDS, HASH_POLICY, rateText, type TestbedPlan } from './plan.js';
import type { TestbedState } from './state.js';

function vipRouteText(state: TestbedState): string {
  return state.vipRoute === 'ecmp'
    ? `ECMP over s1 and s2 (hash policy ${HASH_POLICY}, fields 0x${HASH_FIELDS.toString(16)}, seed 0x${state.plan.hashSeed.toString(16)})`
    : `anycast: ${state.vipRoute} only`;
}

export function describeTestbed(state: TestbedState, statePath: string): string {
  const p: TestbedPlan = state.plan;
  const ns = p.namespaces;
  const lines = [
    `testbed '${p.prefix}' (state ${statePath})`,
    `  namespaces  ${Object.values(ns).join(' ')}`,
    `  VIP         ${p.vip.v4} ${p.vip.v6}  ${vipRouteText(state)}`,
  ];
  for (const path of p.paths) {
    const rate = path.rate === undefined ? 'unshaped' : `tbf ${rateText(path.rate)} each way`;
    lines.push(
      `  path ${path.index}      ${ns.cli} ${path.cli.dev} ${path.cli.v4} ${path.cli.v6} -> ${ns.lb} ${path.lb.v4} ${path.lb.v6}  ${rate}; from ${path.cli.v4} routes via table ${path.table}`,
    );
  }
  for (const s of p.servers) {
    const lo = p.loAddrs
      ? 'VIP and unique address on lo'
      : 'VIP and unique address not bound (route them into a TUN)';
    lines.push(
      `  ${s.name}          ${ns[s.name]} unique ${s.unique.v4} ${s.unique.v6}; link ${s.uplink.v4} ${s.uplink.v6}; to app ${s.appLink.v4} ${s.appLink.v6}; ${lo}`,
    );
  }
  lines.push(`  app         ${ns.app} ${p.app.v4} ${p.app.v6} (the service host, reached from s1 and s2)`);
  lines.push(`  try         ip netns exec ${ns.cli} ping -c1 ${p.vip.v4}`);
  return `${lines.join('\n')}\n`;
}

/** The JSON form: the state plus where it is recorded. */
export function testbedJson(state: TestbedState, statePath: string): string {
  return `${JSON.stringify({ ...state, statePath }, null, 2)}\n`;
}
