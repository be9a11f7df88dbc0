import { Refusal, type Properties } from '../store/profile-writer.js';
import type { ProfileLimits } from './profile-ops.js';
import { short } from './value-limits.js';

const bytesOf = (value: unknown): number => Buffer.byteLength(JSON.stringify(value));

/**
 * A profile's size as JSON (UTF-8 bytes), kept per property, so an update is measured by what it
 * changes rather than by re-serialising the whole profile: a request of 2,000 updates to one
 * large profile costs the size of the updates, not 2,000 times the profile. Measured once per
 * profile and request, then carried from each result to the next (by the object's identity).
 */
export class ProfileSizes {
  static readonly #known = new WeakMap<Properties, ProfileSizes>();
  /** Bytes of each property's value as JSON. */
  readonly #values = new Map<string, number>();
  /** Bytes of all `"key":value` entries, without the commas between them and the braces. */
  #entries = 0;
  /** The properties this update set (a copy starts a new update): only those are checked against the per-value limit. */
  readonly #changed = new Set<string>();
  /** Size and count before this update: a profile stored over a limit (before it existed) may still shrink. */
  #start = { bytes: 2, count: 0 };

  static of(props: Properties): ProfileSizes {
    const known = ProfileSizes.#known.get(props);
    if (known) return known;
    const sizes = new ProfileSizes();
    for (const [k, v] of Object.entries(props)) sizes.set(k, v);
    // What was stored before is not this update's doing.
    sizes.#changed.clear();
    return sizes;
  }

  /** The same sizes, for the next update to change. */
  copy(): ProfileSizes {
    const c = new ProfileSizes();
    for (const [k, v] of this.#values) c.#values.set(k, v);
    c.#entries = this.#entries;
    c.#start = { bytes: this.bytes, count: this.#values.size };
    return c;
  }

  set(key: string, value: unknown): void {
    this.#put(key, bytesOf(value));
  }

  /** The list under `key` took `items` at its end. */
  grow(key: string, items: unknown[]): void {
    const before = this.#values.get(key);
    if (before === undefined) return this.set(key, items);
    if (items.length === 0) return;
    let added = 0;
    for (const item of items) added += bytesOf(item);
    // "[]" holds no comma; each item after the first brings one.
    this.#put(key, before + added + (before === 2 ? items.length - 1 : items.length));
  }

  remove(key: string): void {
    const before = this.#values.get(key);
    if (before === undefined) return;
    this.#entries -= bytesOf(key) + 1 + before;
    this.#values.delete(key);
    this.#changed.delete(key);
  }

  #put(key: string, bytes: number): void {
    const before = this.#values.get(key);
    this.#entries += before === undefined ? bytesOf(key) + 1 + bytes : bytes - before;
    this.#values.set(key, bytes);
    this.#changed.add(key);
  }

  get bytes(): number {
    return 2 + this.#entries + Math.max(0, this.#values.size - 1);
  }

  /** Why the profile as measured breaks a limit, or undefined. */
  over(limits: ProfileLimits): Refusal | undefined {
    if (this.#values.size > limits.maxProfileProperties && this.#values.size > this.#start.count) {
      return new Refusal('$set', `a profile may have at most ${limits.maxProfileProperties} properties; this update would give it ${this.#values.size}`);
    }
    for (const key of this.#changed) {
      const bytes = this.#values.get(key)!;
      if (bytes <= limits.maxProfileValueBytes) continue;
      const name = short(key);
      return new Refusal(`properties.${name}`, `a profile property's value may be at most ${limits.maxProfileValueBytes} bytes of JSON; "${name}" would be ${bytes}`);
    }
    if (this.bytes > limits.maxProfileBytes && this.bytes > this.#start.bytes) return new Refusal('$set', `a profile may be at most ${limits.maxProfileBytes} bytes of JSON; this update would make it ${this.bytes}`);
    return undefined;
  }

  remember(props: Properties): void {
    ProfileSizes.#known.set(props, this);
  }
}
