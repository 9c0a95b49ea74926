/**
 * Named counters from one `as const` list of names, in the manner of the kernel's MIBs: the list
 * gives the type (a record of numbers keyed by name), a constructor of zeroed counters and a sum
 * (stack-wide totals, including objects that have gone away). The TCP engine, MPTCP and the
 * iface each declare their list once with `counterSet`.
 */
export type Counters<N extends string> = Record<N, number>;

export interface CounterSet<N extends string> {
  readonly names: readonly N[];
  create(): Counters<N>;
  /** Adds every counter of `from` into `into`. */
  add(into: Counters<N>, from: Readonly<Counters<N>>): void;
  /** The counters that are not zero, in list order (what a report prints). */
  nonZero(counters: Readonly<Counters<N>>): Partial<Counters<N>>;
}

export function counterSet<const N extends string>(names: readonly N[]): CounterSet<N> {
  return {
    names,
    create() {
      const counters = {} as Counters<N>;
      for (const name of names) counters[name] = 0;
      return counters;
    },
    add(into, from) {
      for (const name of names) into[name] += from[name];
    },
    nonZero(counters) {
      const out: Partial<Counters<N>> = {};
      for (const name of names) if (counters[name] !== 0) out[name] = counters[name];
      return out;
    },
  };
}
