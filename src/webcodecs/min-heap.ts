/** A binary min-heap of numbers (used to hand decoded frames their presentation timestamps). */
export class MinHeap {
  #items: number[] = [];

  /** Number of values held. */
  get size(): number {
    return this.#items.length;
  }

  /** Adds a value. */
  push(value: number): void {
    const items = this.#items;
    items.push(value);
    let index = items.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentValue = items[parent] as number;
      if (parentValue <= value) break;
      items[index] = parentValue;
      index = parent;
    }
    items[index] = value;
  }

  /** Removes and returns the smallest value, or undefined when empty. */
  pop(): number | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (items.length === 0 || last === undefined) return top;
    let index = 0;
    const length = items.length;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= length) break;
      const right = left + 1;
      let child = left;
      if (right < length && (items[right] as number) < (items[left] as number)) child = right;
      const childValue = items[child] as number;
      if (childValue >= last) break;
      items[index] = childValue;
      index = child;
    }
    items[index] = last;
    return top;
  }

  /** Removes every value. */
  clear(): void {
    this.#items = [];
  }
}
