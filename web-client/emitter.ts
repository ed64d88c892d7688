/** A minimal typed event emitter that runs the same in browsers and Node. */
export type Listener<T> = (value: T) => void;

export class Emitter<Events extends Record<string, unknown>> {
  private listeners: { [K in keyof Events]?: Set<Listener<Events[K]>> } = {};

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    (this.listeners[event] ??= new Set()).add(listener);
    return () => this.off(event, listener);
  }

  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    this.listeners[event]?.delete(listener);
  }

  protected emit<K extends keyof Events>(event: K, value: Events[K]): void {
    const set = this.listeners[event];
    if (!set) return;
    for (const l of [...set]) {
      try {
        l(value);
      } catch (err) {
        // A listener's bug must not break the client's state machine; report it out of band.
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
  }

  listenerCount<K extends keyof Events>(event: K): number {
    return this.listeners[event]?.size ?? 0;
  }
}
