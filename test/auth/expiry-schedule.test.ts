/**
 * The token-expiry schedule (one timer for every connection's expiry) with
 * the real clock: waiters fire at their instant, in order, once; removed ones
 * never; and its one timer is stopped once they are gone.
 */
import { describe, expect, it } from 'vitest';
import { ExpirySchedule } from '../../server/auth/index.ts';
import { waitFor } from '../../harness/wait.ts';

describe('expiry schedule', () => {
  it('calls each waiter once at its instant, in order, never a removed one, on its one timer', async () => {
    const due: Array<{ name: string; atMs: number; lateMs: number }> = [];
    const schedule = new ExpirySchedule<string>((name, atMs) => due.push({ name, atMs, lateMs: Date.now() - atMs }));
    const t0 = Date.now();
    // Many waiters share an instant (tokens carry exp in whole seconds).
    for (let i = 0; i < 1000; i++) schedule.add(`b${i}`, t0 + 400);
    schedule.add('a', t0 + 200);
    schedule.add('c', t0 + 600);
    schedule.add('gone', t0 + 300);
    schedule.remove('gone', t0 + 300);
    schedule.remove('b7', t0 + 400);
    schedule.remove('never-added', t0 + 400);
    expect(schedule.size).toBe(1001);
    expect(schedule.armed).toBe(true);

    await waitFor(() => due.length === 1001, 10_000, 'every waiter due');
    expect(due[0].name).toBe('a');
    expect(due[1000].name).toBe('c');
    expect(due.map((d) => d.name)).not.toContain('gone');
    expect(due.map((d) => d.name)).not.toContain('b7');
    for (const d of due) expect(d.lateMs, d.name).toBeGreaterThanOrEqual(0);
    expect(schedule.size).toBe(0);
    expect(schedule.armed).toBe(false);
  });

  it('a waiter already past its instant is due at once; removing the last waiter stops the timer', async () => {
    const due: string[] = [];
    const schedule = new ExpirySchedule<string>((name) => due.push(name));
    schedule.add('late', Date.now() - 1000);
    await waitFor(() => due.length === 1, 5_000, 'the late waiter');
    schedule.add('far', Date.now() + 10 * 365 * 24 * 3600_000); // beyond setTimeout's range: armed at the cap
    expect(schedule.armed).toBe(true);
    schedule.remove('far', 0);
    expect(schedule.armed).toBe(true); // wrong instant: still waiting
    schedule.clear();
    expect(schedule.armed).toBe(false);
    expect(due).toEqual(['late']);
  });

  it('connections that come and go at the same instants do not grow it', () => {
    const schedule = new ExpirySchedule<number>(() => {});
    const atMs = Date.now() + 3600_000;
    for (let i = 0; i < 100_000; i++) {
      schedule.add(i, atMs + (i % 10));
      schedule.remove(i, atMs + (i % 10));
    }
    expect(schedule.size).toBe(0);
    // The heap of instants is private; what it may hold is bounded by its rebuild rule (2 × live + 64).
    expect((schedule as unknown as { heap: number[] }).heap.length).toBeLessThanOrEqual(64);
    schedule.clear();
  });
});
