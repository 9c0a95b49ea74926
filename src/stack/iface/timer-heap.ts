/**
 * An indexed binary min-heap of items with a due time: the timer driver keeps one entry per
 * connection (its `pollAt()`), updates it in place after each engine call, and arms a single
 * Scheduler timer at the minimum.
 */
export interface HeapItem {
  /** Due time; Infinity items are not kept in the heap. */
  heapAt: number;
  /** Position in the heap, -1 when absent. */
  heapIndex: number;
}

export class TimerHeap<T extends HeapItem> {
  private readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  /** Sets the item's due time, inserting, moving or removing (Infinity) it as needed. */
  set(item: T, at: number): void {
    if (at === Number.POSITIVE_INFINITY) {
      this.remove(item);
      item.heapAt = at;
      return;
    }
    if (item.heapIndex < 0) {
      item.heapAt = at;
      item.heapIndex = this.items.push(item) - 1;
      this.up(item.heapIndex);
      return;
    }
    const old = item.heapAt;
    item.heapAt = at;
    if (at < old) this.up(item.heapIndex);
    else if (at > old) this.down(item.heapIndex);
  }

  remove(item: T): void {
    const i = item.heapIndex;
    if (i < 0) return;
    item.heapIndex = -1;
    const last = this.items.pop()!;
    if (i === this.items.length) return;
    this.items[i] = last;
    last.heapIndex = i;
    this.up(i);
    this.down(last.heapIndex);
  }

  /** Removes and returns the minimum if it is due at or before `now`. */
  popDue(now: number): T | undefined {
    const top = this.items[0];
    if (top === undefined || top.heapAt > now) return undefined;
    this.remove(top);
    return top;
  }

  private up(i: number): void {
    const items = this.items;
    const item = items[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent]!;
      if (p.heapAt <= item.heapAt) break;
      items[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    items[i] = item;
    item.heapIndex = i;
  }

  private down(i: number): void {
    const items = this.items;
    const n = items.length;
    const item = items[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && items[r]!.heapAt < items[l]!.heapAt ? r : l;
      const child = items[c]!;
      if (child.heapAt >= item.heapAt) break;
      items[i] = child;
      child.heapIndex = i;
      i = c;
    }
    items[i] = item;
    item.heapIndex = i;
  }
}
