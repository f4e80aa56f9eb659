// A tiny external store: live data (metrics ticks, stream rows) is written here by WebSocket
// handlers, and only the components that read a slice re-render, never the whole page.
import { useSyncExternalStore } from "react";

export class LiveStore<T> {
  private value: T;
  private listeners = new Set<() => void>();
  constructor(initial: T) {
    this.value = initial;
  }
  get = () => this.value;
  set(next: T) {
    this.value = next;
    for (const l of this.listeners) l();
  }
  update(fn: (prev: T) => T) {
    this.set(fn(this.value));
  }
  subscribe = (l: () => void) => {
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  };
}

export function useLive<T>(store: LiveStore<T>): T {
  return useSyncExternalStore(store.subscribe, store.get, store.get);
}
