/**
 * A record over another: its fields copied, its value and stored bytes read
 * through the source, so a value no step replaced stays lazy and a sink
 * writes its stored bytes out as they are. RekeyNode gives it a new key;
 * ViewedRec (json-view.ts) changes how its value reads.
 */
import type { Header, ValueEncoding } from '../protocol/index.ts';
import type { Rec } from './nodes.ts';

export class ForwardingRec implements Rec {
  readonly key: unknown;
  readonly timestamp: number;
  readonly headers: Header[];
  readonly topic: string | undefined;
  readonly partition: number | undefined;
  readonly offset: number | undefined;
  /** Private, not a property: `{ ...r }` in a step copies the record's fields, never its source. */
  readonly #src: Rec;
  constructor(src: Rec, key: unknown = src.key) {
    this.#src = src;
    this.key = key;
    this.timestamp = src.timestamp;
    this.headers = src.headers;
    this.topic = src.topic;
    this.partition = src.partition;
    this.offset = src.offset;
  }
  get value(): unknown {
    return this.#src.value;
  }
  get valueBytes(): Uint8Array | null | undefined {
    return this.#src.valueBytes;
  }
  get valueEncoding(): ValueEncoding | undefined {
    return this.#src.valueEncoding;
  }
  /** The plain record (value decoded), for JSON.stringify. */
  toJSON(): Rec {
    return { key: this.key, value: this.value, timestamp: this.timestamp, headers: this.headers, topic: this.topic, partition: this.partition, offset: this.offset };
  }
}
