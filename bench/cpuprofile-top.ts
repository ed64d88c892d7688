/**
 * Where a profiled process spent its CPU: self time per function from a V8
 * `.cpuprofile` (written by `node --cpu-prof`, e.g. `npm run bench --
 * --cpu-prof DIR`), highest first, plus the share of idle and GC.
 *   node --import tsx bench/cpuprofile-top.ts FILE.cpuprofile [TOP]
 */
import fs from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const DEFAULT_TOP = 30;

export function selfTimes(profile: CpuProfile): Array<{ name: string; ms: number; share: number }> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const dt = profile.timeDeltas[i] ?? 0;
    if (!node || dt < 0) continue;
    total += dt;
    const f = node.callFrame;
    const where = f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : '';
    const name = `${f.functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    selfUs.set(name, (selfUs.get(name) ?? 0) + dt);
  }
  return [...selfUs.entries()].map(([name, us]) => ({ name, ms: us / 1000, share: total ? us / total : 0 })).sort((a, b) => b.ms - a.ms);
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: cpuprofile-top.ts FILE.cpuprofile [TOP]');
    process.exit(2);
  }
  const top = Number(process.argv[3] ?? DEFAULT_TOP);
  const rows = selfTimes(JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile);
  for (const r of rows.slice(0, top)) console.log(`${(r.share * 100).toFixed(1).padStart(5)}%  ${r.ms.toFixed(0).padStart(7)} ms  ${r.name}`);
}

if (import.meta.url === `file://${process.argv[1]}`) main();
